//! When handlers run and when the client sees their work, as with Node's server:
//!
//! - The CONNECT answer leaves once the connection handler returns, or
//!   with its first emit: the rooms it joined before are joined when the
//!   client learns it is connected.
//! - An async connection handler (`SocketIo::ns_async`) runs in place up
//!   to its first wait, as a JavaScript `async` listener does: the event
//!   handlers it registers before that are there for the client's first
//!   event, however late the runtime gets to the rest of the handler.
//! - Async event handlers (`Socket::on_async`) run in place up to their
//!   first wait too, in the order of the socket's events.
//!
//! The clients are in memory (the Engine.IO endpoint's requests and
//! WebSocket messages, no network), and the spawner keeps the tasks it is
//! given until the test runs them.

use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
use switchboard_async::socketio::{SocketIo, SocketIoConfig};
use switchboard_core::engineio::ConnId;
use switchboard_core::http::{Limits, Request};
use switchboard_core::ws::Message;

type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server whose spawned tasks wait in `parked` until the test polls them.
fn server() -> (SocketIo, Arc<Mutex<Vec<Task>>>) {
    let io = SocketIo::new(SocketIoConfig::default());
    let parked = Arc::new(Mutex::new(Vec::<Task>::new()));
    let keep = parked.clone();
    io.set_spawner(Arc::new(move |task| keep.lock().unwrap().push(task)));
    (io, parked)
}

/// A client connected to the Engine.IO endpoint over WebSocket, its open
/// packet read.
fn open(io: &SocketIo) -> (ConnId, WsCommands) {
    let head = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n\
                 Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let (request, _) = Request::parse(head, &Limits::default()).unwrap().unwrap();
    let Routed::WebSocket(conn, mut queue) =
        io.engine().handle_request(&request, Default::default())
    else {
        panic!("not routed to a WebSocket");
    };
    assert!(sent(&mut queue)[0].starts_with('0'), "the open packet");
    (conn, queue)
}

fn send(io: &SocketIo, conn: ConnId, packet: &str) {
    io.engine()
        .ws_message(conn, Message::text(packet.to_owned()));
}

/// What the server sent the client since the last look.
fn sent(queue: &mut WsCommands) -> Vec<String> {
    std::iter::from_fn(|| match queue.try_recv() {
        Ok(WsCommand::Send(message)) => message.as_text().map(str::to_owned),
        _ => None,
    })
    .collect()
}

/// Polls every parked task once; keeps those not done.
fn run_parked(parked: &Mutex<Vec<Task>>) {
    let mut cx = Context::from_waker(Waker::noop());
    let tasks = std::mem::take(&mut *parked.lock().unwrap());
    let pending = tasks
        .into_iter()
        .filter_map(|mut task| task.as_mut().poll(&mut cx).is_pending().then_some(task));
    parked.lock().unwrap().extend(pending);
}

#[test]
fn handlers_registered_before_the_first_wait_see_the_first_event() {
    let (io, parked) = server();
    let (release, released) = futures_channel::oneshot::channel::<()>();
    let released = Mutex::new(Some(released));
    io.ns_async("/", move |socket| {
        let released = released.lock().unwrap().take();
        async move {
            socket.on("hello", |socket, _| {
                let _ = socket.emit("hi", &());
            });
            socket.join("lobby").unwrap();
            if let Some(released) = released {
                let _ = released.await;
            }
            let _ = socket.emit("ready", &());
        }
    });
    let (conn, mut queue) = open(&io);
    send(&io, conn, "40");
    assert!(sent(&mut queue)[0].starts_with("40"), "the CONNECT answer");
    // The runtime has not run the handler's task yet.
    send(&io, conn, r#"42["hello"]"#);
    assert_eq!(sent(&mut queue), [r#"42["hi"]"#]);
    assert_eq!(io.of("/").room_size("lobby"), 1);
    // The rest of the handler runs on the runtime, after its wait.
    assert_eq!(parked.lock().unwrap().len(), 1);
    run_parked(&parked);
    assert!(sent(&mut queue).is_empty(), "still waiting");
    release.send(()).unwrap();
    run_parked(&parked);
    assert_eq!(sent(&mut queue), [r#"42["ready"]"#]);
    assert!(parked.lock().unwrap().is_empty());
}

#[test]
fn a_handler_that_never_waits_is_not_spawned() {
    let (io, parked) = server();
    io.ns_async("/", |socket| async move {
        let _ = socket.emit("welcome", &());
    });
    let (conn, mut queue) = open(&io);
    send(&io, conn, "40");
    let answers = sent(&mut queue);
    assert!(answers[0].starts_with("40"), "the CONNECT answer");
    assert_eq!(answers[1..], [r#"42["welcome"]"#]);
    assert!(parked.lock().unwrap().is_empty());
}

#[test]
fn a_panic_before_the_first_wait_loses_only_the_handler() {
    let (io, parked) = server();
    io.ns_async("/", |socket| async move {
        if socket.handshake().auth.get("token").is_none() {
            panic!("no token");
        }
        let _ = socket.emit("welcome", &());
    });
    let (first, mut first_queue) = open(&io);
    send(&io, first, "40");
    assert_eq!(
        sent(&mut first_queue).len(),
        1,
        "the CONNECT answer, no welcome"
    );
    let (second, mut second_queue) = open(&io);
    send(&io, second, r#"40{"token":"t"}"#);
    let answers = sent(&mut second_queue);
    assert!(answers[0].starts_with("40"), "the CONNECT answer");
    assert_eq!(answers[1..], [r#"42["welcome"]"#]);
    assert!(parked.lock().unwrap().is_empty());
    assert_eq!(io.socket_count(), 2);
}

#[test]
fn the_connect_answer_leaves_after_the_handler_or_with_its_first_emit() {
    let (io, _parked) = server();
    // What the client had been sent at points inside the handler.
    let queue: Arc<Mutex<Option<WsCommands>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    {
        let (queue, seen) = (queue.clone(), seen.clone());
        io.ns("/", move |socket| {
            let look = || sent(queue.lock().unwrap().as_mut().unwrap());
            socket.join("lobby").unwrap();
            seen.lock().unwrap().push(look());
            if socket.handshake().auth.get("again").is_some() {
                socket.emit("welcome", &()).unwrap();
                seen.lock().unwrap().push(look());
                socket.join("second").unwrap();
            }
        });
    }
    for auth in ["", r#"{"again":true}"#] {
        let (conn, own_queue) = open(&io);
        *queue.lock().unwrap() = Some(own_queue);
        send(&io, conn, &format!("40{auth}"));
        let mut after = sent(queue.lock().unwrap().as_mut().unwrap());
        let mut seen = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(
            seen.remove(0),
            Vec::<String>::new(),
            "nothing before the handler joined"
        );
        if auth.is_empty() {
            assert!(seen.is_empty());
            assert_eq!(after.len(), 1);
        } else {
            // The first emit takes the answer along, first.
            let during = seen.remove(0);
            assert!(during[0].starts_with("40"), "{during:?}");
            assert_eq!(during[1..], [r#"42["welcome"]"#]);
            after = during;
        }
        assert!(after[0].starts_with(r#"40{"sid":"#), "{after:?}");
    }
    assert_eq!(io.of("/").room_size("lobby"), 2);
    assert_eq!(io.of("/").room_size("second"), 1);
}

#[test]
fn a_panicking_connection_handler_still_lets_the_answer_go() {
    let (io, _parked) = server();
    io.ns("/", |socket| {
        socket.join("lobby").unwrap();
        panic!("the handler failed");
    });
    let (conn, mut queue) = open(&io);
    send(&io, conn, "40");
    assert!(sent(&mut queue)[0].starts_with("40"), "the CONNECT answer");
    // The socket stays connected and is served.
    send(&io, conn, r#"42["anything"]"#);
    assert_eq!(io.socket_count(), 1);
}

#[test]
fn async_event_handlers_run_in_place_up_to_their_first_wait() {
    let (io, parked) = server();
    let (release, released) = futures_channel::oneshot::channel::<()>();
    let released = Arc::new(Mutex::new(Some(released)));
    io.ns("/", move |socket| {
        let released = released.clone();
        socket.on_async("slow", move |socket, _| {
            let released = released.lock().unwrap().take();
            async move {
                let _ = socket.emit("slow started", &());
                if let Some(released) = released {
                    let _ = released.await;
                }
                let _ = socket.emit("slow done", &());
            }
        });
        socket.on_async("quick", |socket, _| async move {
            let _ = socket.emit("quick done", &());
        });
    });
    let (conn, mut queue) = open(&io);
    send(&io, conn, "40");
    assert!(sent(&mut queue)[0].starts_with("40"), "the CONNECT answer");
    io.engine().ws_messages(
        conn,
        [r#"42["slow"]"#, r#"42["quick"]"#].map(|text| Message::text(text.to_owned())),
    );
    assert_eq!(
        sent(&mut queue),
        [r#"42["slow started"]"#, r#"42["quick done"]"#]
    );
    assert_eq!(parked.lock().unwrap().len(), 1, "only the one that waits");
    release.send(()).unwrap();
    run_parked(&parked);
    assert_eq!(sent(&mut queue), [r#"42["slow done"]"#]);
}
