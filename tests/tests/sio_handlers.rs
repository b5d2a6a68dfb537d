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
//! - A client's burst (over WebSocket or in one POST) to handlers that make
//!   progress is not disconnected: its connection waits for them (up to
//!   5 s without progress), so TCP holds the client back.
//! - A handler that panics, sync or async, loses only its own event: the
//!   same socket's next event is handled.
//! - An async connection handler (`SocketIo::ns_async`) registers the
//!   socket's handlers, waits, and goes on after its wait.
//! - Our client, on every runtime's driver, runs at most
//!   `ClientBuilder::max_running_handlers` async handlers at once: past
//!   them it reads nothing more from the server (which keeps the rest
//!   queued) and loses nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::json;
use switchboard_async::socketio::client::{
    AckError, ClientBuilder, DisconnectReason as ClientReason, Transport,
};
use switchboard_async::socketio::{DisconnectReason, Event, Socket, SocketIo, SocketIoConfig};
use switchboard_conformance::raw::{RawConn, frame};
use switchboard_conformance::runtime::spawn_socketio;
use switchboard_conformance::sio_client::ClientRuntime;
use switchboard_conformance::{RuntimeKind, eio_cases};
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
    // On threads the connection first waits up to 5 s for the handlers
    // (HANDLERS_CATCH_UP) before handing on what it read.
    let mut sent = 0;
    let reason = loop {
        assert!(sent < 400, "{sent} events pending and still connected");
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

/// Starts a server on `runtime` that answers `flood` by emitting `tick`
/// with 0, 1, ... up to `events` - 1 at once; returns its URL.
fn spawn_ticker(runtime: RuntimeKind, events: u64) -> String {
    let io = SocketIo::new(SocketIoConfig::default());
    io.ns("/", move |socket| {
        socket.on("flood", move |socket, _| {
            for n in 0..events {
                socket.emit("tick", &json!(n)).expect("emit");
            }
        });
    });
    format!("http://{}", spawn_socketio(runtime, io))
}

/// A server that emits more events than the client's handler limit at
/// once: the client's async handlers, which wait until the test lets them
/// go, never run more than the limit at a time, the client stays
/// connected, and every event is handled once they are let go.
fn client_handlers_are_bounded(runtime: RuntimeKind) {
    const EVENTS: usize = 40;
    let url = spawn_ticker(runtime, EVENTS as u64);

    let (gate_keeper, gate) = async_channel::bounded::<()>(1);
    let running = Arc::new(AtomicUsize::new(0));
    let most_running = Arc::new(AtomicUsize::new(0));
    let (handled_tx, handled) = mpsc::channel::<u64>();
    let handled_tx = Arc::new(Mutex::new(handled_tx));
    let (left_tx, left) = mpsc::channel::<ClientReason>();
    let builder = ClientBuilder::new(&url)
        .transports([Transport::WebSocket])
        .reconnection(false)
        .max_running_handlers(LIMIT)
        .on_async("tick", {
            let (running, most_running) = (running.clone(), most_running.clone());
            move |_, event| {
                let (gate, handled_tx) = (gate.clone(), handled_tx.clone());
                let (running, most_running) = (running.clone(), most_running.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most_running.fetch_max(now, Ordering::SeqCst);
                    let _ = gate.recv().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    let (n,): (u64,) = event.args().expect("tick's number");
                    let _ = handled_tx.lock().unwrap().send(n);
                }
            }
        })
        .on_disconnect(move |_, reason| {
            let _ = left_tx.send(reason);
        });
    let driver = ClientRuntime::new(runtime);
    let client = driver.connect(builder).expect("connect");

    client.emit("flood", &json!([])).expect("emit");
    let deadline = std::time::Instant::now() + WAIT;
    while running.load(Ordering::SeqCst) < LIMIT {
        assert!(
            std::time::Instant::now() < deadline,
            "the handlers did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Time for more handlers to start, were the limit not kept.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(most_running.load(Ordering::SeqCst), LIMIT);
    assert!(handled.try_recv().is_err(), "a handler ended early");
    assert!(left.try_recv().is_err(), "the client was disconnected");
    assert!(client.connected());

    gate_keeper.close();
    let mut numbers: Vec<u64> = (0..EVENTS)
        .map(|_| handled.recv_timeout(WAIT).expect("every event is handled"))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..EVENTS as u64).collect::<Vec<_>>());
    assert!(most_running.load(Ordering::SeqCst) <= LIMIT);
    assert!(client.connected());
    client.io().disconnect();
}

/// Handlers that await an ack while the limit is reached: the ack
/// timeouts still fire (the driver runs its timers while it reads nothing),
/// so each handler ends and the next event gets its turn; none is lost.
fn client_handlers_awaiting_acks_do_not_stall(runtime: RuntimeKind) {
    const EVENTS: u64 = 3;
    // Nothing answers `question`.
    let url = spawn_ticker(runtime, EVENTS);
    let (handled_tx, handled) = mpsc::channel::<(u64, bool)>();
    let handled_tx = Arc::new(Mutex::new(handled_tx));
    let builder = ClientBuilder::new(&url)
        .transports([Transport::WebSocket])
        .reconnection(false)
        .max_running_handlers(1)
        .on_async("tick", move |socket, event| {
            let handled_tx = handled_tx.clone();
            async move {
                let (n,): (u64,) = event.args().expect("tick's number");
                let answer = socket
                    .emit_with_ack("question", &json!([]), Duration::from_millis(200))
                    .expect("emit");
                let timed_out = matches!(answer.await, Err(AckError::Timeout));
                let _ = handled_tx.lock().unwrap().send((n, timed_out));
            }
        });
    let driver = ClientRuntime::new(runtime);
    let client = driver.connect(builder).expect("connect");
    client.emit("flood", &json!([])).expect("emit");
    let mut seen: Vec<(u64, bool)> = (0..EVENTS)
        .map(|_| handled.recv_timeout(WAIT).expect("each handler ends"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..EVENTS).map(|n| (n, true)).collect::<Vec<_>>());
    assert!(client.connected());
    client.io().disconnect();
}

/// How many events the burst cases send at once.
const BURST: usize = 2000;

/// The burst cases' server settings: at most 256 events pending per socket,
/// well under a burst.
fn burst_config() -> SocketIoConfig {
    SocketIoConfig {
        max_pending_events: 256,
        ..SocketIoConfig::default()
    }
}

/// The burst: `42["work",n]` for n in `0..BURST`.
fn work_events() -> impl Iterator<Item = String> {
    (0..BURST).map(|n| format!(r#"42["work",{n}]"#))
}

/// A handler's answer to `work` event `n`: `done` with `n`.
fn answer_work(socket: &Socket, event: &Event) {
    let n: u64 = event.arg(0).expect("a number");
    let _ = socket.emit("done", &[n]);
}

/// Checks that `packets` are one `done` for each event of the burst.
fn assert_each_done_once(packets: impl IntoIterator<Item = String>) {
    let mut done = vec![false; BURST];
    for packet in packets {
        let n: usize = packet
            .strip_prefix(r#"42["done","#)
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("expected a done event, got {packet:?}"));
        assert!(!done[n], "event {n} handled twice");
        done[n] = true;
    }
    assert!(done.iter().all(|&d| d), "not every event answered");
}

/// The next WebSocket message within `timeout`, pings answered on the way.
fn next_ws(conn: &mut RawConn, timeout: Duration) -> eio_cases::WsMsg {
    loop {
        match eio_cases::ws_recv(conn, timeout) {
            eio_cases::WsMsg::Text(ping) if ping == "2" => eio_cases::ws_text(conn, "3"),
            other => break other,
        }
    }
}

/// The next packet's text within [`WAIT`], pings answered on the way.
fn next_text(conn: &mut RawConn) -> String {
    match next_ws(conn, WAIT) {
        eio_cases::WsMsg::Text(text) => text,
        other => panic!("expected a packet, got {other:?}"),
    }
}

/// A raw WebSocket session connected to `/`, and the burst written to it
/// in one write.
fn burst_over_websocket(addr: std::net::SocketAddr, frames_per_write: usize) -> RawConn {
    let mut conn = eio_cases::ws_open(addr, "/socket.io/?EIO=4&transport=websocket");
    assert!(next_text(&mut conn).starts_with('0'), "the open packet");
    eio_cases::ws_text(&mut conn, "40");
    assert!(next_text(&mut conn).starts_with("40"), "the CONNECT answer");
    let frames: Vec<Vec<u8>> = work_events()
        .map(|event| frame(1, true, 0, event.as_bytes(), true))
        .collect();
    for writes in frames.chunks(frames_per_write) {
        conn.write(&writes.concat());
    }
    conn
}

/// A server answering `work` events: sync handlers that take 200 µs on
/// the threads pool, async ones that take `async_work` elsewhere.
fn work_handlers(runtime: RuntimeKind, async_work: Duration) -> SocketIo {
    let io = SocketIo::new(burst_config());
    io.ns("/", move |socket| {
        if runtime == RuntimeKind::Threads {
            socket.on("work", |socket, event| {
                std::thread::sleep(Duration::from_micros(200));
                answer_work(&socket, &event);
            });
        } else {
            socket.on_async("work", move |socket, event| async move {
                ::smol::Timer::after(async_work).await;
                answer_work(&socket, &event);
            });
        }
    });
    io
}

/// A polling session connected to `/` at `addr`.
fn polling_socket(addr: std::net::SocketAddr) -> eio_cases::Polling {
    let mut session = eio_cases::Polling::open_any(addr, "/socket.io/");
    session.post_ok("40");
    let connected = session.recv_messages(1);
    assert!(connected[0].starts_with("40"), "{connected:?}");
    session
}

/// The burst in one POST: every event is answered once and the socket
/// stays.
fn polling_burst_is_handled(addr: std::net::SocketAddr) {
    let mut session = polling_socket(addr);
    session.post_ok(&work_events().collect::<Vec<_>>().join("\x1e"));
    assert_each_done_once(session.recv_messages(BURST));
    session.post_ok(r#"42["work",7]"#);
    assert_eq!(session.recv_messages(1), [r#"42["done",7]"#]);
}

/// A client that emits more events at once than its socket's handler
/// backlog holds (`max_pending_events`, here 256: a client emitting in a
/// loop, in one write) is not disconnected: its connection hands the rest
/// of the read over as the handlers catch up (sync handlers on the threads
/// pool, async ones on the async runtimes), and every event is handled.
fn a_burst_waits_for_the_handlers(runtime: RuntimeKind) {
    burst_waits_for_the_handlers(runtime, BURST);
}

/// The same burst written a few events at a time, so that the server reads
/// it in many small reads (fewer events than it hands over at once): each
/// hand-over waits for room, not only the rest of a large read.
fn a_burst_in_small_writes_waits_for_the_handlers(runtime: RuntimeKind) {
    burst_waits_for_the_handlers(runtime, 8);
}

fn burst_waits_for_the_handlers(runtime: RuntimeKind, frames_per_write: usize) {
    // A little work per event, so that the burst outruns the handlers.
    let io = work_handlers(runtime, Duration::from_micros(200));
    let mut conn = burst_over_websocket(spawn_socketio(runtime, io), frames_per_write);
    assert_each_done_once((0..BURST).map(|_| next_text(&mut conn)));
    // Still connected: one more event is handled.
    eio_cases::ws_text(&mut conn, r#"42["work",0]"#);
    assert_eq!(next_text(&mut conn), r#"42["done",0]"#);
}

/// The same over polling: the client sends what it buffered in one POST,
/// here 2,000 events for sync handlers that take a little time (on the
/// threads pool, or in place on the async runtimes); the POST is answered
/// once its events are handed over, none is lost and the socket stays.
fn a_polling_burst_waits_for_the_handlers(runtime: RuntimeKind) {
    let io = SocketIo::new(burst_config());
    io.ns("/", |socket| {
        socket.on("work", |socket, event| {
            std::thread::sleep(Duration::from_micros(200));
            answer_work(&socket, &event);
        });
    });
    polling_burst_is_handled(spawn_socketio(runtime, io));
}

/// The same for async handlers (on the async runtimes; sync ones on the
/// threads pool): they run at once, each a task, up to `max_pending_events`
/// (256 here) per socket; the rest of the POST waits for them (delivery
/// paused, the POST answered once all are handed over) instead of the
/// socket being disconnected at the limit.
fn a_polling_burst_waits_for_the_async_handlers(runtime: RuntimeKind) {
    let io = work_handlers(runtime, Duration::from_millis(2));
    polling_burst_is_handled(spawn_socketio(runtime, io));
}

/// A burst to handlers that make no progress at all (blocked for good):
/// the connection waits for them once (`HANDLERS_CATCH_UP`, 5 s), not
/// once per batch of the read, then hands the rest over and the socket is
/// disconnected at `max_pending_events`, as a slow flood is.
fn a_burst_to_stuck_handlers_disconnects_after_one_wait(runtime: RuntimeKind) {
    let (io, gate_keeper) = stuck_handlers(runtime);
    let started = std::time::Instant::now();
    let mut conn = burst_over_websocket(spawn_socketio(runtime, io), BURST);
    match next_ws(&mut conn, Duration::from_secs(20)) {
        eio_cases::WsMsg::Text(disconnect) => assert_eq!(disconnect, "41"),
        other => panic!("expected the socket's disconnect, got {other:?}"),
    }
    let took = started.elapsed();
    // One wait of 5 s; a wait per batch of 64 would take three or more.
    assert!(took < Duration::from_secs(9), "disconnected after {took:?}");
    gate_keeper.close();
}

/// The same over polling: the POST is answered after one wait, and the
/// socket disconnected.
fn a_polling_burst_to_stuck_handlers_disconnects_after_one_wait(runtime: RuntimeKind) {
    let (io, gate_keeper) = stuck_handlers(runtime);
    let addr = spawn_socketio(runtime, io);
    let mut session = polling_socket(addr);
    let started = std::time::Instant::now();
    let burst = work_events().collect::<Vec<_>>().join("\x1e");
    session.post_ok_within(&burst, Duration::from_secs(20));
    assert_eq!(session.recv_messages(1), ["41"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(9), "disconnected after {took:?}");
    gate_keeper.close();
}

/// Another POST while the answer to the last one waits for the handlers
/// (a client that does not wait for it) closes the session, as in Node
/// ("data request overlap from client"): 400, and the session is gone.
fn an_overlapping_post_closes_the_session(runtime: RuntimeKind) {
    let (io, gate_keeper) = stuck_handlers(runtime);
    let addr = spawn_socketio(runtime, io);
    let mut session = polling_socket(addr);
    session.start_post(&work_events().collect::<Vec<_>>().join("\x1e"));
    std::thread::sleep(Duration::from_millis(300));
    let overlap = session.post_on_poll_connection(r#"42["work",1]"#);
    assert_eq!(overlap.status, 400, "{}", overlap.head);
    // The held answer goes out (the session is closed meanwhile)...
    let held = session.post_answer(Duration::from_secs(10));
    assert!(held.is_ok(), "{held:?}");
    // ...and the session is gone.
    let r = session.get();
    assert_eq!(r.status, 400, "{}{}", r.head, r.text());
    gate_keeper.close();
}

/// A server whose `work` handlers block until the returned sender closes.
fn stuck_handlers(runtime: RuntimeKind) -> (SocketIo, async_channel::Sender<()>) {
    let io = SocketIo::new(burst_config());
    let (gate_keeper, gate) = async_channel::bounded::<()>(1);
    io.ns("/", move |socket| {
        let gate = gate.clone();
        if runtime == RuntimeKind::Threads {
            socket.on("work", move |_, _| {
                let _ = gate.recv_blocking();
            });
        } else {
            socket.on_async("work", move |_, _| {
                let gate = gate.clone();
                async move {
                    let _ = gate.recv().await;
                }
            });
        }
    });
    (io, gate_keeper)
}

/// The scenarios on `$kind`, as the modules `tokio`, `smol`, `async_std`
/// and `threads`.
/// An async connection handler that registers an event's handler and then
/// waits: the client's first event is handled at once, and what the
/// handler does after its wait still happens.
fn async_connect_handlers(runtime: RuntimeKind) {
    let io = SocketIo::new(SocketIoConfig::default());
    let (release, released) = async_channel::bounded::<()>(1);
    io.ns_async("/", move |socket| {
        let released = released.clone();
        async move {
            socket.on("hello", |socket, _| {
                let _ = socket.emit("hi", &());
            });
            // A slow lookup, say.
            let _ = released.recv().await;
            let _ = socket.emit("ready", &());
        }
    });
    let addr = spawn_socketio(runtime, io);
    let mut conn = eio_cases::ws_open(addr, "/socket.io/?EIO=4&transport=websocket");
    assert!(next_text(&mut conn).starts_with('0'), "the open packet");
    eio_cases::ws_text(&mut conn, "40");
    assert!(next_text(&mut conn).starts_with("40"), "the CONNECT answer");
    eio_cases::ws_text(&mut conn, r#"42["hello"]"#);
    assert_eq!(next_text(&mut conn), r#"42["hi"]"#);
    release.try_send(()).unwrap();
    assert_eq!(next_text(&mut conn), r#"42["ready"]"#);
}

macro_rules! runtime_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn backlog_is_bounded() {
                super::backlog_is_bounded($kind);
            }

            #[test]
            fn a_burst_waits_for_the_handlers() {
                super::a_burst_waits_for_the_handlers($kind);
            }

            #[test]
            fn a_burst_in_small_writes_waits_for_the_handlers() {
                super::a_burst_in_small_writes_waits_for_the_handlers($kind);
            }

            #[test]
            fn a_burst_to_stuck_handlers_disconnects_after_one_wait() {
                super::a_burst_to_stuck_handlers_disconnects_after_one_wait($kind);
            }

            #[test]
            fn a_polling_burst_to_stuck_handlers_disconnects_after_one_wait() {
                super::a_polling_burst_to_stuck_handlers_disconnects_after_one_wait($kind);
            }

            #[test]
            fn an_overlapping_post_closes_the_session() {
                super::an_overlapping_post_closes_the_session($kind);
            }

            #[test]
            fn a_polling_burst_waits_for_the_handlers() {
                super::a_polling_burst_waits_for_the_handlers($kind);
            }

            #[test]
            fn a_polling_burst_waits_for_the_async_handlers() {
                super::a_polling_burst_waits_for_the_async_handlers($kind);
            }

            #[test]
            fn async_connect_handlers() {
                super::async_connect_handlers($kind);
            }

            #[test]
            fn panics_lose_only_their_event() {
                super::panics_lose_only_their_event($kind);
            }

            #[test]
            fn client_handlers_are_bounded() {
                super::client_handlers_are_bounded($kind);
            }

            #[test]
            fn client_handlers_awaiting_acks_do_not_stall() {
                super::client_handlers_awaiting_acks_do_not_stall($kind);
            }
        }
    };
}

runtime_suite!(tokio, RuntimeKind::Tokio);
runtime_suite!(smol, RuntimeKind::Smol);
runtime_suite!(async_std, RuntimeKind::AsyncStd);
runtime_suite!(threads, RuntimeKind::Threads);
