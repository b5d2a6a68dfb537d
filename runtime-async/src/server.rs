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

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::future::{Either, select};
use futures_util::{AsyncWriteExt, SinkExt, StreamExt};
use switchboard_core::engineio::HttpResponse;
use switchboard_core::http::{HttpError, IncomingRequest, Request, RequestReader, ServerLimits};
use switchboard_core::ws::Config;
use switchboard_core::ws::handshake::{self, Rejection};

use crate::Runtime;
use crate::accept::accept_loop;
use crate::engineio::{EngineIo, EngineMounts, Routed, TryRecvError, WsCommand, WsCommands};
use crate::io::poll_read_with;
use crate::socketio::SocketIo;
use crate::timer::{self, LazyTimer, Timed, WeakTimed};
use crate::ws::{WebSocket, accept_request};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Answers plain HTTP requests (see [`Routes::http`]).
pub type HttpHandler = Arc<dyn Fn(&Request, Bytes) -> HttpResponse + Send + Sync>;
type WsHandler<S, R> = Arc<dyn Fn(WebSocket<S, R>) -> BoxFuture + Send + Sync>;

/// The runtime-neutral part of a server's routes: Engine.IO endpoints by
/// path (with the timers they need and the Socket.IO servers behind them),
/// the application's own pages, the WebSocket settings and the HTTP limits.
/// Each runtime's `Routes` is this plus its kind of WebSocket handler.
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
    pub fn mount_engineio(&mut self, path: &str, engine: EngineIo) {
        self.timers.push(engine.timed());
        self.engines.mount(path, engine);
    }

    /// Serves the Socket.IO server `io` under `path`.
    pub fn mount_socketio(&mut self, path: &str, io: &SocketIo) {
        self.timers.push(io.timed());
        self.socketios.push(io.clone());
        self.mount_engineio(path, io.engine().clone());
    }

    /// Sets the WebSocket settings: as given for plain WebSocket routes,
    /// without permessage-deflate for Engine.IO endpoints that do not
    /// enable it.
    pub fn set_ws_config(&mut self, config: Config) {
        self.engine_ws_config = Arc::new(Config {
            deflate: None,
            ..config.clone()
        });
        self.ws_config = Arc::new(config);
    }

    /// Answers requests no other route takes.
    pub fn set_http(&mut self, handler: HttpHandler) {
        self.http = Some(handler);
    }

    /// Sets the HTTP limits and timeouts.
    pub fn set_limits(&mut self, limits: ServerLimits) {
        self.limits = limits;
    }

    /// The Engine.IO endpoints.
    pub fn engines(&self) -> &EngineMounts {
        &self.engines
    }

    /// The timers of the endpoints and Socket.IO servers, for the runtime
    /// to drive.
    pub fn timers(&self) -> &[Arc<dyn Timed>] {
        &self.timers
    }

    /// The Socket.IO servers mounted (to give them the runtime's spawner).
    pub fn socketios(&self) -> &[SocketIo] {
        &self.socketios
    }

    /// The handler for the application's own pages, if any.
    pub fn http(&self) -> Option<&HttpHandler> {
        self.http.as_ref()
    }

    /// The settings for plain WebSocket routes.
    pub fn ws_config(&self) -> &Arc<Config> {
        &self.ws_config
    }

    /// The settings for `engine`'s WebSocket transport.
    pub fn engine_ws_config(&self, engine: &EngineIo) -> Arc<Config> {
        engine.websocket_config(&self.ws_config, &self.engine_ws_config)
    }

    /// The HTTP limits and timeouts.
    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// A request reader for a new connection: heads within the limits,
    /// bodies up to the largest endpoint's payload limit.
    pub fn request_reader(&self) -> RequestReader {
        RequestReader::new(self.limits.head, self.engines.max_body())
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
    pub fn add(&mut self, path: &str, handler: H) {
        match self.exact.iter_mut().find(|(p, _)| p == path) {
            Some((_, existing)) => *existing = handler,
            None => self.exact.push((path.to_owned(), handler)),
        }
    }

    /// Handles upgrades on every path without a handler of its own.
    pub fn set_fallback(&mut self, handler: H) {
        self.fallback = Some(handler);
    }

    /// The handler for an upgrade on `path`, if any.
    pub fn find(&self, path: &str) -> Option<&H> {
        self.exact
            .iter()
            .find_map(|(p, handler)| (p == path).then_some(handler))
            .or(self.fallback.as_ref())
    }

    /// The paths with a handler of their own.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.exact.iter().map(|(path, _)| path.as_str())
    }

    /// Whether there is a handler for every other path.
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }
}

/// What a server serves: Engine.IO endpoints by path, WebSocket handlers
/// on paths of their own, and one for upgrades on every other path.
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
    pub fn new() -> Self {
        Routes {
            table: RouteTable::default(),
            websocket: WsRoutes::default(),
        }
    }

    /// Serves `engine` under `path` (such as `/engine.io/`): every request
    /// whose path starts with it.
    pub fn engineio(mut self, path: &str, engine: EngineIo) -> Self {
        self.table.mount_engineio(path, engine);
        self
    }

    /// Serves the Socket.IO server `io` under `path` (such as
    /// `/socket.io/`).
    pub fn socketio(mut self, path: &str, io: &SocketIo) -> Self {
        self.table.mount_socketio(path, io);
        self
    }

    /// Hands WebSocket upgrades on any other path (no Engine.IO endpoint
    /// and no [`Routes::websocket_at`] of its own) to `handler`.
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
    pub fn ws_config(mut self, config: Config) -> Self {
        self.table.set_ws_config(config);
        self
    }

    /// Answers every other HTTP request (no Engine.IO path, no WebSocket
    /// upgrade) with `handler`, e.g. to serve the application's pages;
    /// without one they get 404.
    pub fn http(
        mut self,
        handler: impl Fn(&Request, Bytes) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.table.set_http(Arc::new(handler));
        self
    }

    /// HTTP limits and timeouts.
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.table.set_limits(limits);
        self
    }

    /// Starts the timers of every Engine.IO endpoint and Socket.IO server
    /// on `runtime` (once each, however often it is called), and has the
    /// Socket.IO servers spawn their async handlers on it.
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
pub fn spawn_timer<R: Runtime>(runtime: &R, timed: Arc<dyn Timed>) {
    if !timed.timer_signal().claim() {
        return;
    }
    let weak: WeakTimed = Arc::downgrade(&timed);
    drop(timed);
    let rt = runtime.clone();
    runtime.spawn(async move {
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

/// Accepts connections on `listener` forever and serves `routes` on each,
/// one task per connection. Accept errors are logged and retried. At most
/// [`ServerLimits::max_connections`] are open at once; at the limit nothing
/// more is accepted until one closes.
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
    loop {
        let limits = routes.table.limits();
        let incoming =
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
                    match wait_for_poll(&mut io, &mut reader, rx, routes.table.limits()).await {
                        Some(response) => response,
                        None => {
                            engine.poll_aborted(poll);
                            return Ok(None);
                        }
                    }
                }
                Routed::WebSocket(conn, commands) => {
                    let buffered = reader.take_buffered();
                    let config = routes.table.engine_ws_config(engine);
                    return Ok(
                        match accept_request(runtime, io, &request, &buffered, config).await {
                            Ok(ws) => {
                                let engine = engine.clone();
                                Some(Box::pin(async move {
                                    pump_engine_ws(&engine, conn, ws, commands).await;
                                }) as BoxFuture)
                            }
                            Err(error) => {
                                tracing::debug!(%error, "Engine.IO WebSocket handshake failed");
                                engine.ws_closed(conn);
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
            None => match routes.table.http() {
                Some(handler) => handler(&request, body),
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
    let started = Instant::now();
    loop {
        if let Some(incoming) = reader.next_request().map_err(RequestError::Http)? {
            return Ok(Some(incoming));
        }
        if let Some(interim) = reader.take_interim() {
            io.write_all(interim).await.map_err(RequestError::Io)?;
            io.flush().await.map_err(RequestError::Io)?;
        }
        let waiting_for_more = first || reader.has_partial_request();
        let timeout = if waiting_for_more {
            limits.request_timeout
        } else {
            limits.keep_alive_timeout
        };
        let deadline = started + timeout;
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
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(RequestError::Io(error)),
            None if waiting_for_more => {
                return Err(RequestError::Http(HttpError::RequestTimeout(
                    limits.request_timeout,
                )));
            }
            None => return Ok(None),
        }
    }
}

/// Waits for a held poll's response while watching the connection: `None`
/// if the client went away (or sent more than a request's worth of bytes
/// while waiting).
async fn wait_for_poll<S>(
    io: &mut S,
    reader: &mut RequestReader,
    mut rx: crate::engineio::HeldPoll,
    limits: &ServerLimits,
) -> Option<switchboard_core::engineio::HttpResponse>
where
    S: AsyncRead + Unpin,
{
    let max_buffered = limits.head.max_head_size;
    loop {
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
            Ok(n) if n > 0 && reader.buffered_len() <= max_buffered => {}
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
                        let _ = ws.flush().await;
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
                if ws.feed(message).await.is_err() {
                    break End::Transport;
                }
                // Everything already queued goes out in the same write.
                match feed_queued(&mut ws, &mut commands).await {
                    Ok(true) => {}
                    Ok(false) => break End::EndpointAfterSends,
                    Err(()) => break End::Transport,
                }
                if ws.flush().await.is_err() {
                    break End::Transport;
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
        if !feed_queued(ws, commands).await? {
            return Ok(false);
        }
        ws.flush().await.map_err(drop)?;
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
            Ok(WsCommand::Send(message)) => ws.feed(message).await.map_err(drop)?,
            Ok(WsCommand::Close) | Err(TryRecvError::Closed) => return Ok(false),
            Err(TryRecvError::Empty) => return Ok(true),
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
