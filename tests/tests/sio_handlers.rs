//! How the Socket.IO server treats handlers that fall behind or fail, on
//! every runtime.
//!
//! - A client that sends events faster than its handlers finish them is
//!   disconnected at `SocketIoConfig::max_pending_events` instead of
//!   queueing without bound: async handlers that do not finish on the async
//!   runtimes, sync handlers that block on the threads runtime (where a
//!   socket's events run on handler threads while its connection goes on
//!   reading). The events already accepted are still handled, and another
//!   client is served throughout.
//! - A handler that panics, sync or async, loses only its own event: the
//!   same socket's next event is handled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::json;
use switchboard_async::socketio::client::{
    ClientBuilder, DisconnectReason as ClientReason, Transport,
};
use switchboard_async::socketio::{DisconnectReason, SocketIo, SocketIoConfig};
use switchboard_conformance::RuntimeKind;
use switchboard_conformance::runtime::spawn_socketio;
use switchboard_threads::socketio::client::Threads;

const LIMIT: usize = 4;
const WAIT: Duration = Duration::from_secs(5);

fn backlog_is_bounded(runtime: RuntimeKind) {
    let io = SocketIo::new(SocketIoConfig {
        max_pending_events: LIMIT,
        ..SocketIoConfig::default()
    });
    // The handlers wait until the test closes the gate's channel.
    let (gate_keeper, gate) = async_channel::bounded::<()>(1);
    let handled = Arc::new(AtomicUsize::new(0));
    let (left_tx, left) = mpsc::channel::<DisconnectReason>();
    let left_tx = Arc::new(Mutex::new(left_tx));
    {
        let handled = handled.clone();
        io.ns("/", move |socket| {
            let (gate, handled) = (gate.clone(), handled.clone());
            if runtime == RuntimeKind::Threads {
                socket.on("work", move |_, _| {
                    let _ = gate.recv_blocking();
                    handled.fetch_add(1, Ordering::SeqCst);
                });
            } else {
                socket.on_async("work", move |_, _| {
                    let (gate, handled) = (gate.clone(), handled.clone());
                    async move {
                        let _ = gate.recv().await;
                        handled.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            socket.on("ping", |_, mut event| {
                if let Some(ack) = event.take_ack() {
                    let _ = ack.send(&"pong");
                }
            });
            let left_tx = left_tx.clone();
            socket.on_disconnect(move |_, reason| {
                let _ = left_tx.lock().unwrap().send(reason);
            });
        });
    }
    let addr = spawn_socketio(runtime, io);
    let url = format!("http://{addr}");
    let connect = |transport| {
        ClientBuilder::new(&url)
            .transports([transport])
            .reconnection(false)
            .connect(Threads)
            .wait()
            .expect("connect")
    };

    let flooder = connect(Transport::WebSocket);
    let (kicked_tx, kicked) = mpsc::channel();
    flooder.on_disconnect(move |_, reason| {
        let _ = kicked_tx.send(reason);
    });
    let mut sent = 0;
    let reason = loop {
        assert!(sent < 50, "{sent} events pending and still connected");
        flooder.emit("work", &json!([sent])).expect("emit");
        sent += 1;
        if let Ok(reason) = kicked.recv_timeout(Duration::from_millis(20)) {
            break reason;
        }
    };
    assert_eq!(reason, ClientReason::IoServerDisconnect);

    let other = connect(Transport::Polling);
    let answer = other
        .emit_with_ack("ping", &json!([]), WAIT)
        .expect("emit")
        .wait()
        .expect("another client is served while the handlers wait");
    assert_eq!(answer.values(), [json!("pong")]);

    gate_keeper.close();
    assert_eq!(
        left.recv_timeout(WAIT),
        Ok(DisconnectReason::ServerNamespaceDisconnect)
    );
    // Everything accepted before the disconnect is handled; nothing after.
    std::thread::sleep(Duration::from_millis(200));
    let handled = handled.load(Ordering::SeqCst);
    assert!(
        (LIMIT..=2 * LIMIT + 2).contains(&handled) && handled <= sent,
        "{handled} of {sent} events handled"
    );
    other.io().disconnect();
}

/// Sync and async handlers that panic: the same socket's next event, and
/// its ack, are still handled.
fn panics_lose_only_their_event(runtime: RuntimeKind) {
    let io = SocketIo::new(SocketIoConfig::default());
    io.ns("/", |socket| {
        socket.on("boom", |_, _| panic!("a sync handler failed"));
        socket.on_async("boom-async", |_, _| async {
            panic!("an async handler failed")
        });
        socket.on("ping", |_, mut event| {
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&"pong");
            }
        });
    });
    let url = format!("http://{}", spawn_socketio(runtime, io));
    let client = ClientBuilder::new(&url)
        .transports([Transport::WebSocket])
        .reconnection(false)
        .connect(Threads)
        .wait()
        .expect("connect");
    for round in 0..3 {
        client.emit("boom", &json!([])).expect("emit");
        client.emit("boom-async", &json!([])).expect("emit");
        let answer = client
            .emit_with_ack("ping", &json!([round]), WAIT)
            .expect("emit")
            .wait()
            .expect("the next event is handled after a panic");
        assert_eq!(answer.values(), [json!("pong")]);
    }
    assert!(client.connected());
    client.io().disconnect();
}

/// Both scenarios on `$kind`, as the modules `tokio`, `smol`, `async_std`
/// and `threads`.
macro_rules! runtime_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn backlog_is_bounded() {
                super::backlog_is_bounded($kind);
            }

            #[test]
            fn panics_lose_only_their_event() {
                super::panics_lose_only_their_event($kind);
            }
        }
    };
}

runtime_suite!(tokio, RuntimeKind::Tokio);
runtime_suite!(smol, RuntimeKind::Smol);
runtime_suite!(async_std, RuntimeKind::AsyncStd);
runtime_suite!(threads, RuntimeKind::Threads);
