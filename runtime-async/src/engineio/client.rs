//! The Engine.IO client on an async runtime: the core's
//! [`Client`] driven over TCP.
//!
//! One driver task owns the session's IO. It makes the HTTP requests the
//! core asks for (on a small pool of keep-alive connections, since a held
//! `GET` poll and a `POST` run at once), opens the WebSocket it asks for
//! (one reader task per WebSocket feeds the messages back), writes
//! WebSocket messages, and sleeps until the core's next deadline. The
//! application's sends go straight into the core under a lock, so
//! [`EngineIoClient::send`] answers at once; the driver is woken to carry
//! them out.
//!
//! Examples with a `runtime` (`switchboard_tokio::Tokio`,
//! `switchboard_smol::Smol::new()`, any [`Runtime`]) that talk to a server
//! only compile here.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::future::{Either, select};
use futures_util::stream::SplitSink;
use futures_util::{AsyncReadExt, AsyncWriteExt, FutureExt, SinkExt, StreamExt};
use switchboard_core::connections::is_closed_by_peer;
use switchboard_core::engineio::client::{
    Client, ClientCloseReason, ClientConfig, ClientError, ClientEvent, ClientSendError,
    ClientTransmit, ConfigError, HttpRequest, RequestId, WsConnect,
};
use switchboard_core::engineio::{MessageData, OpenPacket, TransportKind};
use switchboard_core::http::{Limits, ResponseReader, is_interim};
use switchboard_core::ws::{Config, Message};

use crate::Runtime;
use crate::ws::{WebSocket, client_handshake};

/// Connecting failed.
///
/// Settings that cannot work fail before anything is sent:
///
/// ```
/// use futures_executor::block_on;
/// use switchboard_async::engineio::client::{ConnectError, EngineIoClient};
/// use switchboard_core::engineio::client::{ClientConfig, ConfigError};
/// # #[derive(Clone)]
/// # struct InMemory; // a runtime that never sleeps, spawns or connects: enough here
/// # impl switchboard_async::Runtime for InMemory {
/// #     type Sleep = std::future::Pending<()>;
/// #     type TcpStream = futures_util::io::Cursor<Vec<u8>>;
/// #     type TcpListener = ();
/// #     fn sleep_until(&self, _: std::time::Instant) -> Self::Sleep { std::future::pending() }
/// #     fn spawn<F: Future<Output = ()> + Send + 'static>(&self, _: F) {}
/// #     async fn connect(&self, _: &str, _: u16) -> std::io::Result<Self::TcpStream> { unimplemented!() }
/// #     async fn accept(&self, _: &()) -> std::io::Result<(Self::TcpStream, std::net::SocketAddr)> { unimplemented!() }
/// # }
/// # let runtime = InMemory; // `Tokio`, `Smol::new()`, ...
///
/// let tls = ClientConfig::from_url("https://example.com")?;
/// let error = block_on(EngineIoClient::connect(runtime.clone(), tls)).unwrap_err();
/// assert!(matches!(error, ConnectError::TlsUnsupported));
///
/// let mut neither = ClientConfig::new("localhost", 80);
/// (neither.polling, neither.websocket) = (false, false);
/// let error = block_on(EngineIoClient::connect(runtime, neither)).unwrap_err();
/// assert!(matches!(error, ConnectError::Config(ConfigError::NoTransport)));
/// assert_eq!(error.to_string(), "invalid configuration: no transport allowed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// `https`/`wss`: bring a TLS stream (not supported by this driver yet).
    #[error("TLS is not supported by this driver")]
    TlsUnsupported,
    /// A thread could not be started (the threads adapter's driver).
    #[error("cannot start a thread: {0}")]
    Io(#[from] std::io::Error),
    /// The session closed before its handshake completed.
    #[error("session closed during the handshake: {reason}{}", .error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Closed {
        /// Why.
        reason: ClientCloseReason,
        /// What went wrong.
        error: Option<ClientError>,
    },
}

/// What reaches the driver from its helpers and the application.
enum Input<S, R: Runtime> {
    Http(RequestId, Result<(u16, Bytes), std::io::Error>),
    WsOpened(u64, SplitSink<WebSocket<S, R>, Message>),
    WsMessage(u64, Message),
    /// The WebSocket of a generation ended; with why, if it failed.
    WsClosed(u64, Option<String>),
}

struct Shared {
    client: Mutex<Client>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Client> {
    shared.client.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connected Engine.IO client session.
///
/// [`recv`](Self::recv) yields what the server sends and what happens to
/// the session ([`ClientEvent::Message`], [`ClientEvent::Upgraded`], ...,
/// ending with [`ClientEvent::Closed`]); [`send`](Self::send) queues a
/// message and returns at once.
///
/// ```
/// use switchboard_async::Runtime;
/// use switchboard_async::engineio::client::EngineIoClient;
/// use switchboard_core::engineio::client::ClientConfig;
///
/// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
/// async fn ask<R: Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
///     let config = ClientConfig::from_url("http://localhost:3000")?;
///     let mut client = EngineIoClient::connect(runtime, config).await?;
///     client.send("hello")?;
///     if let Some(answer) = client.recv_message().await {
///         println!("the server says {answer:?}");
///     }
///     client.close().await;
///     Ok(())
/// }
/// ```
pub struct EngineIoClient {
    sender: ClientSender,
    events: mpsc::Receiver<ClientEvent>,
    sid: String,
    handshake: OpenPacket,
}

impl std::fmt::Debug for EngineIoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineIoClient")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

/// Sends on an [`EngineIoClient`] from anywhere; cloneable.
///
/// ```
/// use std::time::Duration;
/// use switchboard_async::Runtime;
/// use switchboard_async::engineio::client::EngineIoClient;
/// use switchboard_core::engineio::client::ClientConfig;
///
/// async fn run<R: Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
///     let config = ClientConfig::from_url("http://localhost:3000")?;
///     let mut client = EngineIoClient::connect(runtime, config).await?;
///     let sender = client.sender();
///     std::thread::spawn(move || {
///         for n in 0.. {
///             if sender.send(format!("tick {n}")).is_err() {
///                 break; // the session closed
///             }
///             std::thread::sleep(Duration::from_secs(1));
///         }
///     });
///     while let Some(message) = client.recv_message().await {
///         println!("{message:?}");
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct ClientSender {
    shared: Arc<Shared>,
    wake: mpsc::Sender<()>,
}

impl std::fmt::Debug for ClientSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSender").finish_non_exhaustive()
    }
}

impl ClientSender {
    /// Queues a message: over WebSocket it goes out at once, over polling
    /// with the next `POST`.
    ///
    /// ```
    /// use switchboard_async::engineio::client::ClientSender;
    /// use switchboard_core::engineio::client::ClientSendError;
    ///
    /// fn report(sender: &ClientSender, reading: f64) -> Result<(), ClientSendError> {
    ///     sender.send(format!("{reading}"))?; // text
    ///     sender.send(reading.to_le_bytes().to_vec()) // binary
    /// }
    /// ```
    pub fn send(&self, data: impl Into<MessageData>) -> Result<(), ClientSendError> {
        lock(&self.shared).send(data.into())?;
        self.wake();
        Ok(())
    }

    /// Closes the session (`forced close`).
    ///
    /// A watchdog that ends the session after a while; the task reading it sees
    /// [`ClientEvent::Closed`]:
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::engineio::client::ClientSender;
    ///
    /// fn close_after(sender: ClientSender, after: Duration) {
    ///     std::thread::spawn(move || {
    ///         std::thread::sleep(after);
    ///         sender.close();
    ///     });
    /// }
    /// ```
    pub fn close(&self) {
        lock(&self.shared).close();
        self.wake();
    }

    fn wake(&self) {
        // A full wake channel already holds a wake-up.
        let _ = self.wake.clone().try_send(());
    }
}

impl EngineIoClient {
    /// Connects to an Engine.IO server and completes the handshake.
    ///
    /// ```
    /// use switchboard_async::Runtime;
    /// use switchboard_async::engineio::client::{ConnectError, EngineIoClient};
    /// use switchboard_core::engineio::client::ClientConfig;
    ///
    /// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
    /// async fn open<R: Runtime>(runtime: R) -> Option<EngineIoClient> {
    ///     // WebSocket only, with a token in the query.
    ///     let config = ClientConfig {
    ///         polling: false,
    ///         query: vec![("token".into(), "s3cret".into())],
    ///         ..ClientConfig::new("localhost", 3000)
    ///     };
    ///     match EngineIoClient::connect(runtime, config).await {
    ///         Ok(client) => Some(client),
    ///         // Refused (an HTTP 403, say), unreachable, timed out:
    ///         Err(ConnectError::Closed { reason, error }) => {
    ///             eprintln!("closed during the handshake: {reason} ({error:?})");
    ///             None
    ///         }
    ///         Err(error) => {
    ///             eprintln!("cannot connect: {error}");
    ///             None
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn connect<R: Runtime>(
        runtime: R,
        config: ClientConfig,
    ) -> Result<Self, ConnectError> {
        if config.secure {
            return Err(ConnectError::TlsUnsupported);
        }
        let client = Client::new(config, Instant::now())?;
        let shared = Arc::new(Shared {
            client: Mutex::new(client),
        });
        let (wake_tx, wake_rx) = mpsc::channel(1);
        let (events_tx, mut events) = mpsc::channel(64);
        runtime.spawn(drive(runtime.clone(), shared.clone(), wake_rx, events_tx));
        match events.next().await {
            Some(ClientEvent::Open { sid, handshake, .. }) => Ok(EngineIoClient {
                sender: ClientSender {
                    shared,
                    wake: wake_tx,
                },
                events,
                sid,
                handshake,
            }),
            Some(ClientEvent::Closed { reason, error }) => {
                Err(ConnectError::Closed { reason, error })
            }
            _ => Err(ConnectError::Closed {
                reason: ClientCloseReason::TransportError,
                error: None,
            }),
        }
    }

    /// The session id.
    ///
    /// See [`EngineIoClient::handshake`]'s example.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The server's handshake (ping interval and timeout, `maxPayload`,
    /// upgrades).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::engineio::client::EngineIoClient;
    ///
    /// fn describe(client: &EngineIoClient) -> String {
    ///     let (sid, open) = (client.sid(), client.handshake());
    ///     let every = Duration::from_millis(open.ping_interval);
    ///     format!("session {sid}: a heartbeat every {every:?}, upgrades {:?}", open.upgrades)
    /// }
    /// ```
    pub fn handshake(&self) -> &OpenPacket {
        &self.handshake
    }

    /// The session's transport at the moment.
    ///
    /// ```
    /// use switchboard_async::engineio::client::EngineIoClient;
    /// use switchboard_core::engineio::TransportKind;
    ///
    /// /// Polling first (unless only WebSocket is allowed), WebSocket once
    /// /// `ClientEvent::Upgraded` came.
    /// fn over_websocket(client: &EngineIoClient) -> bool {
    ///     client.transport() == TransportKind::WebSocket
    /// }
    /// ```
    pub fn transport(&self) -> TransportKind {
        lock(&self.sender.shared).transport()
    }

    /// The next event; `None` after [`ClientEvent::Closed`].
    ///
    /// ```
    /// use switchboard_async::engineio::client::EngineIoClient;
    /// use switchboard_core::engineio::client::ClientEvent;
    ///
    /// async fn follow(client: &mut EngineIoClient) {
    ///     while let Some(event) = client.recv().await {
    ///         match event {
    ///             ClientEvent::Message(data) => println!("message: {data:?}"),
    ///             ClientEvent::Upgraded => println!("now over WebSocket"),
    ///             ClientEvent::UpgradeFailed(error) => println!("still polling: {error}"),
    ///             ClientEvent::Closed { reason, .. } => println!("closed: {reason}"),
    ///             _ => {} // `Open` came with `connect`
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.events.next().await
    }

    /// The next message from the server, skipping other events; `None` once
    /// the session closed.
    ///
    /// ```
    /// use switchboard_async::engineio::client::EngineIoClient;
    /// use switchboard_core::engineio::MessageData;
    ///
    /// /// Sends `question`, and waits for the next message.
    /// async fn ask(client: &mut EngineIoClient, question: &str) -> Option<String> {
    ///     client.send(question.to_owned()).ok()?;
    ///     match client.recv_message().await? {
    ///         MessageData::Text(text) => Some(text.to_string()),
    ///         MessageData::Binary(_) => None,
    ///     }
    /// }
    /// ```
    pub async fn recv_message(&mut self) -> Option<MessageData> {
        loop {
            match self.events.next().await? {
                ClientEvent::Message(data) => return Some(data),
                ClientEvent::Closed { .. } => return None,
                _ => {}
            }
        }
    }

    /// Queues a message (see [`ClientSender::send`]).
    ///
    /// ```
    /// use switchboard_async::engineio::client::EngineIoClient;
    /// use switchboard_core::engineio::client::ClientSendError;
    ///
    /// fn upload(client: &EngineIoClient, name: &str, data: Vec<u8>) -> Result<(), ClientSendError> {
    ///     client.send(name.to_owned())?; // text
    ///     client.send(data) // binary
    /// }
    /// ```
    pub fn send(&self, data: impl Into<MessageData>) -> Result<(), ClientSendError> {
        self.sender.send(data)
    }

    /// A cloneable sender for other tasks and threads.
    ///
    /// See [`ClientSender`]'s example.
    pub fn sender(&self) -> ClientSender {
        self.sender.clone()
    }

    /// Closes the session (`forced close`) and waits for it to end.
    ///
    /// ```
    /// use switchboard_async::engineio::client::EngineIoClient;
    ///
    /// async fn goodbye(mut client: EngineIoClient) {
    ///     let _ = client.send("bye");
    ///     client.close().await; // `bye` goes out first
    ///     assert!(client.recv().await.is_none());
    /// }
    /// ```
    pub async fn close(&mut self) {
        self.sender.close();
        while let Some(event) = self.events.next().await {
            if matches!(event, ClientEvent::Closed { .. }) {
                break;
            }
        }
    }
}

/// Idle keep-alive HTTP connections of one session.
type Pool<S> = Arc<Mutex<Vec<S>>>;

async fn drive<R: Runtime>(
    runtime: R,
    shared: Arc<Shared>,
    wake: mpsc::Receiver<()>,
    mut events: mpsc::Sender<ClientEvent>,
) {
    let (host, port, max_payload) = {
        let client = lock(&shared);
        let config = client.config();
        (config.host.clone(), config.port, config.max_payload)
    };
    let mut wake = Some(wake);
    let (inputs_tx, mut inputs) = mpsc::channel::<Input<R::TcpStream, R>>(64);
    let pool: Pool<R::TcpStream> = Arc::new(Mutex::new(Vec::new()));
    // Requests still waiting when the session ends (a poll a silent server
    // holds) are dropped, with their connections, a close timeout later:
    // `ended` resolves once `end` is dropped.
    let (end, ended) = oneshot::channel::<()>();
    let ended = ended.shared();
    let mut ws: Option<SplitSink<WebSocket<R::TcpStream, R>, Message>> = None;
    let mut ws_generation = 0u64;
    loop {
        // Carry out what the core asks for.
        let mut transmits = Vec::new();
        let mut new_events = Vec::new();
        let deadline = {
            let mut client = lock(&shared);
            while let Some(transmit) = client.poll_transmit() {
                transmits.push(transmit);
            }
            while let Some(event) = client.poll_event() {
                new_events.push(event);
            }
            client.poll_timeout()
        };
        for transmit in transmits {
            match transmit {
                ClientTransmit::Http(request) => {
                    let runtime2 = runtime.clone();
                    let pool = pool.clone();
                    let host = host.clone();
                    let mut inputs = inputs_tx.clone();
                    let ended = ended.clone();
                    runtime.spawn(async move {
                        let id = request.id;
                        let exchange =
                            http_exchange(&runtime2, &pool, &host, port, &request, max_payload);
                        if let Either::Left((result, _)) =
                            select(std::pin::pin!(exchange), ended).await
                        {
                            let _ = inputs.send(Input::Http(id, result)).await;
                        }
                    });
                }
                ClientTransmit::WsConnect(connect) => {
                    ws_generation += 1;
                    ws = None;
                    runtime.spawn(run_ws(
                        runtime.clone(),
                        connect,
                        max_payload,
                        ws_generation,
                        inputs_tx.clone(),
                    ));
                }
                ClientTransmit::WsSend(message) => {
                    let failed = match ws.as_mut() {
                        Some(sink) => sink.send(message).await.is_err(),
                        None => false,
                    };
                    if failed {
                        ws = None;
                        lock(&shared).ws_closed(Instant::now());
                    }
                }
                ClientTransmit::WsClose => {
                    if let Some(mut sink) = ws.take() {
                        let _ = sink.close().await;
                    }
                }
            }
        }
        let mut closed = false;
        for event in new_events {
            closed |= matches!(event, ClientEvent::Closed { .. });
            if events.send(event).await.is_err() {
                // The application dropped the client: end the session.
                lock(&shared).close();
            }
        }
        if closed {
            if let Some(mut sink) = ws.take() {
                let _ = sink.close().await;
            }
            // As long as a closing WebSocket gets, for a `close` POST or a
            // poll the server is answering.
            let linger = runtime.sleep_until(Instant::now() + Config::default().close_timeout);
            runtime.spawn(async move {
                linger.await;
                drop(end);
            });
            return;
        }
        // Wait for something to happen.
        let sleep = match deadline {
            Some(deadline) => Either::Left(runtime.sleep_until(deadline)),
            None => Either::Right(std::future::pending::<()>()),
        };
        let sleep = std::pin::pin!(sleep);
        let app = async {
            match wake.as_mut() {
                Some(wake) => wake.next().await,
                None => std::future::pending().await,
            }
        };
        let woke = match select(select(inputs.next(), std::pin::pin!(app)), sleep).await {
            Either::Left((Either::Left((input, _)), _)) => Woke::Input(input),
            Either::Left((Either::Right((wake, _)), _)) => Woke::App(wake),
            Either::Right(_) => Woke::Timer,
        };
        let now = Instant::now();
        let timer = matches!(woke, Woke::Timer);
        let mut client = lock(&shared);
        match woke {
            Woke::Input(Some(input)) => match input {
                Input::Http(id, Ok((status, body))) => {
                    client.handle_http_response(id, status, body, now)
                }
                Input::Http(id, Err(error)) => {
                    tracing::debug!(%error, "Engine.IO HTTP request failed");
                    client.handle_http_error(id, error, now)
                }
                Input::WsOpened(generation, sink) if generation == ws_generation => {
                    ws = Some(sink);
                    client.ws_opened(now);
                }
                Input::WsMessage(generation, message) if generation == ws_generation => {
                    client.ws_message(message, now)
                }
                Input::WsClosed(generation, failure) if generation == ws_generation => {
                    ws = None;
                    match failure {
                        Some(reason) => client.ws_failed(reason, now),
                        None => client.ws_closed(now),
                    }
                }
                Input::WsOpened(..) | Input::WsMessage(..) | Input::WsClosed(..) => {}
            },
            // The driver holds a sender of its own inputs: never the end.
            Woke::Input(None) => {}
            Woke::App(Some(())) => {}
            // The application's handles are gone: end the session.
            Woke::App(None) => {
                wake = None;
                client.close();
            }
            Woke::Timer => client.handle_timeout(now),
        }
        // Inputs that never stop coming must not hold the timers off.
        if !timer && deadline.is_some_and(|deadline| deadline <= now) {
            client.handle_timeout(now);
        }
    }
}

/// Why the driver woke up.
enum Woke<I> {
    Input(Option<I>),
    App(Option<()>),
    Timer,
}

/// Opens the WebSocket, hands its sending half to the driver, and feeds
/// its messages back until it ends.
async fn run_ws<R: Runtime>(
    runtime: R,
    connect: WsConnect,
    max_payload: usize,
    generation: u64,
    mut inputs: mpsc::Sender<Input<R::TcpStream, R>>,
) {
    let config = Arc::new(Config {
        max_message_size: max_payload,
        max_frame_size: max_payload,
        ..Config::default()
    });
    let headers: Vec<(&str, &str)> = connect
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let opened = match runtime.connect(&connect.url.host, connect.url.port).await {
        Ok(io) => client_handshake(runtime, io, &connect.url, config, &headers).await,
        Err(error) => Err(error.into()),
    };
    let ws = match opened {
        Ok(ws) => ws,
        Err(error) => {
            tracing::debug!(%error, "Engine.IO WebSocket failed to open");
            let _ = inputs
                .send(Input::WsClosed(generation, Some(error.to_string())))
                .await;
            return;
        }
    };
    let (sink, mut stream) = ws.split();
    if inputs
        .send(Input::WsOpened(generation, sink))
        .await
        .is_err()
    {
        return;
    }
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(message) if message.is_data() => {
                if inputs
                    .send(Input::WsMessage(generation, message))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "Engine.IO WebSocket failed");
                failure = Some(error.to_string());
                break;
            }
        }
    }
    let _ = inputs.send(Input::WsClosed(generation, failure)).await;
}

/// Makes one HTTP request on a pooled keep-alive connection (or a new
/// one), returning the status and body.
async fn http_exchange<R: Runtime>(
    runtime: &R,
    pool: &Pool<R::TcpStream>,
    host: &str,
    port: u16,
    request: &HttpRequest,
    max_body: usize,
) -> std::io::Result<(u16, Bytes)> {
    let bytes = request.encode();
    loop {
        let pooled = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let reused = pooled.is_some();
        let mut io = match pooled {
            Some(io) => io,
            None => runtime.connect(host, port).await?,
        };
        match exchange_on(&mut io, &bytes, max_body).await {
            Ok((status, body, keep_alive)) => {
                if keep_alive {
                    pool.lock().unwrap_or_else(PoisonError::into_inner).push(io);
                }
                return Ok((status, body));
            }
            // A pooled connection the server closed meanwhile (nothing of
            // an answer came): again on another one.
            Err(Failure {
                error,
                answered: false,
            }) if reused && is_closed_by_peer(&error) => {
                tracing::debug!(%error, "a pooled connection was closed; retrying");
            }
            Err(Failure { error, .. }) => return Err(error),
        }
    }
}

/// An exchange failed with `error`; `answered` if bytes of an answer had
/// arrived.
struct Failure {
    error: std::io::Error,
    answered: bool,
}

/// Sends `request` and reads its answer (interim `1xx` answers skipped):
/// the status, the body, and whether the connection can be reused.
async fn exchange_on<S>(
    io: &mut S,
    request: &[u8],
    max_body: usize,
) -> Result<(u16, Bytes, bool), Failure>
where
    S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
{
    let mut answered = false;
    let fail = |error, answered| Failure { error, answered };
    io.write_all(request).await.map_err(|e| fail(e, false))?;
    io.flush().await.map_err(|e| fail(e, false))?;
    let mut reader = ResponseReader::new(Limits::default(), max_body);
    let mut buf = vec![0u8; 16 << 10];
    let invalid = |e| {
        fail(
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            true,
        )
    };
    loop {
        if answered {
            match reader.next_response().map_err(invalid)? {
                Some(response) if is_interim(response.response.status) => continue,
                Some(response) => {
                    let keep_alive = !response.truncated
                        && !response.response.headers.has_token("connection", "close");
                    return Ok((response.response.status, response.body, keep_alive));
                }
                None => {}
            }
        }
        let n = io.read(&mut buf).await.map_err(|e| fail(e, answered))?;
        if n == 0 {
            return match reader.handle_eof().map_err(invalid)? {
                Some(response) => Ok((response.response.status, response.body, false)),
                None => Err(fail(std::io::ErrorKind::UnexpectedEof.into(), answered)),
            };
        }
        answered = true;
        reader.receive(&buf[..n]);
    }
}
