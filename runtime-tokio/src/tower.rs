//! Socket.IO, Engine.IO and WebSocket routes inside an existing axum or
//! hyper 1.x server (feature `tower`).
//!
//! [`SwitchboardLayer`] is a tower [`Layer`]: requests under its mounted
//! paths are served by Switchboard, every other request goes on to the
//! application's own service (an axum `Router`, say). The endpoints share
//! the application's listener, and so its TLS and its HTTP/2; WebSockets
//! (Engine.IO's transport and plain WebSocket routes) are upgraded through
//! hyper (`hyper::upgrade::on`), so the server must serve HTTP/1.1
//! connections with upgrades enabled (`axum::serve` does; with hyper, use
//! `serve_connection_with_upgrades` or `.with_upgrades()`). WebSockets over
//! HTTP/2 (RFC 8441's extended `CONNECT`, which `axum::serve` offers with
//! axum's `http2` feature) are not supported: an Engine.IO endpoint answers
//! them 400, as a request that is no upgrade (clients stay on polling), and
//! a WebSocket route leaves them to the inner service.
//!
//! With axum, the layer goes on the app's `Router`, and `axum::serve`
//! serves both on the app's listener:
//! `Router::new().route("/api/health", get(|| async { "ok" })).layer(SwitchboardLayer::new().socketio("/socket.io/", &io))`
//! (the `switchboard` crate's docs run it, with its `tower` feature;
//! `examples/axum.rs` adds a REST route that emits to a Socket.IO room).
//! axum runs a router's layers after routing, on its routes and its
//! fallback, so add the layer after them (a `fallback` set afterwards is
//! not layered). `Router::nest` keeps the routes of the router it nests,
//! not its fallback, so Switchboard's paths under a prefix need
//! `Router::nest_service("/prefix", router)`, or
//! [`into_service`](SwitchboardLayer::into_service) as the nested router's
//! `fallback_service`: the layer then sees the paths without the prefix,
//! and clients ask for `/prefix/socket.io/`.
//!
//! Below, the layer wraps `App`, standing for the application's service,
//! and requests are handed to the service directly, as a server would:
//!
//! ```
//! use switchboard_tokio::socketio::{SocketIo, SocketIoConfig};
//! use switchboard_tokio::tower::SwitchboardLayer;
//! use tower_layer::Layer;
//! # use http_body_util::BodyExt;
//! # use std::convert::Infallible;
//! # use std::future::{Ready, poll_fn, ready};
//! # use std::task::{Context, Poll};
//! # use tower_service::Service;
//! # #[derive(Clone)]
//! # struct App; // the application's own routes: an axum `Router`, say
//! # impl<B> Service<http::Request<B>> for App {
//! #     type Response = http::Response<String>;
//! #     type Error = Infallible;
//! #     type Future = Ready<Result<Self::Response, Infallible>>;
//! #     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
//! #         Poll::Ready(Ok(()))
//! #     }
//! #     fn call(&mut self, _: http::Request<B>) -> Self::Future {
//! #         ready(Ok(http::Response::new("ok".into())))
//! #     }
//! # }
//! # /// A GET request through `service`: the status and the body.
//! # async fn get<S, B>(service: &mut S, uri: &str) -> (u16, String)
//! # where
//! #     S: Service<http::Request<String>, Response = http::Response<B>>,
//! #     S::Error: std::fmt::Debug,
//! #     B: http_body::Body,
//! #     B::Error: std::fmt::Debug,
//! # {
//! #     poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
//! #     let request = http::Request::get(uri).body(String::new()).unwrap();
//! #     let response = service.call(request).await.unwrap();
//! #     let status = response.status().as_u16();
//! #     let body = response.into_body().collect().await.unwrap().to_bytes();
//! #     (status, String::from_utf8(body.to_vec()).unwrap())
//! # }
//! # #[tokio::main]
//! # async fn main() {
//! let io = SocketIo::new(SocketIoConfig::default());
//! io.ns("/", |socket| {
//!     socket.on("ping", |socket, _event| {
//!         let _ = socket.emit("pong", &());
//!     });
//! });
//! let mut app = SwitchboardLayer::new().socketio("/socket.io/", &io).layer(App);
//!
//! // The application's own paths reach it:
//! assert_eq!(get(&mut app, "/api/health").await, (200, "ok".into()));
//! // Socket.IO's are Switchboard's (here Engine.IO's polling handshake):
//! let (status, open) = get(&mut app, "/socket.io/?EIO=4&transport=polling").await;
//! assert!(status == 200 && open.starts_with(r#"0{"sid":"#));
//! assert_eq!(io.engine().session_count(), 1);
//! # }
//! ```
//!
//! With hyper 1.x, serve each connection with
//! `hyper::server::conn::http1::Builder::new().serve_connection(io, TowerToHyperService::new(service)).with_upgrades()`
//! (or hyper-util's `serve_connection_with_upgrades`).
//! [`SwitchboardLayer::into_service`] gives a service of its own that
//! answers 404 to anything else (for that, or for axum's
//! `Router::fallback_service`).
//!
//! Building the layer (or its first request) inside a tokio runtime starts
//! the endpoints' timers (heartbeats, ack deadlines) and has the Socket.IO
//! servers spawn their async handlers with `tokio::spawn`.
//!
//! The request's body is read up to the endpoint's `max_payload` + 1
//! bytes, so an oversized polling body gets Engine.IO's 413. A held poll
//! whose response future is dropped (the client went away and the server
//! noticed) is reported to the endpoint, which closes that session.
//!
//! A graceful shutdown (axum's `with_graceful_shutdown`, hyper's
//! `graceful_shutdown`) waits for the requests in flight, and a held poll
//! is one until its session has something to send: its next ping at the
//! latest (`ping_interval`, 25 s by default). To stop at once, disconnect
//! the sockets when the signal comes (`io.of("/").disconnect()` for each
//! namespace), which answers the held polls. Upgraded WebSockets are no
//! longer the server's connections: they go on in tasks of their own
//! until they close or the runtime ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::upgrade::OnUpgrade;
use switchboard_async::engineio::{EngineIo, EngineMounts, Routed};
use switchboard_async::server::{WsRoutes, pump_engine_ws, spawn_timer};
use switchboard_async::socketio::SocketIo;
use switchboard_async::timer::Timed;
use switchboard_core::engineio::HttpResponse;
use switchboard_core::http::{Header, Headers, Limits, Request};
use switchboard_core::ws::handshake::{self, Accepted, Rejection};
use switchboard_core::ws::{Config, Connection, Role};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Tokio, TokioIo};

/// A boxed error, as bodies report them ([`ResponseBody`]'s error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upgraded hyper connection, seen through the `futures` IO traits: the
/// stream under a [`WebSocket`].
pub type UpgradedIo = TokioIo<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// A WebSocket upgraded through hyper, as WebSocket routes receive it
/// ([`SwitchboardLayer::websocket`]); the same API as
/// [`crate::ws::WebSocket`], so a handler generic over the stream (as
/// [`crate::ws::echo`] is) serves both.
///
/// ```
/// use switchboard_tokio::tower::{SwitchboardLayer, WebSocket};
/// use switchboard_tokio::ws::Message;
///
/// // A handler: each text back in upper case.
/// async fn shout(mut socket: WebSocket) {
///     while let Some(Ok(message)) = socket.recv().await {
///         if let Some(text) = message.as_text() {
///             if socket.send(Message::text(text.to_uppercase())).await.is_err() {
///                 break;
///             }
///         }
///     }
/// }
/// let layer = SwitchboardLayer::new().websocket("/shout", shout);
/// # drop(layer);
/// ```
pub type WebSocket = switchboard_async::ws::WebSocket<UpgradedIo, Tokio>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type WsHandler = Arc<dyn Fn(WebSocket) -> BoxFuture<()> + Send + Sync>;

/// What is mounted, shared by every clone of the layer and its services.
#[derive(Clone)]
struct Mounts {
    engines: EngineMounts,
    websockets: WsRoutes<WsHandler>,
    timers: Vec<Arc<dyn Timed>>,
    socketios: Vec<SocketIo>,
    ws_config: Arc<Config>,
    /// `ws_config` without permessage-deflate, for Engine.IO connections.
    engine_ws_config: Arc<Config>,
    /// The Socket.IO spawners are set.
    started: Arc<AtomicBool>,
}

impl Mounts {
    /// From inside a tokio runtime: starts the timers that do not run (none
    /// has yet, or the runtime that ran them shut down) and sets the
    /// Socket.IO spawners, once.
    fn start(&self) {
        let stopped = self
            .timers
            .iter()
            .any(|timed| !timed.timer_signal().is_claimed());
        if (self.started.load(Ordering::Acquire) && !stopped)
            || tokio::runtime::Handle::try_current().is_err()
        {
            return;
        }
        for timed in &self.timers {
            spawn_timer(&Tokio, timed.clone());
        }
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        for io in &self.socketios {
            io.set_spawner(Arc::new(|future| {
                tokio::spawn(future);
            }));
        }
    }
}

/// A tower [`Layer`] that serves Socket.IO, Engine.IO and WebSocket routes
/// in front of the application's service; see the [module](self) docs for
/// an example. Clones share what is mounted.
#[derive(Clone)]
pub struct SwitchboardLayer {
    mounts: Arc<Mounts>,
}

impl std::fmt::Debug for SwitchboardLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engines: Vec<&str> = self.mounts.engines.paths().collect();
        let websockets: Vec<&str> = self.mounts.websockets.paths().collect();
        f.debug_struct("SwitchboardLayer")
            .field("engines", &engines)
            .field("websockets", &websockets)
            .finish_non_exhaustive()
    }
}

impl Default for SwitchboardLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SwitchboardLayer {
    /// Nothing mounted: every request goes to the inner service. Mount
    /// endpoints with the methods below.
    ///
    /// ```
    /// use switchboard_tokio::tower::SwitchboardLayer;
    ///
    /// let layer = SwitchboardLayer::new();
    /// assert_eq!(format!("{layer:?}"), "SwitchboardLayer { engines: [], websockets: [], .. }");
    /// ```
    pub fn new() -> Self {
        SwitchboardLayer {
            mounts: Arc::new(Mounts {
                engines: EngineMounts::default(),
                websockets: WsRoutes::default(),
                timers: Vec::new(),
                socketios: Vec::new(),
                ws_config: Arc::new(Config::default()),
                engine_ws_config: Arc::new(Config {
                    deflate: None,
                    ..Config::default()
                }),
                started: Arc::new(AtomicBool::new(false)),
            }),
        }
    }

    fn mounts(&mut self) -> &mut Mounts {
        Arc::make_mut(&mut self.mounts)
    }

    /// Serves `engine` under `path` (such as `/engine.io/`): every request
    /// whose path starts with it. Inside a tokio runtime its timers start
    /// at once, else with the first request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_tokio::engineio::{EngineIo, ServerConfig};
    /// use switchboard_tokio::tower::SwitchboardLayer;
    /// # use http_body_util::BodyExt;
    /// # use std::future::poll_fn;
    /// # use tower_service::Service;
    /// # async fn get<S, B>(service: &mut S, uri: &str) -> (u16, String)
    /// # where
    /// #     S: Service<http::Request<String>, Response = http::Response<B>>,
    /// #     S::Error: std::fmt::Debug,
    /// #     B: http_body::Body,
    /// #     B::Error: std::fmt::Debug,
    /// # {
    /// #     poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    /// #     let request = http::Request::get(uri).body(String::new()).unwrap();
    /// #     let response = service.call(request).await.unwrap();
    /// #     let status = response.status().as_u16();
    /// #     let body = response.into_body().collect().await.unwrap().to_bytes();
    /// #     (status, String::from_utf8(body.to_vec()).unwrap())
    /// # }
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let mut service = SwitchboardLayer::new()
    ///     .engineio("/engine.io/", engine)
    ///     .into_service();
    /// // `get` hands the service a GET request and reads its answer.
    /// let (status, _open) = get(&mut service, "/engine.io/?EIO=4&transport=polling").await;
    /// assert_eq!(status, 200);
    /// let socket = tokio::time::timeout(Duration::from_secs(5), sockets.accept()).await?;
    /// assert!(socket.is_some(), "the new session");
    /// # Ok(()) }
    /// ```
    pub fn engineio(mut self, path: &str, engine: EngineIo) -> Self {
        let mounts = self.mounts();
        mounts.timers.push(engine.timed());
        mounts.engines.mount(path, engine);
        self.restart();
        self
    }

    /// Serves the Socket.IO server `io` under `path` (such as
    /// `/socket.io/`). Inside a tokio runtime its timers start at once,
    /// else with the first request; its async handlers are spawned with
    /// `tokio::spawn`. See the [module](self) docs for an example.
    pub fn socketio(mut self, path: &str, io: &SocketIo) -> Self {
        let mounts = self.mounts();
        mounts.timers.push(io.timed());
        mounts.socketios.push(io.clone());
        self.engineio(path, io.engine().clone())
    }

    /// Hands WebSocket upgrades on exactly `path` to `handler`; other
    /// requests on that path go to the inner service.
    ///
    /// The upgrade is hyper's: a request that hyper offers no upgrade for
    /// (one not from a hyper HTTP/1.1 connection) gets 501. A hyper server
    /// without upgrades enabled still offers one, then closes the
    /// connection after the 101 (see the [module](self) docs).
    ///
    /// ```
    /// use switchboard_tokio::tower::SwitchboardLayer;
    /// use switchboard_tokio::ws;
    /// # use http_body_util::BodyExt;
    /// # use std::future::poll_fn;
    /// # use tower_service::Service;
    /// # async fn send<S, B>(service: &mut S, request: http::Request<String>) -> (u16, String)
    /// # where
    /// #     S: Service<http::Request<String>, Response = http::Response<B>>,
    /// #     S::Error: std::fmt::Debug,
    /// #     B: http_body::Body,
    /// #     B::Error: std::fmt::Debug,
    /// # {
    /// #     poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    /// #     let response = service.call(request).await.unwrap();
    /// #     let status = response.status().as_u16();
    /// #     let body = response.into_body().collect().await.unwrap().to_bytes();
    /// #     (status, String::from_utf8(body.to_vec()).unwrap())
    /// # }
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), http::Error> {
    /// let mut service = SwitchboardLayer::new()
    ///     .websocket("/ws", ws::echo)
    ///     .into_service();
    /// // `send` hands the service a request and reads its answer.
    /// let plain = http::Request::get("/ws").body(String::new())?;
    /// assert_eq!(send(&mut service, plain).await.0, 404); // the inner service's
    ///
    /// let upgrade = http::Request::get("/ws")
    ///     .header("host", "localhost")
    ///     .header("connection", "Upgrade")
    ///     .header("upgrade", "websocket")
    ///     .header("sec-websocket-version", "13")
    ///     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .body(String::new())?;
    /// assert_eq!(send(&mut service, upgrade).await.0, 501); // not through hyper
    /// # Ok(()) }
    /// ```
    pub fn websocket<F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(WebSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: WsHandler = Arc::new(move |ws| Box::pin(handler(ws)));
        self.mounts().websockets.add(path, handler);
        self
    }

    /// The WebSocket configuration, for the WebSocket routes and Engine.IO's
    /// WebSocket transport (which goes without permessage-deflate unless
    /// the endpoint's `ServerConfig::per_message_deflate` is on). It
    /// applies to every route, mounted before or after.
    ///
    /// ```
    /// use switchboard_tokio::tower::SwitchboardLayer;
    /// use switchboard_tokio::ws;
    ///
    /// let config = ws::Config {
    ///     max_message_size: 64 << 10,
    ///     deflate: None,
    ///     ..ws::Config::default()
    /// };
    /// let layer = SwitchboardLayer::new()
    ///     .websocket("/ws", ws::echo)
    ///     .ws_config(config);
    /// # drop(layer);
    /// ```
    pub fn ws_config(mut self, config: Config) -> Self {
        self.mounts().engine_ws_config = Arc::new(Config {
            deflate: None,
            ..config.clone()
        });
        self.mounts().ws_config = Arc::new(config);
        self
    }

    /// A service of its own: the mounted routes, and 404 for anything else
    /// (for axum's `Router::fallback_service`, or a plain hyper server
    /// through `hyper_util::service::TowerToHyperService`).
    ///
    /// ```
    /// use switchboard_tokio::socketio::{SocketIo, SocketIoConfig};
    /// use switchboard_tokio::tower::SwitchboardLayer;
    /// # use http_body_util::BodyExt;
    /// # use std::future::poll_fn;
    /// # use tower_service::Service;
    /// # async fn get<S, B>(service: &mut S, uri: &str) -> (u16, String)
    /// # where
    /// #     S: Service<http::Request<String>, Response = http::Response<B>>,
    /// #     S::Error: std::fmt::Debug,
    /// #     B: http_body::Body,
    /// #     B::Error: std::fmt::Debug,
    /// # {
    /// #     poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    /// #     let request = http::Request::get(uri).body(String::new()).unwrap();
    /// #     let response = service.call(request).await.unwrap();
    /// #     let status = response.status().as_u16();
    /// #     let body = response.into_body().collect().await.unwrap().to_bytes();
    /// #     (status, String::from_utf8(body.to_vec()).unwrap())
    /// # }
    /// # #[tokio::main]
    /// # async fn main() {
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// let mut service = SwitchboardLayer::new()
    ///     .socketio("/socket.io/", &io)
    ///     .into_service();
    /// // `get` hands the service a GET request and reads its answer.
    /// assert_eq!(get(&mut service, "/").await, (404, "Not Found".into()));
    /// let (status, _open) = get(&mut service, "/socket.io/?EIO=4&transport=polling").await;
    /// assert_eq!(status, 200);
    /// # }
    /// ```
    pub fn into_service(self) -> SwitchboardService<NotFound> {
        self.layer(NotFound)
    }

    /// Starts what a newly mounted endpoint needs (at once inside a tokio
    /// runtime, else with the first request).
    ///
    /// The mounts get a flag of their own: a clone of the layer made before
    /// this endpoint was mounted shares the old one, and starting that
    /// clone must not mark this endpoint started too.
    fn restart(&mut self) {
        let mounts = self.mounts();
        mounts.started = Arc::new(AtomicBool::new(false));
        mounts.start();
    }
}

impl<S> Layer<S> for SwitchboardLayer {
    type Service = SwitchboardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.mounts.start();
        SwitchboardService {
            mounts: self.mounts.clone(),
            inner,
        }
    }
}

/// The service [`SwitchboardLayer`] makes: Switchboard's routes, then the
/// inner service `S` (see the [module](self) docs for an example). Its
/// responses' bodies are [`ResponseBody`]s.
#[derive(Clone)]
pub struct SwitchboardService<S = NotFound> {
    mounts: Arc<Mounts>,
    inner: S,
}

impl<S: std::fmt::Debug> std::fmt::Debug for SwitchboardService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchboardService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for SwitchboardService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone,
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.mounts.start();
        let path = request.uri().path();
        if let Some(engine) = self.mounts.engines.engine_for(path) {
            let config =
                engine.websocket_config(&self.mounts.ws_config, &self.mounts.engine_ws_config);
            let future = serve_engine(engine.clone(), config, request);
            return ResponseFuture::ours(Box::pin(future));
        }
        if let Some(handler) = self.mounts.websockets.find(path) {
            let (mut parts, body) = request.into_parts();
            let head = core_request(&parts);
            if handshake::is_upgrade_request(&head) {
                let config = self.mounts.ws_config.clone();
                let handler = handler.clone();
                let response = upgrade(&head, &mut parts, config, move |ws| async move {
                    if let Some(ws) = ws {
                        handler(ws).await;
                    }
                });
                return ResponseFuture::ours(Box::pin(std::future::ready(response)));
            }
            let request = http::Request::from_parts(parts, body);
            return ResponseFuture::inner(self.call_inner(request));
        }
        ResponseFuture::inner(self.call_inner(request))
    }
}

impl<S> SwitchboardService<S> {
    /// Calls the inner service that `poll_ready` made ready, leaving a
    /// fresh clone in its place.
    fn call_inner<R>(&mut self, request: R) -> S::Future
    where
        S: Service<R> + Clone,
    {
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        ready.call(request)
    }
}

/// Serves one request on an Engine.IO path.
async fn serve_engine<B>(
    engine: EngineIo,
    config: Arc<Config>,
    request: http::Request<B>,
) -> http::Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let head = core_request(&parts);
    let body = match read_body(body, engine.max_payload()).await {
        Ok(body) => body,
        Err(error) => {
            tracing::debug!(error = %error.into(), "cannot read the request body");
            return text_response(400, "cannot read the request body");
        }
    };
    match engine.handle_request(&head, body) {
        Routed::Respond(response) => {
            // A POST whose messages wait for the handlers' room is answered
            // once they are handed over.
            if let Some(mut answer) = engine.answer_wait(&head) {
                while let Some(again) = answer.wait_until() {
                    tokio::time::sleep_until(again.into()).await;
                }
            }
            to_http(response)
        }
        // A request dropped while its poll waits (the client went away)
        // drops the `HeldPoll`, which aborts the poll.
        Routed::Hold(_poll, rx) => {
            match rx.await {
                Ok(response) => to_http(response),
                // The endpoint is gone.
                Err(_) => text_response(503, "the Engine.IO endpoint is gone"),
            }
        }
        Routed::WebSocket(conn, commands) => {
            let owner = engine.clone();
            let response = upgrade(&head, &mut parts, config, move |ws| async move {
                match ws {
                    Some(ws) => pump_engine_ws(&owner, conn, ws, commands).await,
                    None => owner.ws_closed(conn),
                }
            });
            if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                engine.ws_closed(conn);
            }
            response
        }
    }
}

/// Answers a WebSocket upgrade request: checks the handshake, returns the
/// 101 for hyper to send, and once hyper hands over the connection, runs
/// `then` on the WebSocket in a task of its own (with `None` if the
/// upgrade failed). A refused handshake gets its status; `then` is dropped
/// unrun.
fn upgrade<F, Fut>(
    head: &Request,
    parts: &mut http::request::Parts,
    config: Arc<Config>,
    then: F,
) -> http::Response<Full<Bytes>>
where
    F: FnOnce(Option<WebSocket>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Accepted {
        protocol,
        deflate,
        response,
    } = match handshake::accept(head, &config) {
        Ok(accepted) => accepted,
        Err(rejection) => {
            tracing::debug!(%rejection, "refusing WebSocket handshake");
            return rejection_response(rejection);
        }
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        // HTTP/2, or a server that does not offer upgrades.
        return text_response(
            501,
            "WebSocket upgrades need HTTP/1.1 with upgrades enabled on the server",
        );
    };
    let Ok(Some((switching, _))) =
        switchboard_core::http::Response::parse(&response, &Limits::default())
    else {
        return text_response(500, "cannot build the handshake response");
    };
    let mut answer = http::Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    copy_headers(
        answer.headers_mut(),
        switching.headers.0.iter().map(|h| (&h.name, &h.value)),
    );
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo(hyper_util::rt::TokioIo::new(upgraded));
                let conn = Connection::new(Role::Server, config, deflate);
                then(Some(WebSocket::from_parts(io, Tokio, conn, protocol, &[]))).await;
            }
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed");
                then(None).await;
            }
        }
    });
    answer
}

/// The request head as the core sees it.
fn core_request(parts: &http::request::Parts) -> Request {
    let mut headers: Vec<Header> = parts
        .headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).trim().to_owned(),
        })
        .collect();
    if !parts.headers.contains_key(http::header::HOST) {
        // HTTP/2 carries it in the URI.
        if let Some(authority) = parts.uri.authority() {
            headers.push(Header {
                name: "host".into(),
                value: authority.as_str().to_owned(),
            });
        }
    }
    Request {
        method: parts.method.as_str().to_owned(),
        target: parts
            .uri
            .path_and_query()
            .map_or("/", |target| target.as_str())
            .to_owned(),
        version: match parts.version {
            http::Version::HTTP_09 | http::Version::HTTP_10 => 0,
            _ => 1,
        },
        headers: Headers(headers),
    }
}

/// Reads a body, keeping at most `max + 1` bytes (more is the core's 413).
async fn read_body<B: Body>(body: B, max: usize) -> Result<Bytes, B::Error> {
    let limit = max.saturating_add(1);
    let mut body = std::pin::pin!(body);
    let mut kept = BytesMut::new();
    while kept.len() < limit {
        let Some(frame) = body.as_mut().frame().await else {
            break;
        };
        let Ok(mut data) = frame?.into_data() else {
            continue;
        };
        while data.has_remaining() && kept.len() < limit {
            let chunk = data.chunk();
            let take = chunk.len().min(limit - kept.len());
            kept.extend_from_slice(&chunk[..take]);
            data.advance(take);
        }
    }
    Ok(kept.freeze())
}

fn copy_headers<'a>(
    map: &mut http::HeaderMap,
    headers: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    for (name, value) in headers {
        match (
            http::HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => tracing::warn!(%name, "dropping a header hyper cannot send"),
        }
    }
}

fn to_http(response: HttpResponse) -> http::Response<Full<Bytes>> {
    let mut answer = http::Response::new(Full::new(response.body));
    *answer.status_mut() = http::StatusCode::from_u16(response.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    copy_headers(
        answer.headers_mut(),
        response.headers.iter().map(|(n, v)| (n, v)),
    );
    answer
}

fn rejection_response(rejection: Rejection) -> http::Response<Full<Bytes>> {
    let mut headers = rejection.headers;
    headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
    to_http(HttpResponse {
        status: rejection.status,
        headers,
        body: Bytes::from(rejection.reason),
    })
}

fn text_response(status: u16, text: &'static str) -> http::Response<Full<Bytes>> {
    to_http(HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: Bytes::from_static(text.as_bytes()),
    })
}

/// The inner service of [`SwitchboardLayer::into_service`]: 404 for
/// everything (see its example).
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> Service<http::Request<B>> for NotFound {
    type Response = http::Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<B>) -> Self::Future {
        std::future::ready(Ok(text_response(404, "Not Found")))
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SwitchboardService`]: the inner service's
    /// future, or Switchboard's answer.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: FutureKind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<F> {
        Inner { #[pin] future: F },
        Ours { future: BoxFuture<http::Response<Full<Bytes>>> },
    }
}

impl<F> ResponseFuture<F> {
    fn inner(future: F) -> Self {
        ResponseFuture {
            kind: FutureKind::Inner { future },
        }
    }

    fn ours(future: BoxFuture<http::Response<Full<Bytes>>>) -> Self {
        ResponseFuture {
            kind: FutureKind::Ours { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProj::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::inner))),
            FutureKindProj::Ours { future } => future
                .as_mut()
                .poll(cx)
                .map(|response| Ok(response.map(ResponseBody::ours))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body of [`SwitchboardService`]: Switchboard's own, or
    /// the inner service's.
    pub struct ResponseBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Ours { body: Full<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    fn inner(body: B) -> Self {
        ResponseBody {
            kind: BodyKind::Inner { body },
        }
    }

    fn ours(body: Full<Bytes>) -> Self {
        ResponseBody {
            kind: BodyKind::Ours { body },
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseBody")
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            BodyKindProj::Ours { body } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Ours { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Ours { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use switchboard_core::engineio::ServerConfig;

    use super::*;

    /// `request` through `service`: the status and the body.
    async fn send<S, B>(service: &mut S, request: http::Request<String>) -> (u16, String)
    where
        S: Service<http::Request<String>, Response = http::Response<B>>,
        S::Error: std::fmt::Debug,
        B: Body,
        B::Error: std::fmt::Debug,
    {
        poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
        let response = service.call(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// A GET request through `service`: the status and the body.
    async fn get<S, B>(service: &mut S, uri: &str) -> (u16, String)
    where
        S: Service<http::Request<String>, Response = http::Response<B>>,
        S::Error: std::fmt::Debug,
        B: Body,
        B::Error: std::fmt::Debug,
    {
        send(
            service,
            http::Request::get(uri).body(String::new()).unwrap(),
        )
        .await
    }

    /// A WebSocket asked for over HTTP/2 (RFC 8441's extended `CONNECT`,
    /// no `Upgrade` header): the Engine.IO endpoint answers it as a
    /// request that is no upgrade, a WebSocket route leaves it to the inner
    /// service, and polling works as over HTTP/1.1.
    #[tokio::test]
    async fn websockets_over_http2_are_refused_as_documented() {
        let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
        let mut service = SwitchboardLayer::new()
            .engineio("/engine.io/", engine)
            .websocket("/ws", crate::ws::echo)
            .into_service();
        let connect = |path: &str| {
            http::Request::builder()
                .method(http::Method::CONNECT)
                .version(http::Version::HTTP_2)
                .uri(format!("https://example.com{path}"))
                .header("sec-websocket-version", "13")
                .body(String::new())
                .unwrap()
        };
        let (status, body) = send(
            &mut service,
            connect("/engine.io/?EIO=4&transport=websocket"),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.starts_with(r#"{"code":"#), "{body}");
        assert_eq!(send(&mut service, connect("/ws")).await.0, 404); // the inner service's
        let polling = http::Request::get("https://example.com/engine.io/?EIO=4&transport=polling")
            .version(http::Version::HTTP_2)
            .body(String::new())
            .unwrap();
        let (status, open) = send(&mut service, polling).await;
        assert!(status == 200 && open.starts_with(r#"0{"sid":"#), "{open}");
    }

    /// A layer built outside any runtime, cloned, and the clone given one
    /// more endpoint: once the first is started, the clone still starts
    /// that endpoint's timer (its heartbeat answers a held poll).
    #[test]
    fn a_clone_given_another_endpoint_starts_its_timer() {
        let heartbeat = ServerConfig {
            ping_interval: Duration::from_millis(50),
            ..ServerConfig::default()
        };
        let (first, _first_sockets) = EngineIo::with_sockets(ServerConfig::default());
        let (second, _second_sockets) = EngineIo::with_sockets(heartbeat);
        let base = SwitchboardLayer::new().engineio("/first/", first);
        let more = base.clone().engineio("/second/", second);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let _first_service = base.into_service();
            let mut service = more.into_service();
            a_ping_answers_a_held_poll(&mut service, "/second/").await;
        });
    }

    /// Opens a polling session at `path` and holds a poll, which the
    /// endpoint's heartbeat (a short ping interval) must answer: its timer
    /// runs.
    async fn a_ping_answers_a_held_poll(service: &mut SwitchboardService, path: &str) {
        let (status, open) = get(service, &format!("{path}?EIO=4&transport=polling")).await;
        assert_eq!(status, 200, "{open}");
        let sid = open
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        let poll = format!("{path}?EIO=4&transport=polling&sid={sid}");
        let answer = tokio::time::timeout(Duration::from_secs(5), get(service, &poll))
            .await
            .expect("the heartbeat's ping answers the poll: the timer runs");
        assert_eq!(answer, (200, "2".into()));
    }

    /// A layer started on one runtime that then shut down (a test's
    /// runtime, an app that rebuilt its runtime): serving it on the next
    /// runtime starts its endpoint's timer there (its heartbeat answers a
    /// held poll), as the timer of the first runtime is gone.
    #[test]
    fn a_layer_served_again_after_its_runtime_shut_down_starts_its_timer() {
        let heartbeat = ServerConfig {
            ping_interval: Duration::from_millis(50),
            ..ServerConfig::default()
        };
        let (engine, _sockets) = EngineIo::with_sockets(heartbeat);
        let layer = SwitchboardLayer::new().engineio("/engine.io/", engine);
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        first.block_on(async {
            let mut service = layer.clone().into_service();
            let (status, _) = get(&mut service, "/engine.io/?EIO=4&transport=polling").await;
            assert_eq!(status, 200);
        });
        drop(first);
        runtime().block_on(async {
            let mut service = layer.into_service();
            a_ping_answers_a_held_poll(&mut service, "/engine.io/").await;
        });
    }
}
