//! The standalone server: HTTP/1.1 keep-alive connections routed to
//! Engine.IO endpoints (long-polling and WebSocket) and to a plain
//! WebSocket handler beside them.
//!
//! A connection reads requests with the core's
//! [`RequestReader`]; a request on an
//! Engine.IO path goes to its [`EngineIo`], whose answer is written back
//! (at once, when a held poll is released, or as a WebSocket pump); a
//! WebSocket upgrade on any other path goes to the WebSocket handler;
//! anything else gets 404.
//!
//! An application with an accept loop of its own hands a connection over
//! with [`serve_connection`], or, after reading its first request head
//! itself (to answer its own paths), with [`serve_request`].
//!
//! Examples with a `runtime` (`switchboard_tokio::Tokio`,
//! `switchboard_smol::Smol::new()`, any [`Runtime`]) only compile here;
//! the others run.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::future::{Either, select};
use futures_util::{AsyncWriteExt, Sink, StreamExt};
use switchboard_core::engineio::HttpResponse;
use switchboard_core::http::{
    HttpError, IncomingRequest, Request, RequestReader, RequestWait, ServerLimits,
};
use switchboard_core::ws::handshake::{self, Rejection};
use switchboard_core::ws::{Config, Message};

use crate::accept::accept_loop;
use crate::engineio::{EngineIo, EngineMounts, Routed, TryRecvError, WsCommand, WsCommands};
use crate::io::poll_read_with;
use crate::socketio::SocketIo;
use crate::timer::{self, LazyTimer, Timed, WeakTimed};
use crate::ws::{WebSocket, accept_request};
use crate::{Error, Runtime};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Answers plain HTTP requests (see [`Routes::http`]).
///
/// It gets the whole body, up to [`ServerLimits::max_http_body`]; a
/// request with a longer one is answered 413 without calling it (see
/// [`RouteTable::answer_http`]).
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use switchboard_async::server::HttpHandler;
/// use switchboard_core::engineio::HttpResponse;
/// use switchboard_core::http::{Limits, Request};
///
/// let pages: HttpHandler = Arc::new(|request: &Request, _body: Bytes| match request.path() {
///     "/" => HttpResponse {
///         status: 200,
///         headers: vec![("Content-Type".into(), "text/html".into())],
///         body: "<h1>Hello</h1>".into(),
///     },
///     _ => HttpResponse { status: 404, headers: vec![], body: "not found".into() },
/// });
/// let (request, _) = Request::parse(b"GET /nope HTTP/1.1\r\n\r\n", &Limits::default())?.unwrap();
/// assert_eq!(pages(&request, Bytes::new()).status, 404);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type HttpHandler = Arc<dyn Fn(&Request, Bytes) -> HttpResponse + Send + Sync>;
type WsHandler<S, R> = Arc<dyn Fn(WebSocket<S, R>) -> BoxFuture + Send + Sync>;

/// The runtime-neutral part of a server's routes: Engine.IO endpoints by
/// path (with the timers they need and the Socket.IO servers behind them),
/// the application's own pages, the WebSocket settings and the HTTP limits.
/// Each runtime's `Routes` is this plus its kind of WebSocket handler.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use switchboard_async::server::RouteTable;
/// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
/// use switchboard_core::engineio::HttpResponse;
/// use switchboard_core::http::Request;
///
/// let io = SocketIo::new(SocketIoConfig::default());
/// let mut table = RouteTable::default();
/// table.mount_socketio("/socket.io", &io);
/// table.set_http(Arc::new(|_: &Request, _: Bytes| HttpResponse {
///     status: 200,
///     headers: vec![],
///     body: "home".into(),
/// }));
/// assert!(table.engines().engine_for("/socket.io/").is_some());
/// assert!(table.http().is_some());
/// ```
#[derive(Clone)]
pub struct RouteTable {
    engines: EngineMounts,
    timers: Vec<Arc<dyn Timed>>,
    socketios: Vec<SocketIo>,
    http: Option<HttpHandler>,
    ws_config: Arc<Config>,
    /// `ws_config` without permessage-deflate, for Engine.IO connections.
    engine_ws_config: Arc<Config>,
    limits: ServerLimits,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable {
            engines: EngineMounts::default(),
            timers: Vec::new(),
            socketios: Vec::new(),
            http: None,
            ws_config: Arc::new(Config::default()),
            engine_ws_config: Arc::new(Config {
                deflate: None,
                ..Config::default()
            }),
            limits: ServerLimits::default(),
        }
    }
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("engines", &self.engines)
            .field("http", &self.http.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl RouteTable {
    /// Serves `engine` under `path` (see [`EngineMounts::mount`]); its
    /// timer is among [`RouteTable::timers`].
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_async::server::RouteTable;
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let mut table = RouteTable::default();
    /// table.mount_engineio("/engine.io", engine);
    /// assert!(table.engines().engine_for("/engine.io/").is_some());
    /// assert_eq!(table.timers().len(), 1);
    /// ```
    pub fn mount_engineio(&mut self, path: &str, engine: EngineIo) {
        self.timers.push(engine.timed());
        self.engines.mount(path, engine);
    }

    /// Serves the Socket.IO server `io` under `path`.
    ///
    /// ```
    /// use switchboard_async::server::RouteTable;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// let mut table = RouteTable::default();
    /// table.mount_socketio("/socket.io", &io);
    /// assert!(table.engines().engine_for("/socket.io/").is_some());
    /// assert_eq!(table.socketios().len(), 1);
    /// assert_eq!(table.timers().len(), 2); // the Socket.IO server's and its endpoint's
    /// ```
    pub fn mount_socketio(&mut self, path: &str, io: &SocketIo) {
        self.timers.push(io.timed());
        self.socketios.push(io.clone());
        self.mount_engineio(path, io.engine().clone());
    }

    /// Sets the WebSocket settings: as given for plain WebSocket routes,
    /// without permessage-deflate for Engine.IO endpoints that do not
    /// enable it.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_async::server::RouteTable;
    /// use switchboard_core::engineio::ServerConfig;
    /// use switchboard_core::ws::Config;
    ///
    /// let mut table = RouteTable::default();
    /// table.set_ws_config(Config { max_message_size: 1 << 20, ..Config::default() });
    /// assert!(table.ws_config().deflate.is_some()); // as given
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let for_engine = table.engine_ws_config(&engine);
    /// assert!(for_engine.deflate.is_none()); // the endpoint does not enable it
    /// assert_eq!(for_engine.max_message_size, 1 << 20);
    /// ```
    pub fn set_ws_config(&mut self, config: Config) {
        self.engine_ws_config = Arc::new(Config {
            deflate: None,
            ..config.clone()
        });
        self.ws_config = Arc::new(config);
    }

    /// Answers requests no other route takes.
    ///
    /// See [`RouteTable`]'s example, and [`HttpHandler`] for what it gets.
    pub fn set_http(&mut self, handler: HttpHandler) {
        self.http = Some(handler);
    }

    /// Sets the HTTP limits and timeouts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::server::RouteTable;
    /// use switchboard_core::http::ServerLimits;
    ///
    /// let mut table = RouteTable::default();
    /// table.set_limits(ServerLimits {
    ///     keep_alive_timeout: Duration::from_secs(5),
    ///     max_connections: 1_000,
    ///     ..ServerLimits::default()
    /// });
    /// assert_eq!(table.limits().max_connections, 1_000);
    /// ```
    pub fn set_limits(&mut self, limits: ServerLimits) {
        self.limits = limits;
    }

    /// The Engine.IO endpoints.
    ///
    /// See [`RouteTable`]'s example.
    pub fn engines(&self) -> &EngineMounts {
        &self.engines
    }

    /// The timers of the endpoints and Socket.IO servers, for the runtime
    /// to drive.
    ///
    /// A server of one's own starts each with [`spawn_timer`]; by hand here:
    ///
    /// ```
    /// use std::time::Instant;
    /// use switchboard_async::server::RouteTable;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let mut table = RouteTable::default();
    /// table.mount_socketio("/socket.io", &SocketIo::new(SocketIoConfig::default()));
    /// for timed in table.timers() {
    ///     let next = timed.run_timers(Instant::now());
    ///     assert_eq!(next, None); // no client yet: nothing ahead
    /// }
    /// ```
    pub fn timers(&self) -> &[Arc<dyn Timed>] {
        &self.timers
    }

    /// The Socket.IO servers mounted (to give them the runtime's spawner).
    ///
    /// See [`RouteTable::mount_socketio`]'s example.
    pub fn socketios(&self) -> &[SocketIo] {
        &self.socketios
    }

    /// The handler for the application's own pages, if any.
    ///
    /// See [`RouteTable`]'s example.
    pub fn http(&self) -> Option<&HttpHandler> {
        self.http.as_ref()
    }

    /// The settings for plain WebSocket routes.
    ///
    /// See [`RouteTable::set_ws_config`]'s example.
    pub fn ws_config(&self) -> &Arc<Config> {
        &self.ws_config
    }

    /// The settings for `engine`'s WebSocket transport.
    ///
    /// See [`RouteTable::set_ws_config`]'s example.
    pub fn engine_ws_config(&self, engine: &EngineIo) -> Arc<Config> {
        engine.websocket_config(&self.ws_config, &self.engine_ws_config)
    }

    /// The HTTP limits and timeouts.
    ///
    /// See [`RouteTable::set_limits`]'s example.
    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// A request reader for a new connection: heads within the limits,
    /// bodies up to the largest endpoint's payload limit or
    /// [`ServerLimits::max_http_body`], whichever is larger.
    ///
    /// A longer body is cut one byte past that (and marked
    /// [`truncated`](switchboard_core::http::IncomingRequest::truncated)),
    /// so the connection never holds more; the endpoint or
    /// [`answer_http`](Self::answer_http) refuses it.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_async::server::RouteTable;
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// use switchboard_core::http::ServerLimits;
    ///
    /// let mut table = RouteTable::default();
    /// let config = ServerConfig { max_payload: 4, ..ServerConfig::default() };
    /// table.mount_engineio("/engine.io", EngineIo::new(config, |_: &EngineIo, _| {}));
    /// table.set_limits(ServerLimits { max_http_body: 2, ..ServerLimits::default() });
    /// let mut reader = table.request_reader();
    /// reader.receive(b"POST /engine.io/?EIO=4 HTTP/1.1\r\nContent-Length: 3\r\n\r\n4hi");
    /// reader.receive(b"POST /upload HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789");
    /// let first = reader.next_request()?.unwrap();
    /// assert_eq!((&first.body[..], first.truncated), (&b"4hi"[..], false));
    /// let second = reader.next_request()?.unwrap();
    /// assert_eq!((&second.body[..], second.truncated), (&b"12345"[..], true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request_reader(&self) -> RequestReader {
        let max_body = self.engines.max_body().max(self.limits.max_http_body);
        RequestReader::new(self.limits.head, max_body)
    }

    /// The [`http`](Self::http) handler's answer to a request that no
    /// endpoint or WebSocket route took (`None` without a handler): 413
    /// when its body is over [`ServerLimits::max_http_body`] (or was cut
    /// by the reader: `truncated`), without calling the handler.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bytes::Bytes;
    /// use switchboard_async::server::RouteTable;
    /// use switchboard_core::engineio::HttpResponse;
    /// use switchboard_core::http::{Limits, Request, ServerLimits};
    ///
    /// let mut table = RouteTable::default();
    /// let (post, _) = Request::parse(b"POST /upload HTTP/1.1\r\n\r\n", &Limits::default())?.unwrap();
    /// assert!(table.answer_http(&post, Bytes::new(), false).is_none()); // no handler
    /// table.set_http(Arc::new(|_: &Request, body: Bytes| HttpResponse {
    ///     status: 200,
    ///     headers: vec![],
    ///     body: format!("{} bytes", body.len()).into(),
    /// }));
    /// table.set_limits(ServerLimits { max_http_body: 4, ..ServerLimits::default() });
    /// let fits = table.answer_http(&post, Bytes::from_static(b"1234"), false).unwrap();
    /// assert_eq!((fits.status, &fits.body[..]), (200, &b"4 bytes"[..]));
    /// let over = table.answer_http(&post, Bytes::from_static(b"12345"), false).unwrap();
    /// assert_eq!(over.status, 413);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn answer_http(
        &self,
        request: &Request,
        body: Bytes,
        truncated: bool,
    ) -> Option<HttpResponse> {
        let handler = self.http.as_ref()?;
        if truncated || body.len() > self.limits.max_http_body {
            tracing::debug!(
                path = request.path(),
                limit = self.limits.max_http_body,
                "request body over the limit: 413"
            );
            return Some(HttpResponse {
                status: 413,
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body: "Payload Too Large".into(),
            });
        }
        Some(handler(request, body))
    }
}

/// WebSocket handlers by request path (the query left out): a handler for
/// an exact path first, else the one for every other path. Both the async
/// and the threads adapters' routes keep theirs here.
///
/// ```
/// use switchboard_async::server::WsRoutes;
///
/// let mut routes = WsRoutes::default();
/// routes.set_fallback("echo");
/// routes.add("/chat", "chat");
/// assert_eq!(routes.find("/chat"), Some(&"chat"));
/// assert_eq!(routes.find("/chat/"), Some(&"echo"));
/// assert_eq!(routes.find("/other"), Some(&"echo"));
/// ```
#[derive(Debug, Clone)]
pub struct WsRoutes<H> {
    exact: Vec<(String, H)>,
    fallback: Option<H>,
}

impl<H> Default for WsRoutes<H> {
    fn default() -> Self {
        WsRoutes {
            exact: Vec::new(),
            fallback: None,
        }
    }
}

impl<H> WsRoutes<H> {
    /// Handles upgrades on exactly `path` with `handler` (replacing an
    /// earlier handler for that path).
    ///
    /// ```
    /// use switchboard_async::server::WsRoutes;
    ///
    /// let mut routes = WsRoutes::default();
    /// routes.add("/chat", "first");
    /// routes.add("/chat", "second"); // replaces it
    /// assert_eq!(routes.find("/chat"), Some(&"second"));
    /// assert_eq!(routes.find("/chat?room=1"), None); // a path, without the query
    /// ```
    pub fn add(&mut self, path: &str, handler: H) {
        match self.exact.iter_mut().find(|(p, _)| p == path) {
            Some((_, existing)) => *existing = handler,
            None => self.exact.push((path.to_owned(), handler)),
        }
    }

    /// Handles upgrades on every path without a handler of its own.
    ///
    /// See [`WsRoutes`]'s example.
    pub fn set_fallback(&mut self, handler: H) {
        self.fallback = Some(handler);
    }

    /// The handler for an upgrade on `path`, if any.
    ///
    /// See [`WsRoutes`]'s example.
    pub fn find(&self, path: &str) -> Option<&H> {
        self.exact
            .iter()
            .find_map(|(p, handler)| (p == path).then_some(handler))
            .or(self.fallback.as_ref())
    }

    /// The paths with a handler of their own.
    ///
    /// ```
    /// use switchboard_async::server::WsRoutes;
    ///
    /// let mut routes = WsRoutes::default();
    /// routes.add("/chat", 1);
    /// routes.add("/feed", 2);
    /// assert_eq!(routes.paths().collect::<Vec<_>>(), ["/chat", "/feed"]);
    /// assert!(!routes.has_fallback());
    /// routes.set_fallback(0);
    /// assert!(routes.has_fallback());
    /// ```
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.exact.iter().map(|(path, _)| path.as_str())
    }

    /// Whether there is a handler for every other path.
    ///
    /// See [`WsRoutes::paths`]'s example.
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }
}

/// What a server serves: Engine.IO endpoints by path, WebSocket handlers
/// on paths of their own, and one for upgrades on every other path.
///
/// ```
/// use switchboard_async::server::{self, Routes};
/// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
/// use switchboard_async::{Runtime, ws};
/// use switchboard_core::engineio::HttpResponse;
///
/// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
/// async fn run<R: Runtime>(runtime: R, listener: R::TcpListener) {
///     let io = SocketIo::new(SocketIoConfig::default());
///     io.ns("/", |socket| {
///         let _ = socket.emit("welcome", "hello");
///     });
///     let routes = Routes::new()
///         .socketio("/socket.io/", &io)
///         .websocket_at("/echo", ws::echo)
///         .http(|_request, _body| HttpResponse {
///             status: 200,
///             headers: vec![("Content-Type".into(), "text/plain".into())],
///             body: "home".into(),
///         });
///     server::serve(runtime, listener, routes).await;
/// }
/// ```
pub struct Routes<S, R: Runtime> {
    table: RouteTable,
    websocket: WsRoutes<WsHandler<S, R>>,
}

impl<S, R: Runtime> Clone for Routes<S, R> {
    fn clone(&self) -> Self {
        Routes {
            table: self.table.clone(),
            websocket: self.websocket.clone(),
        }
    }
}

impl<S, R: Runtime> std::fmt::Debug for Routes<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("table", &self.table)
            .field(
                "websocket_paths",
                &self.websocket.paths().collect::<Vec<_>>(),
            )
            .field("websocket_fallback", &self.websocket.has_fallback())
            .finish()
    }
}

impl<S, R> Default for Routes<S, R>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<S, R> Routes<S, R>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    /// No routes: every request gets 404.
    ///
    /// See [`Routes`]'s example.
    pub fn new() -> Self {
        Routes {
            table: RouteTable::default(),
            websocket: WsRoutes::default(),
        }
    }

    /// Serves `engine` under `path` (such as `/engine.io/`): every request
    /// whose path starts with it.
    ///
    /// ```
    /// use switchboard_async::Runtime;
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_async::server::Routes;
    /// use switchboard_core::engineio::{ServerConfig, ServerEvent};
    ///
    /// fn routes<R: Runtime>() -> Routes<R::TcpStream, R> {
    ///     let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event| {
    ///         if let ServerEvent::Message { sid, data } = event {
    ///             let _ = engine.send(&sid, data); // echo
    ///         }
    ///     });
    ///     // Engine.IO clients of `http://host:port/engine.io/`.
    ///     Routes::new().engineio("/engine.io/", engine)
    /// }
    /// ```
    pub fn engineio(mut self, path: &str, engine: EngineIo) -> Self {
        self.table.mount_engineio(path, engine);
        self
    }

    /// Serves the Socket.IO server `io` under `path` (such as
    /// `/socket.io/`).
    ///
    /// ```
    /// use switchboard_async::Runtime;
    /// use switchboard_async::server::Routes;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// fn routes<R: Runtime>(io: &SocketIo) -> Routes<R::TcpStream, R> {
    ///     // socket.io-client's default path; a second server on another one.
    ///     let admin = SocketIo::new(SocketIoConfig::default());
    ///     Routes::new().socketio("/socket.io/", io).socketio("/admin/socket.io/", &admin)
    /// }
    /// ```
    pub fn socketio(mut self, path: &str, io: &SocketIo) -> Self {
        self.table.mount_socketio(path, io);
        self
    }

    /// Hands WebSocket upgrades on any other path (no Engine.IO endpoint
    /// and no [`Routes::websocket_at`] of its own) to `handler`.
    ///
    /// ```
    /// use switchboard_async::Runtime;
    /// use switchboard_async::server::Routes;
    /// use switchboard_core::ws::Message;
    ///
    /// fn routes<R: Runtime>() -> Routes<R::TcpStream, R> {
    ///     Routes::new().websocket(|mut ws| async move {
    ///         let _ = ws.send(Message::text("hello")).await;
    ///         while let Some(Ok(message)) = ws.recv().await {
    ///             if message.is_data() && ws.send(message).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    /// }
    /// ```
    pub fn websocket<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(WebSocket<S, R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.websocket
            .set_fallback(Arc::new(move |ws| Box::pin(handler(ws))));
        self
    }

    /// Hands WebSocket upgrades on exactly `path` (whatever the query) to
    /// `handler`; other paths go to [`Routes::websocket`]'s handler, or get
    /// 404 without one.
    ///
    /// ```
    /// use switchboard_async::server::Routes;
    /// use switchboard_async::ws::{self, WebSocket};
    /// use switchboard_async::{Error, Runtime};
    /// use switchboard_core::ws::Message;
    ///
    /// async fn clock<S, R>(mut ws: WebSocket<S, R>) -> Result<(), Error>
    /// where
    ///     S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
    ///     R: Runtime,
    /// {
    ///     ws.send(Message::text(format!("{:?}", std::time::SystemTime::now()))).await?;
    ///     ws.close(None).await
    /// }
    ///
    /// fn routes<R: Runtime>() -> Routes<R::TcpStream, R> {
    ///     Routes::new()
    ///         .websocket_at("/echo", ws::echo) // ws://host:port/echo?any=query
    ///         .websocket_at("/clock", |ws| async move {
    ///             let _ = clock(ws).await;
    ///         })
    /// }
    /// ```
    pub fn websocket_at<F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(WebSocket<S, R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.websocket
            .add(path, Arc::new(move |ws| Box::pin(handler(ws))));
        self
    }

    /// The WebSocket configuration, for Engine.IO's WebSocket transport and
    /// the WebSocket handler.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::server::Routes;
    /// use switchboard_async::{Runtime, ws};
    /// use switchboard_core::ws::{Config, KeepAlive};
    ///
    /// fn routes<R: Runtime>() -> Routes<R::TcpStream, R> {
    ///     Routes::new().websocket(ws::echo).ws_config(Config {
    ///         max_message_size: 64 << 10,
    ///         keepalive: Some(KeepAlive {
    ///             interval: Duration::from_secs(30),
    ///             timeout: Duration::from_secs(10),
    ///         }),
    ///         ..Config::default()
    ///     })
    /// }
    /// ```
    pub fn ws_config(mut self, config: Config) -> Self {
        self.table.set_ws_config(config);
        self
    }

    /// Answers every other HTTP request (no Engine.IO path, no WebSocket
    /// upgrade) with `handler`, e.g. to serve the application's pages;
    /// without one they get 404.
    ///
    /// It gets the whole body, up to [`ServerLimits::max_http_body`]
    /// (2 MiB by default, set with [`limits`](Self::limits)); a request
    /// with a longer one is answered 413 without calling it.
    ///
    /// ```
    /// use switchboard_async::Runtime;
    /// use switchboard_async::server::Routes;
    /// use switchboard_core::engineio::HttpResponse;
    ///
    /// fn routes<R: Runtime>() -> Routes<R::TcpStream, R> {
    ///     Routes::new().http(|request, _body| match request.path() {
    ///         "/" => HttpResponse {
    ///             status: 200,
    ///             headers: vec![("Content-Type".into(), "text/html".into())],
    ///             body: "<h1>Hello</h1>".into(),
    ///         },
    ///         _ => HttpResponse { status: 404, headers: vec![], body: "not found".into() },
    ///     })
    /// }
    /// ```
    pub fn http(
        mut self,
        handler: impl Fn(&Request, Bytes) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.table.set_http(Arc::new(handler));
        self
    }

    /// HTTP limits and timeouts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::Runtime;
    /// use switchboard_async::server::Routes;
    /// use switchboard_core::http::ServerLimits;
    ///
    /// fn routes<R: Runtime>() -> Routes<R::TcpStream, R> {
    ///     Routes::new().limits(ServerLimits {
    ///         keep_alive_timeout: Duration::from_secs(10),
    ///         max_connections: 2_000,
    ///         ..ServerLimits::default()
    ///     })
    /// }
    /// ```
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.table.set_limits(limits);
        self
    }

    /// Starts the timers of every Engine.IO endpoint and Socket.IO server
    /// on `runtime` (once each, however often it is called), and has the
    /// Socket.IO servers spawn their async handlers on it.
    ///
    /// See [`serve_connection`]'s example: [`serve`] calls it itself.
    pub fn start_timers(&self, runtime: &R) {
        for timed in self.table.timers() {
            spawn_timer(runtime, timed.clone());
        }
        for io in self.table.socketios() {
            let runtime = runtime.clone();
            io.set_spawner(Arc::new(move |future| runtime.spawn(future)));
        }
    }
}

/// Runs the timers of `timed` (an Engine.IO endpoint's heartbeats, a
/// Socket.IO server's ack deadlines) on `runtime`, until it is dropped.
/// Only the first call per owner starts a timer.
///
/// An endpoint served by an HTTP server of one's own needs its timer run
/// (heartbeats, upgrade timeouts):
///
/// ```
/// use switchboard_async::Runtime;
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_async::server::spawn_timer;
/// use switchboard_core::engineio::ServerConfig;
///
/// fn endpoint<R: Runtime>(runtime: &R) -> EngineIo {
///     let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
///     spawn_timer(runtime, engine.timed());
///     spawn_timer(runtime, engine.timed()); // no second timer
///     engine // the timer ends once the endpoint is dropped
/// }
/// ```
pub fn spawn_timer<R: Runtime>(runtime: &R, timed: Arc<dyn Timed>) {
    if !timed.timer_signal().claim() {
        return;
    }
    let weak: WeakTimed = Arc::downgrade(&timed);
    drop(timed);
    let rt = runtime.clone();
    // A task dropped unfinished, even before it first ran (its runtime shut
    // down), gives the claim back, so serving the endpoint on another
    // runtime starts a timer there.
    let claim = ReleaseOnDrop(weak.clone());
    runtime.spawn(async move {
        let _claim = claim;
        while let Some(next) = timer::run_once(&weak) {
            let woken = std::future::poll_fn(|cx| timer::poll_woken_or_gone(&weak, cx));
            match next {
                Some(deadline) => {
                    let sleep = std::pin::pin!(rt.sleep_until(deadline));
                    select(sleep, std::pin::pin!(woken)).await;
                }
                None => woken.await,
            }
        }
    });
}

/// Releases its endpoint's timer claim when dropped ([`spawn_timer`]).
struct ReleaseOnDrop(WeakTimed);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(timed) = self.0.upgrade() {
            timed.timer_signal().release();
        }
    }
}

/// Accepts connections on `listener` forever and serves `routes` on each,
/// one task per connection. Accept errors are logged and retried. At most
/// [`ServerLimits::max_connections`] are open at once; at the limit nothing
/// more is accepted until one closes.
///
/// ```
/// use switchboard_async::server::{Routes, serve};
/// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
/// use switchboard_async::{Runtime, ws};
///
/// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
/// async fn run<R: Runtime>(runtime: R, listener: R::TcpListener, io: SocketIo) {
///     let routes = Routes::new().socketio("/socket.io/", &io).websocket(ws::echo);
///     serve(runtime, listener, routes).await; // runs forever
/// }
/// ```
pub async fn serve<R>(runtime: R, listener: R::TcpListener, routes: Routes<R::TcpStream, R>)
where
    R: Runtime,
{
    routes.start_timers(&runtime);
    let max_connections = routes.table.limits().max_connections;
    accept_loop(&runtime, &listener, max_connections, |io, peer, slot| {
        let routes = routes.clone();
        let rt = runtime.clone();
        async move {
            let _slot = slot;
            if let Err(error) = serve_connection(rt, io, routes).await {
                tracing::debug!(%peer, %error, "connection ended");
            }
        }
    })
    .await
}

/// Serves `routes` on one connection the application accepted, until the
/// client closes it, a timeout passes, or it is upgraded to a WebSocket (in
/// which case this returns when the WebSocket ends).
///
/// An accept loop of the application's own:
///
/// ```
/// use switchboard_async::Runtime;
/// use switchboard_async::server::{Routes, serve_connection};
///
/// async fn run<R: Runtime>(
///     runtime: R,
///     listener: R::TcpListener,
///     routes: Routes<R::TcpStream, R>,
/// ) -> std::io::Result<()> {
///     routes.start_timers(&runtime);
///     loop {
///         let (io, peer) = runtime.accept(&listener).await?;
///         let connection = serve_connection(runtime.clone(), io, routes.clone());
///         runtime.spawn(async move {
///             if let Err(error) = connection.await {
///                 eprintln!("{peer}: {error}");
///             }
///         });
///     }
/// }
/// ```
pub fn serve_connection<S, R>(
    runtime: R,
    io: S,
    routes: Routes<S, R>,
) -> impl Future<Output = io::Result<()>> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    let reader = routes.table.request_reader();
    serve_with_reader(runtime, io, routes, reader)
}

/// Serves `routes` on a connection whose first request head the
/// application already read and parsed itself (to route its own paths
/// first): `request` is that head, `buffered` the bytes it read after the
/// head (the start of the body, or of the next requests); the rest is read
/// from `io`. Then goes on like [`serve_connection`] (keep-alive, upgrades).
///
/// Call [`Routes::start_timers`] once beforehand when not using [`serve`].
///
/// ```
/// use futures_util::AsyncWriteExt;
/// use switchboard_async::server::{Routes, serve_request};
/// use switchboard_async::{Error, Runtime, ws};
/// use switchboard_core::ws::Config;
///
/// /// Answers `/health` itself; hands everything else to `routes`.
/// async fn handle<R: Runtime>(
///     runtime: R,
///     mut io: R::TcpStream,
///     routes: Routes<R::TcpStream, R>,
/// ) -> Result<(), Error> {
///     let (request, buffered) = ws::read_request(&mut io, &Config::default()).await?;
///     if request.path() == "/health" {
///         io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await?;
///         return Ok(io.close().await?);
///     }
///     Ok(serve_request(runtime, io, &request, &buffered, routes).await?)
/// }
/// ```
pub fn serve_request<S, R>(
    runtime: R,
    io: S,
    request: &Request,
    buffered: &[u8],
    routes: Routes<S, R>,
) -> impl Future<Output = io::Result<()>> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    let mut reader = routes.table.request_reader();
    // The head goes back in as bytes, so the one reader frames its body
    // (Content-Length or chunked, cut at the limit) as for any request.
    let mut head = format!(
        "{} {} HTTP/1.{}\r\n",
        request.method, request.target, request.version
    );
    for header in &request.headers.0 {
        head.push_str(&header.name);
        head.push_str(": ");
        head.push_str(&header.value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    reader.receive(head.as_bytes());
    reader.receive(buffered);
    serve_with_reader(runtime, io, routes, reader)
}

/// Serves the connection's HTTP requests, then what it was upgraded to.
///
/// Both parts are boxed, each freed when it ends, and the future between
/// them holds only the two boxes: a long-lived WebSocket's task keeps just
/// what its pump needs, not the request reader, routes and handshake
/// (with them inline, an idle Engine.IO session's task was 4.9 KB).
fn serve_with_reader<S, R>(
    runtime: R,
    io: S,
    routes: Routes<S, R>,
    reader: RequestReader,
) -> impl Future<Output = io::Result<()>> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    let http = Box::pin(serve_http(runtime, io, routes, reader));
    async move {
        if let Some(upgraded) = http.await? {
            upgraded.await;
        }
        Ok(())
    }
}

/// The HTTP part of a connection: `Some` WebSocket pump or handler future
/// when it was upgraded.
async fn serve_http<S, R>(
    runtime: R,
    mut io: S,
    routes: Routes<S, R>,
    mut reader: RequestReader,
) -> io::Result<Option<BoxFuture>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    let mut idle = true;
    let mut timer = LazyTimer::default();
    // A request read while a poll was held, not answered early.
    let mut next = None;
    loop {
        let limits = routes.table.limits();
        let incoming = match next.take() {
            Some(incoming) => incoming,
            None => {
                match next_request(&runtime, &mut io, &mut reader, limits, idle, &mut timer).await {
                    Ok(Some(incoming)) => incoming,
                    Ok(None) => return Ok(None),
                    Err(RequestError::Io(error)) => return Err(error),
                    Err(RequestError::Http(error)) => {
                        let rejection = Rejection::from(error);
                        let _ = io.write_all(&rejection.to_response()).await;
                        let _ = io.close().await;
                        return Ok(None);
                    }
                }
            }
        };
        idle = false;
        let IncomingRequest {
            request,
            body,
            truncated,
        } = incoming;
        let keep_alive = request.keep_alive() && !truncated;
        let response = match routes.table.engines().engine_for(request.path()) {
            Some(engine) => match engine.handle_request(&request, body) {
                Routed::Respond(response) => {
                    // A POST whose messages wait for the handlers' room is
                    // answered once they are handed over.
                    if let Some(mut answer) = engine.answer_wait(&request) {
                        while let Some(again) = answer.wait_until() {
                            runtime.sleep_until(again).await;
                        }
                    }
                    response
                }
                Routed::Hold(poll, rx) => {
                    let table = &routes.table;
                    // (Nothing is read as a request behind a last one.)
                    let mut pipelined = Pipelined::new(!keep_alive);
                    let Some(response) =
                        wait_for_poll(&mut io, &mut reader, rx, table, &mut pipelined).await
                    else {
                        engine.poll_aborted(poll);
                        return Ok(None);
                    };
                    let mut response = response;
                    if !keep_alive {
                        response.headers.push(("Connection".into(), "close".into()));
                    }
                    io.write_all(&response.encode_for(&request.method)).await?;
                    if !keep_alive {
                        io.flush().await?;
                        let _ = io.close().await;
                        return Ok(None);
                    }
                    // Then the answers to the requests that came behind it,
                    // in order.
                    let (answered, after) = pipelined.finish();
                    for (engine, request, response) in answered {
                        if let Some(mut answer) = engine.answer_wait(&request) {
                            while let Some(again) = answer.wait_until() {
                                runtime.sleep_until(again).await;
                            }
                        }
                        io.write_all(&response.encode_for(&request.method)).await?;
                    }
                    io.flush().await?;
                    next = after;
                    continue;
                }
                Routed::WebSocket(conn, commands) => {
                    let buffered = reader.take_buffered();
                    let config = routes.table.engine_ws_config(engine);
                    // Dropped during the handshake, or before the pump ran:
                    // the endpoint is told.
                    let closes = ClosesOnDrop(engine.clone(), conn);
                    return Ok(
                        match accept_request(runtime, io, &request, &buffered, config).await {
                            Ok(ws) => Some(Box::pin(async move {
                                pump_engine_ws(&closes.0, conn, ws, commands).await;
                            }) as BoxFuture),
                            Err(error) => {
                                tracing::debug!(%error, "Engine.IO WebSocket handshake failed");
                                drop(closes);
                                None
                            }
                        },
                    );
                }
            },
            None if handshake::is_upgrade_request(&request) => {
                let Some(handler) = routes.websocket.find(request.path()).cloned() else {
                    write_status(&mut io, &request.method, 404, false).await?;
                    return Ok(None);
                };
                let buffered = reader.take_buffered();
                let config = routes.table.ws_config().clone();
                return Ok(
                    match accept_request(runtime, io, &request, &buffered, config).await {
                        Ok(ws) => Some(handler(ws)),
                        Err(error) => {
                            tracing::debug!(%error, "WebSocket handshake failed");
                            None
                        }
                    },
                );
            }
            None => match routes.table.answer_http(&request, body, truncated) {
                Some(response) => response,
                None => {
                    write_status(&mut io, &request.method, 404, keep_alive).await?;
                    if !keep_alive {
                        return Ok(None);
                    }
                    continue;
                }
            },
        };
        let mut response = response;
        if !keep_alive {
            response.headers.push(("Connection".into(), "close".into()));
        }
        io.write_all(&response.encode_for(&request.method)).await?;
        io.flush().await?;
        if !keep_alive {
            let _ = io.close().await;
            return Ok(None);
        }
    }
}

enum RequestError {
    Io(io::Error),
    Http(HttpError),
}

/// Reads until a whole request is buffered. `Ok(None)`: the client closed
/// between requests, or stayed idle past the keep-alive timeout.
async fn next_request<S, R>(
    runtime: &R,
    io: &mut S,
    reader: &mut RequestReader,
    limits: &ServerLimits,
    first: bool,
    timer: &mut LazyTimer<R::Sleep>,
) -> Result<Option<IncomingRequest>, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    let mut wait = RequestWait::new(reader, first, Instant::now());
    loop {
        if let Some(incoming) = reader.next_request().map_err(RequestError::Http)? {
            return Ok(Some(incoming));
        }
        if let Some(interim) = reader.take_interim() {
            io.write_all(interim).await.map_err(RequestError::Io)?;
            io.flush().await.map_err(RequestError::Io)?;
        }
        let deadline = wait.deadline(limits);
        let read = std::future::poll_fn(|cx| {
            let read = poll_read_with(io, cx, |data| {
                reader.receive(data);
                data.len()
            });
            if let Poll::Ready(read) = read {
                return Poll::Ready(Some(read));
            }
            ready!(timer.poll_until(deadline, cx, |at| runtime.sleep_until(at)));
            Poll::Ready(None)
        });
        match read.await {
            Some(Ok(0)) => {
                return if reader.has_partial_request() {
                    Err(RequestError::Io(io::ErrorKind::UnexpectedEof.into()))
                } else {
                    Ok(None)
                };
            }
            Some(Ok(_)) => wait.received(reader, Instant::now()),
            Some(Err(error)) => return Err(RequestError::Io(error)),
            None => {
                return wait
                    .timed_out(limits)
                    .map_or(Ok(None), |e| Err(RequestError::Http(e)));
            }
        }
    }
}

/// The most pipelined `POST`s answered behind a held poll; the rest wait
/// unread, up to [`Pipelined::max_buffered`] bytes.
pub const MAX_ANSWERED_EARLY: usize = 16;

/// A pipelined `POST` answered while a poll was held: its endpoint, its
/// request and the answer to write after the poll's response.
pub type EarlyAnswer = (EngineIo, Request, HttpResponse);

/// The requests a client sends (HTTP/1.1 pipelining) behind a held poll on
/// the same connection, read while the poll waits, on every runtime.
/// Engine.IO `POST`s are handed to their endpoint at once, as Node's HTTP
/// server emits pipelined requests (a message they carry may be what the
/// poll waits for), at most [`MAX_ANSWERED_EARLY`]; their answers are
/// written after the poll's. The first other request is kept, to be
/// handled once those are written.
///
/// ```
/// use switchboard_async::server::{Pipelined, RouteTable};
/// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
/// use switchboard_core::http::{Limits, RequestReader};
///
/// let mut table = RouteTable::default();
/// table.mount_socketio("/socket.io", &SocketIo::new(SocketIoConfig::default()));
/// let mut reader = RequestReader::new(Limits::default(), 1 << 20);
/// reader.receive(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n"); // behind the poll
/// let mut pipelined = Pipelined::new(false);
/// pipelined.answer(&mut reader, &table);
/// let (answered, next) = pipelined.finish();
/// assert!(answered.is_empty()); // not an Engine.IO POST: kept for later
/// assert_eq!(next.map(|incoming| incoming.request.path().to_owned()).as_deref(), Some("/page"));
/// ```
pub struct Pipelined {
    /// Take none: the poll's request is the connection's last.
    stop: bool,
    answered: Vec<EarlyAnswer>,
    next: Option<IncomingRequest>,
}

impl Pipelined {
    /// For a poll whose request is the connection's `last` (then nothing
    /// behind it is taken).
    pub fn new(last: bool) -> Self {
        Pipelined {
            stop: last,
            answered: Vec::new(),
            next: None,
        }
    }

    /// The most bytes a connection may buffer while its poll waits: a
    /// head and the largest body an endpoint takes. Past it the client is
    /// let go (the poll aborted).
    pub fn max_buffered(table: &RouteTable) -> usize {
        table.limits().head.max_head_size + table.engines().max_body()
    }

    /// Hands the Engine.IO `POST`s that `reader` holds to their endpoints,
    /// up to the first other request.
    pub fn answer(&mut self, reader: &mut RequestReader, table: &RouteTable) {
        while !self.stop && self.next.is_none() && self.answered.len() < MAX_ANSWERED_EARLY {
            // A framing error shows again when the request is read next.
            let Ok(Some(incoming)) = reader.next_request() else {
                return;
            };
            let engine = table
                .engines()
                .engine_for(incoming.request.path())
                .filter(|_| {
                    incoming.request.method == "POST"
                        && !incoming.truncated
                        && incoming.request.keep_alive()
                        && !handshake::is_upgrade_request(&incoming.request)
                });
            let Some(engine) = engine else {
                self.next = Some(incoming);
                return;
            };
            let IncomingRequest { request, body, .. } = incoming;
            let response = match engine.handle_request(&request, body) {
                Routed::Respond(response) => response,
                // Not for a `POST`; refused all the same.
                other => {
                    if let Routed::WebSocket(conn, _) = other {
                        engine.ws_closed(conn);
                    }
                    HttpResponse {
                        status: 400,
                        headers: Vec::new(),
                        body: Bytes::new(),
                    }
                }
            };
            self.answered.push((engine.clone(), request, response));
        }
    }

    /// The answers to write after the poll's response, in order, and the
    /// request to handle next.
    pub fn finish(self) -> (Vec<EarlyAnswer>, Option<IncomingRequest>) {
        (self.answered, self.next)
    }
}

/// Waits for a held poll's response while watching the connection: `None`
/// if the client went away (or sent more than a request's worth of bytes
/// while waiting). Requests that come behind the poll go to `pipelined`.
async fn wait_for_poll<S>(
    io: &mut S,
    reader: &mut RequestReader,
    mut rx: crate::engineio::HeldPoll,
    table: &RouteTable,
    pipelined: &mut Pipelined,
) -> Option<switchboard_core::engineio::HttpResponse>
where
    S: AsyncRead + Unpin,
{
    let max_buffered = Pipelined::max_buffered(table);
    loop {
        // What was read with the poll, or since.
        pipelined.answer(reader, table);
        if reader.buffered_len() > max_buffered {
            return None;
        }
        let read = std::future::poll_fn(|cx| {
            poll_read_with(io, cx, |data| {
                reader.receive(data);
                data.len()
            })
        });
        let read = match select(&mut rx, std::pin::pin!(read)).await {
            Either::Left((response, _)) => return response.ok(),
            Either::Right((read, _)) => read,
        };
        match read {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
    }
}

/// Carries an Engine.IO WebSocket: messages in go to the endpoint,
/// commands from it go out, until either side ends (then the endpoint is
/// told with [`EngineIo::ws_closed`]).
///
/// For servers that do the WebSocket handshake themselves (such as an
/// upgrade through hyper): call it with what [`Routed::WebSocket`] gave.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use switchboard_async::engineio::{EngineIo, Routed};
/// use switchboard_async::server::pump_engine_ws;
/// use switchboard_async::{Runtime, ws};
/// use switchboard_core::http::Request;
/// use switchboard_core::ws::Config;
///
/// /// An Engine.IO request an HTTP server of one's own read from `io`, with
/// /// `buffered` bytes after it.
/// async fn engine_request<R: Runtime>(
///     runtime: R,
///     engine: EngineIo,
///     io: R::TcpStream,
///     request: Request,
///     buffered: Bytes,
/// ) {
///     match engine.handle_request(&request, Bytes::new()) {
///         Routed::WebSocket(conn, commands) => {
///             let config = Arc::new(Config { deflate: None, ..Config::default() });
///             match ws::accept_request(runtime, io, &request, &buffered, config).await {
///                 Ok(ws) => pump_engine_ws(&engine, conn, ws, commands).await,
///                 Err(_) => engine.ws_closed(conn), // the handshake failed
///             }
///         }
///         Routed::Respond(_) | Routed::Hold(..) => { /* answer over HTTP */ }
///     }
/// }
/// ```
pub async fn pump_engine_ws<S, R>(
    engine: &EngineIo,
    conn: switchboard_core::engineio::ConnId,
    mut ws: WebSocket<S, R>,
    mut commands: WsCommands,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    // How the pump ended: the WebSocket failed or closed; or the endpoint
    // closed the session (after the sends queued before the close).
    enum End {
        Transport,
        /// The peer broke the protocol: the WebSocket queued a close frame
        /// saying why (1002, 1007, 1009) for the peer to read.
        Failed,
        Endpoint,
        EndpointAfterSends,
    }
    // However the pump ends, dropped unfinished too (its task cancelled),
    // the endpoint is told (again, harmlessly, after the calls below).
    let _closes = ClosesOnDrop(engine.clone(), conn);
    let mut burst = Vec::new();
    let burst_limit = commands.burst_limit();
    let end = loop {
        match select(ws.next(), commands.next()).await {
            Either::Left((Some(Ok(message)), _)) => {
                // The rest of the same read goes to the endpoint in batches
                // (decoded here, outside its lock): one lock and one routing
                // pass per batch. Between batches the answers queued so far
                // are taken, so a read of more messages than the queue holds
                // (a client emitting in a loop) does not overflow it.
                burst.push(message);
                let mut failed = None;
                let mut closing = false;
                loop {
                    while burst.len() < burst_limit {
                        match ws.next_buffered() {
                            Some(Ok(message)) => burst.push(message),
                            Some(Err(error)) => {
                                failed = Some(error);
                                break;
                            }
                            None => break,
                        }
                    }
                    // Handlers behind (async ones still running): the batch
                    // waits for them a little, the answers going out
                    // meanwhile, so a client's burst waits in TCP instead
                    // of overflowing their backlog.
                    let room = |since| engine.room_wait(conn, since);
                    match wait_for_handlers(&mut ws, &mut commands, room).await {
                        Ok(true) => {}
                        Ok(false) => {
                            closing = true;
                            break;
                        }
                        Err(()) => break,
                    }
                    let more = burst.len() == burst_limit;
                    commands.while_busy(|| engine.ws_messages(conn, burst.drain(..)));
                    if failed.is_some() || !more {
                        // Nothing more read: what was handed over still
                        // waiting for room is delivered before the next read.
                        let handed_over = |since| engine.handed_over_wait(conn, since);
                        if let Ok(false) =
                            wait_for_handlers(&mut ws, &mut commands, handed_over).await
                        {
                            closing = true;
                        }
                        // The answers go out now, not after one more read
                        // (the peer usually sends nothing until it has them;
                        // a failed write shows at that read).
                        match feed_queued(&mut ws, &mut commands).await {
                            Ok(true) => {}
                            Ok(false) => closing = true,
                            Err(()) => break,
                        }
                        if let Ok(false) = flush_out(&mut ws, &mut commands).await {
                            closing = true;
                        }
                        break;
                    }
                    match feed_queued(&mut ws, &mut commands).await {
                        Ok(true) => {}
                        Ok(false) => {
                            closing = true;
                            break;
                        }
                        Err(()) => break,
                    }
                }
                if let Some(error) = failed {
                    tracing::debug!(%error, "Engine.IO WebSocket failed");
                    break End::Failed;
                }
                if closing {
                    break End::EndpointAfterSends;
                }
            }
            Either::Left((Some(Err(error)), _)) => {
                tracing::debug!(%error, "Engine.IO WebSocket failed");
                break End::Failed;
            }
            Either::Left((None, _)) => break End::Transport,
            Either::Right((Some(WsCommand::Send(message)), _)) => {
                match feed_one(&mut ws, &mut commands, message).await {
                    Ok(true) => {}
                    Ok(false) => break End::EndpointAfterSends,
                    Err(()) => break End::Transport,
                }
                // Everything already queued goes out in the same write.
                match feed_queued(&mut ws, &mut commands).await {
                    Ok(true) => {}
                    Ok(false) => break End::EndpointAfterSends,
                    Err(()) => break End::Transport,
                }
                match flush_out(&mut ws, &mut commands).await {
                    Ok(true) => {}
                    Ok(false) => break End::EndpointAfterSends,
                    Err(()) => break End::Transport,
                }
            }
            Either::Right((Some(WsCommand::Close), _)) | Either::Right((None, _)) => {
                break End::Endpoint;
            }
        }
    };
    drop(burst);
    // One close site, the WebSocket borrowed: each `.await` holding the
    // WebSocket by value would add its size to every connection's task.
    match end {
        End::Transport => engine.ws_closed(conn),
        End::Failed => {
            engine.ws_closed(conn);
            // Write the close frame, then wait (within the close timeout)
            // for the peer's answer or its end, as a WebSocket route does.
            while ws.next().await.is_some() {}
        }
        End::EndpointAfterSends => {
            close_ws(&mut ws).await;
            engine.ws_closed(conn);
        }
        End::Endpoint => {
            engine.ws_closed(conn);
            close_ws(&mut ws).await;
        }
    }
}

/// Tells the endpoint its WebSocket connection is gone
/// ([`EngineIo::ws_closed`]) when dropped.
struct ClosesOnDrop(EngineIo, switchboard_core::engineio::ConnId);

impl Drop for ClosesOnDrop {
    fn drop(&mut self) {
        self.0.ws_closed(self.1);
    }
}

pub use crate::engineio::HANDLERS_CATCH_UP;

/// Waits while `wait` (given when the wait started) says when to look
/// again, feeding and flushing the endpoint's commands meanwhile:
/// `Ok(false)` when the endpoint closed the session, `Err` when the
/// WebSocket failed.
async fn wait_for_handlers<S, R>(
    ws: &mut WebSocket<S, R>,
    commands: &mut WsCommands,
    mut wait: impl FnMut(Instant) -> Option<Instant>,
) -> Result<bool, ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    let since = Instant::now();
    while let Some(again) = wait(since) {
        if !feed_queued(ws, commands).await? || !flush_out(ws, commands).await? {
            return Ok(false);
        }
        ws.runtime().clone().sleep_until(again).await;
    }
    Ok(true)
}

/// Feeds every command queued for an Engine.IO WebSocket into it (written
/// once enough is buffered): `Ok(false)` when the endpoint closed the
/// session after them, `Err` when the WebSocket failed.
async fn feed_queued<S, R>(ws: &mut WebSocket<S, R>, commands: &mut WsCommands) -> Result<bool, ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    loop {
        match commands.try_recv() {
            Ok(WsCommand::Send(message)) => {
                if !feed_one(ws, commands, message).await? {
                    return Ok(false);
                }
            }
            Ok(WsCommand::Close) | Err(TryRecvError::Closed) => return Ok(false),
            Err(TryRecvError::Empty) => return Ok(true),
        }
    }
}

/// Feeds `message` into an Engine.IO WebSocket once its transmit buffer has
/// room (see [`poll_unless_ended`]): `Ok(false)` when the endpoint let go
/// of the connection while it waited, the message and the rest of the queue
/// then fed all the same ([`feed_rest`]); `Err` when the WebSocket failed.
/// (A hand-written future, as small as the `Feed` it stands for: it is held
/// in every connection's pump.)
fn feed_one<'a, S, R>(
    ws: &'a mut WebSocket<S, R>,
    commands: &'a mut WsCommands,
    message: Message,
) -> impl Future<Output = Result<bool, ()>> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + 'a,
    R: Runtime,
{
    let mut message = Some(message);
    std::future::poll_fn(move |cx| {
        let room = ready!(poll_unless_ended(ws, commands, cx, |ws, cx| {
            ws.poll_ready(cx)
        }))?;
        if let Some(message) = message.take() {
            // Without room only once the endpoint let go: see `feed_rest`.
            Pin::new(&mut *ws).start_send(message).map_err(drop)?;
        }
        if !room {
            feed_rest(ws, commands);
        }
        Poll::Ready(Ok(room))
    })
}

/// Writes out what is fed into an Engine.IO WebSocket (see
/// [`poll_unless_ended`]): `Ok(false)` when the endpoint let go of the
/// connection while the write waited, the rest of the queue then fed
/// ([`feed_rest`]); `Err` when the WebSocket failed.
fn flush_out<'a, S, R>(
    ws: &'a mut WebSocket<S, R>,
    commands: &'a mut WsCommands,
) -> impl Future<Output = Result<bool, ()>> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + 'a,
    R: Runtime,
{
    std::future::poll_fn(move |cx| {
        let flushed = ready!(poll_unless_ended(ws, commands, cx, |ws, cx| {
            ws.poll_flush(cx)
        }))?;
        if !flushed {
            feed_rest(ws, commands);
        }
        Poll::Ready(Ok(flushed))
    })
}

/// Polls `poll` (a WebSocket's room, or its flush), and while it waits
/// whether the endpoint let go of the connection (it closed the session:
/// [`WsCommands::poll_ended`]): `Ok(true)` when `poll` finished,
/// `Ok(false)` when the endpoint let go while it waited. A peer that reads
/// nothing holds a write up for good (an Engine.IO WebSocket has no
/// WebSocket keep-alive of its own); the session's heartbeat then closes
/// it, and the pump learns of that here instead of never. The queue is
/// only looked at while `poll` waits: nothing more on the way of a write
/// that goes through.
fn poll_unless_ended<S, R>(
    ws: &mut WebSocket<S, R>,
    commands: &mut WsCommands,
    cx: &mut Context<'_>,
    poll: impl FnOnce(Pin<&mut WebSocket<S, R>>, &mut Context<'_>) -> Poll<Result<(), Error>>,
) -> Poll<Result<bool, ()>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    match poll(Pin::new(ws), cx) {
        Poll::Ready(result) => Poll::Ready(result.map(|()| true).map_err(drop)),
        Poll::Pending => commands.poll_ended(cx).map(|()| Ok(false)),
    }
}

/// The endpoint let go of the connection while a write waited: whatever it
/// queued before is fed into the WebSocket at once, past its
/// `write_buffer_limit` (its `start_send` takes a message whatever the
/// buffer holds; the queue's own bound holds these), so the close that
/// follows gives it all the close timeout to go out, the core's rule: a
/// peer that reads on gets everything, one that does not is given up on
/// then.
fn feed_rest<S, R>(ws: &mut WebSocket<S, R>, commands: &mut WsCommands)
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    while let Ok(WsCommand::Send(message)) = commands.try_recv() {
        if Pin::new(&mut *ws).start_send(message).is_err() {
            return;
        }
    }
}

/// Starts the close handshake and waits (within the WebSocket's close
/// timeout) for the peer's answer, so the server closes TCP first.
async fn close_ws<S, R>(ws: &mut WebSocket<S, R>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    if ws.close(None).await.is_ok() {
        while let Some(Ok(_)) = ws.next().await {}
    }
}

async fn write_status<S: AsyncWrite + Unpin>(
    io: &mut S,
    method: &str,
    status: u16,
    keep_alive: bool,
) -> io::Result<()> {
    let bytes = switchboard_core::http::encode_status_response(method, status, keep_alive);
    io.write_all(&bytes).await?;
    io.flush().await?;
    if !keep_alive {
        let _ = io.close().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::engineio::EngineIo;
    use switchboard_core::engineio::ServerConfig;

    /// A runtime shut down: what it is asked to spawn is dropped unrun.
    #[derive(Clone, Default)]
    struct ShutDown(Arc<AtomicUsize>);

    impl Runtime for ShutDown {
        type Sleep = std::future::Pending<()>;
        type TcpStream = futures_util::io::Cursor<Vec<u8>>;
        type TcpListener = ();

        fn sleep_until(&self, _: Instant) -> Self::Sleep {
            std::future::pending()
        }

        fn spawn<F>(&self, task: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            self.0.fetch_add(1, Ordering::SeqCst);
            drop(task);
        }

        async fn connect(&self, _: &str, _: u16) -> io::Result<Self::TcpStream> {
            Err(io::ErrorKind::Unsupported.into())
        }

        async fn accept(&self, _: &()) -> io::Result<(Self::TcpStream, std::net::SocketAddr)> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    #[test]
    fn a_timer_whose_runtime_shut_down_is_started_again() {
        let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
        let runtime = ShutDown::default();
        spawn_timer(&runtime, engine.timed());
        // The task was dropped with its runtime: the next runtime that
        // serves the endpoint must get a timer, not find it claimed.
        spawn_timer(&runtime, engine.timed());
        assert_eq!(runtime.0.load(Ordering::SeqCst), 2);
    }

    // ---- A connection served over an in-memory pipe, on plain threads ----

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::task::Waker;
    use std::time::Duration;

    use futures_executor::block_on;
    use futures_util::AsyncReadExt;
    use switchboard_core::engineio::ServerEvent;
    use switchboard_core::http::{IncomingResponse, Limits, ResponseReader};

    /// Long enough to mean "never" in a test.
    const HANG: Duration = Duration::from_secs(20);

    /// One direction of a [`Duplex`]: bounded, so a side that does not
    /// read holds the other's writes up.
    #[derive(Default)]
    struct Pipe {
        buf: VecDeque<u8>,
        capacity: usize,
        /// The writer closed (or dropped) its end.
        eof: bool,
        /// The reader dropped its end.
        reader_gone: bool,
        read_waker: Option<Waker>,
        write_waker: Option<Waker>,
    }

    fn pipe(capacity: usize) -> Arc<Mutex<Pipe>> {
        Arc::new(Mutex::new(Pipe {
            capacity,
            ..Pipe::default()
        }))
    }

    /// One end of an in-memory connection.
    struct Duplex {
        rx: Arc<Mutex<Pipe>>,
        tx: Arc<Mutex<Pipe>>,
    }

    fn duplex(capacity: usize) -> (Duplex, Duplex) {
        let (a, b) = (pipe(capacity), pipe(capacity));
        (
            Duplex {
                rx: a.clone(),
                tx: b.clone(),
            },
            Duplex { rx: b, tx: a },
        )
    }

    impl Duplex {
        fn shutdown_write(&self) {
            let mut tx = self.tx.lock().unwrap();
            tx.eof = true;
            if let Some(waker) = tx.read_waker.take() {
                waker.wake();
            }
        }
    }

    impl Drop for Duplex {
        fn drop(&mut self) {
            self.shutdown_write();
            let mut rx = self.rx.lock().unwrap();
            rx.reader_gone = true;
            rx.buf.clear();
            if let Some(waker) = rx.write_waker.take() {
                waker.wake();
            }
        }
    }

    impl AsyncRead for Duplex {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let mut rx = self.rx.lock().unwrap();
            if rx.buf.is_empty() {
                if rx.eof {
                    return Poll::Ready(Ok(0));
                }
                rx.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(rx.buf.len());
            for (slot, byte) in buf.iter_mut().zip(rx.buf.drain(..n)) {
                *slot = byte;
            }
            if let Some(waker) = rx.write_waker.take() {
                waker.wake();
            }
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Duplex {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut tx = self.tx.lock().unwrap();
            if tx.reader_gone || tx.eof {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let room = tx.capacity - tx.buf.len();
            if room == 0 {
                tx.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = room.min(buf.len());
            tx.buf.extend(&buf[..n]);
            if let Some(waker) = tx.read_waker.take() {
                waker.wake();
            }
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shutdown_write();
            Poll::Ready(Ok(()))
        }
    }

    /// A runtime on plain threads: a thread per task and per timer.
    #[derive(Clone)]
    struct Threaded;

    use crate::testing::ThreadSleep;

    impl Runtime for Threaded {
        type Sleep = ThreadSleep;
        type TcpStream = Duplex;
        type TcpListener = ();

        fn sleep_until(&self, deadline: Instant) -> ThreadSleep {
            ThreadSleep::until(deadline.min(Instant::now() + Duration::from_secs(3600)))
        }

        fn spawn<F>(&self, future: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            std::thread::spawn(move || block_on(future));
        }

        async fn connect(&self, _: &str, _: u16) -> io::Result<Duplex> {
            Err(io::ErrorKind::Unsupported.into())
        }

        async fn accept(&self, _: &()) -> io::Result<(Duplex, std::net::SocketAddr)> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    /// A connection being served, and the end of it the test plays the
    /// client with.
    struct Served {
        client: Duplex,
        reader: ResponseReader,
    }

    fn serve_on_pipe(routes: Routes<Duplex, Threaded>, capacity: usize) -> Served {
        routes.start_timers(&Threaded);
        let (client, server) = duplex(capacity);
        Threaded.spawn(async move {
            let _ = serve_connection(Threaded, server, routes).await;
        });
        Served {
            client,
            reader: ResponseReader::new(Limits::default(), 1 << 24),
        }
    }

    impl Served {
        fn write(&mut self, bytes: &[u8]) {
            block_on(self.client.write_all(bytes)).expect("the server reads");
        }

        /// Whatever comes next from the server, within [`HANG`]: `None`
        /// at its end.
        fn read_some(&mut self) -> Option<Vec<u8>> {
            let mut buf = vec![0; 64 << 10];
            let client = &mut self.client;
            let read = async {
                let read = std::pin::pin!(client.read(&mut buf));
                let sleep = Threaded.sleep_until(Instant::now() + HANG);
                match select(read, sleep).await {
                    Either::Left((read, _)) => read.ok(),
                    Either::Right(_) => panic!("nothing from the server in {HANG:?}"),
                }
            };
            let n = block_on(read)?;
            (n > 0).then(|| buf[..n].to_vec())
        }

        fn response(&mut self) -> IncomingResponse {
            loop {
                if let Some(response) = self.reader.next_response().unwrap() {
                    return response;
                }
                let bytes = self.read_some().expect("a response before the end");
                self.reader.receive(&bytes);
            }
        }

        fn body(&mut self) -> String {
            let response = self.response();
            assert_eq!(response.response.status, 200, "{response:?}");
            String::from_utf8(response.body.to_vec()).unwrap()
        }
    }

    /// An endpoint that echoes every message.
    fn echo_engine() -> EngineIo {
        EngineIo::new(
            ServerConfig::default(),
            |engine: &EngineIo, event: ServerEvent| {
                if let ServerEvent::Message { sid, data } = event {
                    let _ = engine.send(&sid, data);
                }
            },
        )
    }

    /// Serves `engine` on a connection whose future the test drops when
    /// it sends on the channel: the client's end, the channel, the thread.
    fn stoppable(
        engine: &EngineIo,
    ) -> (
        Duplex,
        futures_channel::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let routes = Routes::new().engineio("/engine.io/", engine.clone());
        routes.start_timers(&Threaded);
        let (client, server) = duplex(1 << 20);
        let (stop, stopped) = futures_channel::oneshot::channel::<()>();
        let connection = std::thread::spawn(move || {
            let serve = std::pin::pin!(serve_connection(Threaded, server, routes));
            block_on(select(serve, stopped));
        });
        (client, stop, connection)
    }

    fn get(target: &str) -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
    }

    fn post(target: &str, body: &str) -> Vec<u8> {
        format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    const POLLING: &str = "/engine.io/?EIO=4&transport=polling";

    /// Opens a polling session on `served`: its sid.
    fn polling_handshake(served: &mut Served) -> String {
        served.write(&get(POLLING));
        let open = served.body();
        let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
        open["sid"].as_str().unwrap().to_owned()
    }

    fn session_target(sid: &str) -> String {
        format!("{POLLING}&sid={sid}")
    }

    /// A `POST` pipelined behind a held poll (in the same write) is handed
    /// to the endpoint while the poll waits, as Node's HTTP server emits
    /// pipelined requests: the echo it causes answers the poll, instead of
    /// both waiting for the next heartbeat; the answers go out in order.
    #[test]
    fn a_post_pipelined_behind_a_held_poll_is_handled_while_it_waits() {
        let engine = echo_engine();
        let mut served = serve_on_pipe(Routes::new().engineio("/engine.io/", engine), 1 << 20);
        let sid = polling_handshake(&mut served);
        let mut requests = get(&session_target(&sid));
        requests.extend(post(&session_target(&sid), "4hi"));
        requests.extend(post(&session_target(&sid), "4again"));
        requests.extend(get("/elsewhere"));
        served.write(&requests);
        // Both echoes: the second is queued before the poll's response is
        // written, and goes along.
        assert_eq!(served.body(), "4hi\x1e4again");
        assert_eq!(served.body(), "ok");
        assert_eq!(served.body(), "ok");
        // The request behind them is handled after them.
        assert_eq!(served.response().response.status, 404);
    }

    type Client = WebSocket<Duplex, Threaded>;

    fn ws_client(io: Duplex, target: &str) -> Client {
        let url =
            switchboard_core::ws::handshake::WsUrl::parse(&format!("ws://x{target}")).unwrap();
        let config = Arc::new(Config {
            deflate: None,
            ..Config::default()
        });
        block_on(crate::ws::client_handshake(Threaded, io, &url, config, &[])).expect("handshake")
    }

    /// The next text message within [`HANG`]; `None` at the end.
    fn recv_text(ws: &mut Client) -> Option<String> {
        block_on(async {
            let next = std::pin::pin!(ws.next());
            match select(next, Threaded.sleep_until(Instant::now() + HANG)).await {
                Either::Left((Some(Ok(message)), _)) => Some(message.as_text().unwrap().to_owned()),
                Either::Left(_) => None,
                Either::Right(_) => panic!("nothing in {HANG:?}"),
            }
        })
    }

    /// A connection's future dropped while its poll waits (its task
    /// cancelled, its runtime shut down, a timeout around it) aborts the
    /// poll as a client that hangs up does: the session closes at once
    /// instead of living on with messages answering a poll nobody writes.
    #[test]
    fn a_connection_dropped_while_its_poll_waits_aborts_the_poll() {
        let engine = echo_engine();
        let (client, stop, connection) = stoppable(&engine);
        let mut served = Served {
            client,
            reader: ResponseReader::new(Limits::default(), 1 << 20),
        };
        let sid = polling_handshake(&mut served);
        served.write(&get(&session_target(&sid)));
        // (The server takes the poll and holds it: nothing is queued.)
        std::thread::sleep(Duration::from_millis(50));
        stop.send(()).unwrap();
        connection.join().unwrap();
        assert_eq!(engine.session_count(), 0, "the session outlived its poll");
        assert!(engine.send(&sid, "lost").is_err());
    }

    /// An Engine.IO WebSocket's pump dropped (its task cancelled, its
    /// runtime shut down) tells the endpoint, as a transport that closes
    /// does: the session does not live on until something is next sent.
    #[test]
    fn a_dropped_websocket_pump_closes_its_session() {
        let engine = echo_engine();
        let (client, stop, connection) = stoppable(&engine);
        let mut ws = ws_client(client, "/engine.io/?EIO=4&transport=websocket");
        assert!(recv_text(&mut ws).unwrap().starts_with("0{"));
        block_on(ws.send(Message::text("4hi"))).unwrap();
        assert_eq!(recv_text(&mut ws).unwrap(), "4hi");
        stop.send(()).unwrap();
        connection.join().unwrap();
        assert_eq!(engine.session_count(), 0, "the session outlived its pump");
    }
}
