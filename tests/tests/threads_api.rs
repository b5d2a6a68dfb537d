//! The threads adapter's own API: a cloneable sender used from many
//! threads, batches, and handlers that block only their own socket.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::json;
use switchboard_async::socketio::client::{ClientBuilder, Transport};
use switchboard_threads::engineio::{Routes, serve};
use switchboard_threads::socketio::client::Threads;
use switchboard_threads::socketio::{SocketIo, SocketIoConfig};

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::runtime::{conformance_config, spawn_ws_echo};
use switchboard_threads::ws::{self, Message};

#[test]
fn cloned_senders_send_from_many_threads_without_loss_or_reordering() {
    let addr = spawn_ws_echo(RuntimeKind::Threads, conformance_config());
    let mut socket = ws::connect(&format!("ws://{addr}/")).expect("connect");
    let senders: Vec<_> = (0..4)
        .map(|thread| {
            let sender = socket.sender();
            std::thread::spawn(move || {
                for i in 0..200 {
                    sender
                        .send(Message::text(format!("{thread}:{i}")))
                        .expect("send");
                }
            })
        })
        .collect();
    let mut next: HashMap<u32, u32> = HashMap::new();
    let mut received = 0;
    while received < 800 {
        let message = socket.recv().expect("open").expect("message");
        let text = message.as_text().expect("text").to_string();
        let (thread, i) = text.split_once(':').unwrap();
        let (thread, i): (u32, u32) = (thread.parse().unwrap(), i.parse().unwrap());
        let expected = next.entry(thread).or_default();
        assert_eq!(i, *expected, "messages of thread {thread} reordered");
        *expected += 1;
        received += 1;
    }
    for handle in senders {
        handle.join().unwrap();
    }
    socket.close(None).expect("close");
    assert!(socket.recv().is_none());
}

#[test]
fn send_all_writes_a_batch_in_order_and_next_buffered_gathers_a_read() {
    let addr = spawn_ws_echo(RuntimeKind::Threads, conformance_config());
    let mut socket = ws::connect(&format!("ws://{addr}/")).expect("connect");
    let batch: Vec<Message> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                Message::text(format!("text {i}"))
            } else {
                Message::binary(vec![i as u8; i])
            }
        })
        .collect();
    socket.sender().send_all(batch.clone()).expect("send_all");
    let mut received = Vec::new();
    while received.len() < batch.len() {
        received.push(socket.recv().expect("open").expect("message"));
        while let Some(next) = socket.next_buffered() {
            received.push(next.expect("message"));
        }
    }
    assert_eq!(received, batch);
    // Nothing is left over: the echo of a later send is the next message.
    socket.send(Message::text("after")).expect("send");
    assert_eq!(
        socket.recv().expect("open").expect("message"),
        Message::text("after")
    );
    socket.close(None).expect("close");
    assert!(socket.recv().is_none());
}

/// Serves `io` at `/socket.io/` on the threads adapter, on a free port, in
/// the background; returns the server's URL.
fn serve_socketio(io: &SocketIo) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let routes = Routes::new().socketio("/socket.io/", io);
    routes.start_timers().expect("timers");
    std::thread::spawn(move || serve(listener, routes));
    url
}

/// A sync handler that blocks (waiting for another client, here) holds
/// back only its own socket: the other client's events are handled by its
/// own connection's thread meanwhile, as in python-socketio's threading
/// mode. With one delivery loop per server, `release` would wait behind
/// `block`, which would give up after its timeout and answer `false`.
#[test]
fn a_blocking_sync_handler_holds_back_only_its_own_socket() {
    let io = SocketIo::new(SocketIoConfig::default());
    let (release, released) = mpsc::channel::<()>();
    let release = Arc::new(Mutex::new(release));
    let released = Arc::new(Mutex::new(released));
    io.ns("/", move |socket| {
        let released = released.clone();
        socket.on("block", move |_, mut event| {
            let got = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(5))
                .is_ok();
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&got);
            }
        });
        let release = release.clone();
        socket.on("release", move |_, mut event| {
            let _ = release.lock().unwrap().send(());
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&true);
            }
        });
    });
    let url = serve_socketio(&io);

    let connect = |transport| {
        ClientBuilder::new(&url)
            .transports([transport])
            .connect(Threads)
            .wait()
            .expect("connect")
    };
    let (blocked, releaser) = (connect(Transport::WebSocket), connect(Transport::Polling));
    let block = blocked
        .emit_with_ack("block", &json!([]), Duration::from_secs(10))
        .expect("emit block");
    // Let `block` reach its handler first.
    std::thread::sleep(Duration::from_millis(200));
    let answer = releaser
        .emit_with_ack("release", &json!([]), Duration::from_secs(3))
        .expect("emit release")
        .wait()
        .expect("release is handled while block's handler waits");
    assert_eq!(answer.values(), [json!(true)]);
    let answer = block.wait().expect("block answers");
    assert_eq!(answer.values(), [json!(true)], "block saw the release");
    blocked.io().disconnect();
    releaser.io().disconnect();
}

/// python-socketio's `sio.call()` from inside a handler: a sync handler
/// asks its own client a question and blocks for the answer. The answer
/// (an ACK for that socket) must reach the waiting handler while it still
/// runs, not queue behind it until the wait times out.
#[test]
fn a_sync_handler_can_block_on_its_own_clients_ack() {
    let io = SocketIo::new(SocketIoConfig::default());
    io.ns("/", |socket| {
        socket.on("ask-back", |socket, mut event| {
            let answer = socket
                .emit_with_ack("question", &json!(["what?"]), Duration::from_secs(5))
                .map_err(|error| error.to_string())
                .and_then(|answer| answer.wait().map_err(|error| error.to_string()));
            if let Some(ack) = event.take_ack() {
                let _ = match answer {
                    Ok(answer) => ack.send(&answer.values()),
                    Err(error) => ack.send(&json!([{ "error": error }])),
                };
            }
        });
    });
    let url = serve_socketio(&io);

    for transport in [Transport::WebSocket, Transport::Polling] {
        let client = ClientBuilder::new(&url)
            .transports([transport])
            .on("question", |_, mut event| {
                if let Some(ack) = event.take_ack() {
                    let _ = ack.send(&json!(["forty-two"]));
                }
            })
            .connect(Threads)
            .wait()
            .expect("connect");
        let answer = client
            .emit_with_ack("ask-back", &json!([]), Duration::from_secs(3))
            .expect("emit")
            .wait()
            .expect("the handler answers before its own wait would time out");
        assert_eq!(answer.values(), [json!("forty-two")], "{transport:?}");
        client.io().disconnect();
    }
}
