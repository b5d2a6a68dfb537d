//! The Socket.IO client on threads: the same API as on async runtimes
//! ([`ClientBuilder`], [`ClientSocket`], [`SocketIoClient`]), run by
//! [`Threads`], a driver thread over the blocking Engine.IO client.
//!
//! ```
//! use std::time::Duration;
//! use switchboard_threads::socketio::client::{ClientBuilder, Threads};
//! # use switchboard_threads::engineio::{self, Routes};
//! # use switchboard_threads::socketio::{SocketIo, SocketIoConfig};
//! # // `chat` is sent back with the auth's token; `sum` is answered.
//! # let io = SocketIo::new(SocketIoConfig::default());
//! # io.ns("/", |socket| {
//! #     socket.on("chat", |socket, event| {
//! #         let token = socket.handshake().auth["token"].as_str().unwrap_or("").to_owned();
//! #         let text: String = event.arg(0).unwrap_or_default();
//! #         let _ = socket.emit("chat", &format!("{token}: {text}"));
//! #     });
//! #     socket.on("sum", |_, mut event| {
//! #         let (a, b): (i64, i64) = event.args().unwrap_or_default();
//! #         if let Some(ack) = event.take_ack() {
//! #             let _ = ack.send(&(a + b));
//! #         }
//! #     });
//! # });
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let url = format!("http://{}", listener.local_addr()?);
//! # let routes = Routes::new().socketio("/socket.io/", &io);
//! # std::thread::spawn(move || engineio::serve(listener, routes));
//! // A server at `url` (`http://127.0.0.1:port`).
//! let (chats, chat) = std::sync::mpsc::channel();
//! let socket = ClientBuilder::new(&url)
//!     .auth(&std::collections::HashMap::from([("token", "abc")]))
//!     .on("chat", move |_socket, event| {
//!         let _ = chats.send(event.arg::<String>(0).unwrap_or_default());
//!     })
//!     .connect(Threads)
//!     .wait()?;
//! socket.emit("chat", "hello")?;
//! assert_eq!(chat.recv_timeout(Duration::from_secs(5))?, "abc: hello");
//! let answer = socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.wait()?;
//! assert_eq!(answer.args::<(i64,)>()?, (3,));
//! socket.io().disconnect();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One driver thread per client waits for what its session threads report
//! (the handshake, each message, the close) or for the core's next
//! deadline; each Engine.IO session runs on the threads of the blocking
//! Engine.IO client, with one more thread forwarding its events. Handlers
//! run on the driver thread: keep them short, and never block in one on
//! [`AckFuture::wait`] (use
//! [`ClientSocket::emit_with_ack_callback`] there).

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

pub use switchboard_async::socketio::client::*;
use switchboard_core::engineio::MessageData;
use switchboard_core::engineio::client::ClientConfig as EngineConfig;

use crate::engineio::client::{ClientEvent, ClientSendError, ClientSender, EngineIoClient};

/// The driver of a client on threads: pass it where async runtimes pass
/// theirs (`ClientBuilder::connect(Threads)`). Each client gets a driver
/// thread of its own; what waits for the server ([`Connecting::wait`],
/// [`ConnectFuture::wait`], [`AckFuture::wait`]) blocks the calling
/// thread.
///
/// ```
/// use switchboard_threads::socketio::client::{ClientBuilder, SocketIoClient, Threads};
/// # use switchboard_threads::engineio::{self, Routes};
/// # use switchboard_threads::socketio::{SocketIo, SocketIoConfig};
/// # let io = SocketIo::new(SocketIoConfig::default());
/// # io.ns("/", |_| {});
/// # io.ns("/admin", |_| {});
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let url = format!("http://{}", listener.local_addr()?);
/// # let routes = Routes::new().socketio("/socket.io/", &io);
/// # std::thread::spawn(move || engineio::serve(listener, routes));
/// // A server at `url` with namespaces `/` and `/admin`.
/// let socket = SocketIoClient::connect(Threads, &url).wait()?;
/// let admin = ClientBuilder::new(&format!("{url}/admin")).connect(Threads).wait()?;
/// assert!(socket.connected() && admin.connected());
/// assert_eq!(io.socket_count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Threads;

impl EngineLink for ClientSender {
    fn send(&self, message: MessageData) -> Result<(), ClientSendError> {
        ClientSender::send(self, message)
    }

    fn close(&self) {
        ClientSender::close(self)
    }
}

enum Input {
    Wake,
    Opened(u64, OpenedLink, String),
    Failed(u64, String),
    Event(u64, ClientEvent),
}

/// An opened session's sender on its way to the hub: closed if dropped
/// before the hub takes it (the client went meanwhile, its driver with
/// it), rather than left open until the server gives up on it.
struct OpenedLink(Option<ClientSender>);

impl OpenedLink {
    fn new(sender: ClientSender) -> Self {
        OpenedLink(Some(sender))
    }

    fn take(mut self) -> Option<ClientSender> {
        self.0.take()
    }
}

impl Drop for OpenedLink {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            sender.close();
        }
    }
}

/// Wakes the driver, whether it waits for inputs or for room among the
/// handlers (the gate's nudge reaches it there); dropped with the hub, it
/// wakes the driver one last time so that it sees the hub gone.
struct Waker {
    inputs: Mutex<SyncSender<Input>>,
    gate: Arc<HandlerGate>,
}

impl Waker {
    fn wake(&self) {
        // A full channel means the driver has inputs and will look.
        let _ = self
            .inputs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_send(Input::Wake);
        self.gate.nudge();
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.wake();
    }
}

impl ClientDriver for Threads {
    fn start(self, hub: Arc<ClientHub>) {
        start_driver(&hub);
    }
}

/// Starts the driver thread of `hub`; returns where its sessions report.
fn start_driver(hub: &Arc<ClientHub>) -> SyncSender<Input> {
    let (inputs_tx, inputs) = sync_channel(64);
    let gate = hub.handler_gate().clone();
    let waker = Waker {
        inputs: Mutex::new(inputs_tx.clone()),
        gate: gate.clone(),
    };
    hub.set_wake(move || waker.wake());
    let hub = Arc::downgrade(hub);
    let sessions = inputs_tx.clone();
    let spawned = std::thread::Builder::new()
        .name("switchboard-sio-client".into())
        .spawn(move || drive(hub, gate, inputs, inputs_tx));
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the Socket.IO client thread");
    }
    sessions
}

fn drive(
    hub: Weak<ClientHub>,
    gate: Arc<HandlerGate>,
    inputs: Receiver<Input>,
    inputs_tx: SyncSender<Input>,
) {
    loop {
        let deadline = {
            let Some(hub) = hub.upgrade() else {
                return;
            };
            if let Some(generation) = hub.take_open_request() {
                let config = hub.engine_config().clone();
                let inputs = inputs_tx.clone();
                let spawned = std::thread::Builder::new()
                    .name("switchboard-sio-session".into())
                    .spawn(move || run_session(config, generation, inputs));
                if let Err(error) = spawned {
                    hub.session_failed(generation, format!("cannot start a thread: {error}"));
                    continue;
                }
            }
            hub.poll_timeout()
        };
        let input = match deadline {
            Some(deadline) => {
                match inputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(input) => Some(input),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            None => match inputs.recv() {
                Ok(input) => Some(input),
                Err(_) => return,
            },
        };
        if !matches!(input, None | Some(Input::Wake)) && !wait_for_handler_room(&hub, &gate) {
            return;
        }
        let Some(hub) = hub.upgrade() else {
            return;
        };
        match input {
            None => hub.run_timers(),
            Some(Input::Wake) => {}
            Some(Input::Opened(generation, link, sid)) => {
                if let Some(sender) = link.take() {
                    hub.session_opened(generation, Box::new(sender), &sid)
                }
            }
            Some(Input::Failed(generation, error)) => hub.session_failed(generation, error),
            Some(Input::Event(generation, ClientEvent::Message(message))) => {
                hub.session_message(generation, message)
            }
            Some(Input::Event(generation, ClientEvent::Closed { reason, .. })) => {
                hub.session_closed(generation, reason)
            }
            Some(Input::Event(..)) => {}
        }
        // Timers may be due after a long run of inputs.
        if hub.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            hub.run_timers();
        }
    }
}

/// Hands the hub nothing more while its async handlers have no room,
/// running its timers meanwhile (an ack timeout may be what ends a
/// handler; a handler asking for an ack nudges the gate, so the new
/// deadline is seen). Holds the hub only to run them, so that a client
/// dropped meanwhile goes (its [`Waker`] nudges the gate): false then.
fn wait_for_handler_room(hub: &Weak<ClientHub>, gate: &HandlerGate) -> bool {
    loop {
        let deadline = {
            let Some(hub) = hub.upgrade() else {
                return false;
            };
            if hub.poll_timeout().is_some_and(|due| due <= Instant::now()) {
                hub.run_timers();
            }
            hub.poll_timeout()
        };
        if gate.wait_for_room(deadline) {
            return true;
        }
    }
}

/// Opens one Engine.IO session and forwards what happens to it.
fn run_session(config: EngineConfig, generation: u64, inputs: SyncSender<Input>) {
    let mut client = match EngineIoClient::connect_with_config(config) {
        Ok(client) => client,
        Err(error) => {
            let _ = inputs.send(Input::Failed(generation, error.to_string()));
            return;
        }
    };
    let link = OpenedLink::new(client.sender());
    let opened = Input::Opened(generation, link, client.sid().to_owned());
    if inputs.send(opened).is_err() {
        return;
    }
    while let Some(event) = client.recv() {
        let closed = matches!(event, ClientEvent::Closed { .. });
        if inputs.send(Input::Event(generation, event)).is_err() || closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The client on its driver thread: handlers that call back into the
    //! client, and its session and threads ending with it.

    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::socketio::{SocketIo, SocketIoConfig};
    use crate::testing::{HANG, TRANSPORTS, bounded, connect_with, recv, serve, wait_until};

    /// A server whose `ticks` event is answered with `n` numbered `tick`
    /// events, and whose `silence` events are never answered.
    fn ticker() -> (SocketIo, String) {
        let io = SocketIo::new(SocketIoConfig::default());
        io.ns("/", |socket| {
            socket.on("ticks", |socket, event| {
                let n: u64 = event.arg(0).unwrap_or_default();
                for i in 0..n {
                    let _ = socket.emit("tick", &i);
                }
            });
            socket.on("silence", |_, _| {});
        });
        let url = serve(&io);
        (io, url)
    }

    #[test]
    fn handlers_call_back_into_the_client() {
        let (io, url) = ticker();
        for transport in TRANSPORTS {
            let (tx, answers) = mpsc::channel::<Result<(), AckError>>();
            let (left_tx, left) = mpsc::channel::<()>();
            let socket = connect_with(
                ClientBuilder::new(&url)
                    .on("tick", move |socket, _| {
                        // On the driver thread: emits, asks with a callback,
                        // then leaves.
                        let tx = tx.clone();
                        let _ = socket.emit("silence", &());
                        let _ = socket.emit_with_ack_callback(
                            "silence",
                            &(),
                            Duration::from_millis(50),
                            move |answer| {
                                let _ = tx.send(answer.map(|_| ()));
                            },
                        );
                    })
                    .on_disconnect(move |_, _| {
                        let _ = left_tx.send(());
                    }),
                transport,
            );
            socket.emit("ticks", &1).expect("emit");
            assert_eq!(recv(&answers, "the callback"), Err(AckError::Timeout));
            socket.disconnect();
            recv(&left, "the disconnect");
            // Joined again, by the same handle.
            bounded("joining again", {
                let socket = socket.clone();
                move || socket.connect().wait()
            })
            .expect("joined again");
            assert!(socket.connected());
            socket.io().disconnect();
            wait_until("the server sees it leave", || io.socket_count() == 0);
        }
    }

    /// The threads of the process whose name starts with `prefix` (as
    /// Linux keeps them: their first 15 bytes).
    fn threads_named(prefix: &str) -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end().starts_with(prefix))
            .count()
    }

    #[test]
    fn a_dropped_client_closes_its_session_and_its_threads_end() {
        let (io, url) = ticker();
        for transport in TRANSPORTS {
            let socket = connect_with(ClientBuilder::new(&url), transport);
            wait_until("the server sees it", || io.socket_count() == 1);
            drop(socket);
            wait_until("the server sees it leave", || io.socket_count() == 0);
        }
        if std::path::Path::new("/proc/self/task").exists() {
            // Other tests may run clients meanwhile; they end too.
            wait_until("the client threads end", || {
                threads_named("switchboard-sio") == 0
            });
        }
    }

    /// The client dropped while its driver waits for room among its async
    /// handlers (one runs, without the socket, and another event waits
    /// for its turn): the client goes, as on async runtimes, closing its
    /// session, rather than living on until the handler ends.
    #[test]
    fn a_client_dropped_while_its_handlers_are_full_closes_its_session() {
        let (io, url) = ticker();
        for transport in TRANSPORTS {
            let (started_tx, started) = mpsc::channel::<()>();
            let (release_tx, release) = mpsc::channel::<()>();
            let release = Arc::new(Mutex::new(release));
            let socket = connect_with(
                ClientBuilder::new(&url).max_running_handlers(1).on_async(
                    "tick",
                    move |socket, _| {
                        let (started_tx, release) = (started_tx.clone(), release.clone());
                        async move {
                            drop(socket);
                            let _ = started_tx.send(());
                            // Its own thread: blocking is fine here.
                            let _ = release.lock().unwrap().recv_timeout(HANG);
                        }
                    },
                ),
                transport,
            );
            socket.emit("ticks", &3).expect("emit");
            recv(&started, "the first handler");
            // Time for the next tick to reach the driver, which waits for
            // room to hand it over.
            std::thread::sleep(Duration::from_millis(200));
            drop(socket);
            wait_until("the server sees it leave", || io.socket_count() == 0);
            drop(release_tx);
        }
    }

    /// Hands over the hub a client is built with.
    struct Keep(mpsc::Sender<Arc<ClientHub>>);

    impl ClientDriver for Keep {
        fn start(self, hub: Arc<ClientHub>) {
            let _ = self.0.send(hub);
        }
    }

    /// A session opened for a client that is dropped before its driver
    /// takes it (the driver waits for room among the handlers with it):
    /// the session is closed, not left open until the server gives up on
    /// it.
    #[test]
    fn a_session_opened_for_a_dropped_client_is_closed() {
        let (io, url) = ticker();
        let (keep, kept) = mpsc::channel();
        let socket = ClientBuilder::new(&url)
            .max_running_handlers(1)
            .reconnection(false)
            .build(Keep(keep))
            .expect("build");
        let hub = recv(&kept, "the hub");
        let generation = hub.take_open_request().expect("a session is asked for");
        let sessions = start_driver(&hub);
        // An async handler runs: no room for more.
        let pass = hub.handler_gate().enter();
        let config = hub.engine_config().clone();
        let session = EngineIoClient::connect_with_config(config).expect("a session");
        wait_until("the server sees it", || io.engine().session_count() == 1);
        let link = OpenedLink::new(session.sender());
        let opened = Input::Opened(generation, link, session.sid().to_owned());
        sessions.send(opened).expect("the driver is there");
        drop((socket, hub));
        wait_until("the session closed", || io.engine().session_count() == 0);
        drop((pass, session));
    }
}
