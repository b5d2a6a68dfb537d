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
    Opened(u64, ClientSender, String),
    Failed(u64, String),
    Event(u64, ClientEvent),
}

/// Wakes the driver; dropped with the hub, it wakes the driver one last
/// time so that it sees the hub gone.
struct Waker(Mutex<SyncSender<Input>>);

impl Waker {
    fn wake(&self) {
        // A full channel means the driver has inputs and will look.
        let _ = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_send(Input::Wake);
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.wake();
    }
}

impl ClientDriver for Threads {
    fn start(self, hub: Arc<ClientHub>) {
        let (inputs_tx, inputs) = sync_channel(64);
        let waker = Waker(Mutex::new(inputs_tx.clone()));
        // The driver may be blocked waiting for handler room rather than
        // for inputs: the gate's nudge reaches it there.
        let gate = hub.handler_gate().clone();
        hub.set_wake(move || {
            waker.wake();
            gate.nudge();
        });
        let hub = Arc::downgrade(&hub);
        let spawned = std::thread::Builder::new()
            .name("switchboard-sio-client".into())
            .spawn(move || drive(hub, inputs, inputs_tx));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the Socket.IO client thread");
        }
    }
}

fn drive(hub: Weak<ClientHub>, inputs: Receiver<Input>, inputs_tx: SyncSender<Input>) {
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
        let Some(hub) = hub.upgrade() else {
            return;
        };
        if !matches!(input, None | Some(Input::Wake)) {
            wait_for_handler_room(&hub);
        }
        match input {
            None => hub.run_timers(),
            Some(Input::Wake) => {}
            Some(Input::Opened(generation, sender, sid)) => {
                hub.session_opened(generation, Box::new(sender), &sid)
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
/// deadline is seen).
fn wait_for_handler_room(hub: &ClientHub) {
    let gate = hub.handler_gate();
    while !gate.wait_for_room(hub.poll_timeout()) {
        if hub.poll_timeout().is_some_and(|due| due <= Instant::now()) {
            hub.run_timers();
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
    let opened = Input::Opened(generation, client.sender(), client.sid().to_owned());
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
