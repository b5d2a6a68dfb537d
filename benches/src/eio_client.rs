//! The Engine.IO load client: a minimal v4 client on tokio, the same for
//! every server, that checks every echo byte for byte.
//!
//! - **WebSocket**: Switchboard's WebSocket client
//!   (`switchboard_tokio::ws::connect_with_config`) on
//!   `/engine.io/?EIO=4&transport=websocket`: read the `0{...}` open
//!   packet, then keep `window` `4<payload>` text messages in flight,
//!   sending one more for each echo (every echo that arrived together is
//!   answered in one write) and `3` for each `2`. Without
//!   permessage-deflate (engineioxide has none), or offering it as browsers
//!   do ([`Transport::WebSocketDeflate`]).
//! - **Polling**: raw HTTP/1.1 keep-alive, two connections per session as a
//!   browser uses them: one for the `GET` polls, one for the `POST`s. A
//!   writer posts as many `4<payload>` packets as the window has room for,
//!   `\x1e`-separated in one body, and waits for `ok`; a poller loops on
//!   `GET`, counts the echoes in each response and reopens the window.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{FutureExt, SinkExt, StreamExt};
use switchboard_core::ws::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

/// The Engine.IO record separator between packets of a polling payload.
const SEPARATOR: u8 = 0x1e;

/// An Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// WebSocket from the start (`transport=websocket`), not offering
    /// permessage-deflate.
    WebSocket,
    /// The same, offering permessage-deflate (Switchboard's client default,
    /// and what browsers do): a server that accepts it compresses every
    /// message.
    WebSocketDeflate,
    /// HTTP long-polling.
    Polling,
}

impl Transport {
    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::WebSocketDeflate => "websocket-deflate",
            Transport::Polling => "polling",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "websocket" | "ws" => Ok(Transport::WebSocket),
            "websocket-deflate" | "ws-deflate" => Ok(Transport::WebSocketDeflate),
            "polling" => Ok(Transport::Polling),
            _ => Err(format!(
                "unknown transport {s:?}: use websocket, websocket-deflate or polling"
            )),
        }
    }
}

/// Counters shared by every session of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Echoes received and checked.
    pub messages: AtomicU64,
    /// Sessions that failed (wrong packet, early close, IO error).
    pub failures: AtomicU64,
    /// The batches the echoes arrived in: WebSocket reads that took at
    /// least one echo, polling responses that carried at least one.
    pub batches: AtomicU64,
}

/// An open session, handshake done and one message echoed.
#[derive(Debug)]
pub enum Session {
    /// Over WebSocket.
    WebSocket(Box<switchboard_tokio::ws::WebSocket>),
    /// Over polling: the poll connection and the post connection.
    Polling {
        /// The session id.
        sid: String,
        /// The connection the `GET`s go over.
        get: HttpConn,
        /// The connection the `POST`s go over (none for idle sessions).
        post: Option<HttpConn>,
    },
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::other(what.into())
}

/// The packet the client sends and expects back: `4` then the payload.
pub fn message_packet(payload: &str) -> String {
    format!("4{payload}")
}

/// The session id of an open packet (`0{"sid":...}`).
fn open_sid(packet: &[u8]) -> io::Result<String> {
    let json = packet.strip_prefix(b"0").ok_or_else(|| {
        bad(format!(
            "expected an open packet, got {:?}",
            String::from_utf8_lossy(packet)
        ))
    })?;
    let value: serde_json::Value = serde_json::from_slice(json).map_err(io::Error::other)?;
    value["sid"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad("open packet without sid"))
}

/// Opens a session on `transport`: handshake, then `packet` echoed once.
pub async fn connect(addr: SocketAddr, transport: Transport, packet: &str) -> io::Result<Session> {
    match transport {
        Transport::WebSocket => connect_ws(addr, packet, false).await,
        Transport::WebSocketDeflate => connect_ws(addr, packet, true).await,
        Transport::Polling => connect_polling(addr, packet).await,
    }
}

/// Opens a session that stays idle afterwards (see [`keep_idle`]): over
/// WebSocket as [`connect`] does; over polling on one connection only,
/// which then holds a poll open (what an idle polling client leaves on the
/// server).
pub async fn connect_idle(
    addr: SocketAddr,
    transport: Transport,
    packet: &str,
) -> io::Result<Session> {
    match transport {
        Transport::WebSocket => connect_ws(addr, packet, false).await,
        Transport::WebSocketDeflate => connect_ws(addr, packet, true).await,
        Transport::Polling => {
            let mut conn = HttpConn::connect(addr).await?;
            let sid = polling_handshake(&mut conn, addr).await?;
            let requests = PollingRequests::new(addr, &sid, packet, 1);
            post_ok(&mut conn, &requests.posts[0]).await?;
            poll_until_echo(&mut conn, &requests, packet).await?;
            conn.stream.write_all(&requests.get).await?;
            Ok(Session::Polling {
                sid,
                get: conn,
                post: None,
            })
        }
    }
}

impl Session {
    /// Whether permessage-deflate was negotiated (WebSocket sessions).
    pub fn is_compressed(&self) -> bool {
        match self {
            Session::WebSocket(ws) => ws.is_compressed(),
            Session::Polling { .. } => false,
        }
    }
}

async fn connect_ws(addr: SocketAddr, packet: &str, deflate: bool) -> io::Result<Session> {
    let url = format!("ws://{addr}/engine.io/?EIO=4&transport=websocket");
    let mut config = switchboard_tokio::ws::Config::default();
    if !deflate {
        config.deflate = None;
    }
    let mut ws = switchboard_tokio::ws::connect_with_config(&url, config)
        .await
        .map_err(io::Error::other)?;
    let open = next_text(&mut ws).await?;
    open_sid(open.as_bytes())?;
    ws.send(Message::text(packet.to_owned()))
        .await
        .map_err(io::Error::other)?;
    loop {
        let text = next_text(&mut ws).await?;
        if text == "2" {
            ws.send(Message::text("3"))
                .await
                .map_err(io::Error::other)?;
        } else if text == packet {
            return Ok(Session::WebSocket(Box::new(ws)));
        } else {
            return Err(bad(format!("unexpected packet {text:?}")));
        }
    }
}

async fn next_text(ws: &mut switchboard_tokio::ws::WebSocket) -> io::Result<String> {
    match ws.next().await {
        Some(Ok(Message::Text(text))) => Ok(text.as_str().to_owned()),
        Some(Ok(other)) => Err(bad(format!("unexpected message {other:?}"))),
        Some(Err(error)) => Err(io::Error::other(error)),
        None => Err(bad("closed")),
    }
}

/// Starts the load on an open session: `window` messages in flight.
pub fn start_load(
    session: Session,
    addr: SocketAddr,
    packet: &str,
    window: usize,
    counters: Arc<Counters>,
) {
    let window = window.max(1);
    match session {
        Session::WebSocket(ws) => {
            tokio::spawn(ws_load(
                *ws,
                Message::text(packet.to_owned()),
                window,
                counters,
            ));
        }
        Session::Polling { sid, get, post } => {
            let Some(post) = post else {
                return fail(&counters);
            };
            let requests = Arc::new(PollingRequests::new(addr, &sid, packet, window));
            let permits = Arc::new(Semaphore::new(window));
            let pong = Arc::new(Notify::new());
            tokio::spawn(poller(
                get,
                requests.clone(),
                packet.as_bytes().to_vec(),
                permits.clone(),
                pong.clone(),
                counters.clone(),
            ));
            tokio::spawn(poster(post, requests, permits, pong, window, counters));
        }
    }
}

async fn ws_load(
    mut ws: switchboard_tokio::ws::WebSocket,
    message: Message,
    window: usize,
    counters: Arc<Counters>,
) {
    let Message::Text(expected) = &message else {
        unreachable!("a text message")
    };
    let expected = expected.as_str().to_owned();
    let mut to_send = window;
    let mut pongs = 0;
    loop {
        for _ in 0..to_send {
            if ws.feed(message.clone()).await.is_err() {
                return fail(&counters);
            }
        }
        for _ in 0..pongs {
            if ws.feed(Message::text("3")).await.is_err() {
                return fail(&counters);
            }
        }
        if ws.flush().await.is_err() {
            return fail(&counters);
        }
        (to_send, pongs) = (0, 0);
        // Wait for one message, then take every one already arrived.
        let mut next = ws.next().await;
        loop {
            match next {
                Some(Ok(Message::Text(text))) if text.as_str() == expected => to_send += 1,
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => pongs += 1,
                _ => return fail(&counters),
            }
            match ws.next().now_or_never() {
                Some(item) => next = item,
                None => break,
            }
        }
        counters
            .messages
            .fetch_add(to_send as u64, Ordering::Relaxed);
        if to_send > 0 {
            counters.batches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn fail(counters: &Counters) {
    counters.failures.fetch_add(1, Ordering::Relaxed);
}

/// One HTTP/1.1 keep-alive connection, with its read buffer.
#[derive(Debug)]
pub struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

impl HttpConn {
    async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            buf: vec![0; 64 << 10],
            filled: 0,
        })
    }

    /// Sends `request` and reads the response: `f` gets its status and
    /// body.
    async fn request<T>(
        &mut self,
        request: &[u8],
        f: impl FnOnce(u16, &[u8]) -> T,
    ) -> io::Result<T> {
        self.stream.write_all(request).await?;
        self.response(f).await
    }

    /// Reads one response (`Content-Length` framed).
    async fn response<T>(&mut self, f: impl FnOnce(u16, &[u8]) -> T) -> io::Result<T> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response
                .parse(&self.buf[..self.filled])
                .map_err(io::Error::other)?
            {
                let status = response.code.unwrap_or(0);
                let length: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .ok_or_else(|| bad("response without Content-Length"))?;
                let end = head + length;
                if end > self.buf.len() {
                    self.buf.resize(end.next_power_of_two(), 0);
                }
                while self.filled < end {
                    self.read_more().await?;
                }
                let value = f(status, &self.buf[head..end]);
                self.buf.copy_within(end..self.filled, 0);
                self.filled -= end;
                return Ok(value);
            }
            if self.filled == self.buf.len() {
                return Err(bad("response head too long"));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(bad("connection closed"));
        }
        self.filled += n;
        Ok(())
    }
}

/// The requests of one polling session, built once.
#[derive(Debug)]
struct PollingRequests {
    /// `GET` poll.
    get: Vec<u8>,
    /// `posts[k - 1]`: a `POST` of `k` message packets.
    posts: Vec<Vec<u8>>,
    /// A `POST` of one pong.
    pong: Vec<u8>,
}

impl PollingRequests {
    fn new(addr: SocketAddr, sid: &str, packet: &str, window: usize) -> Self {
        let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
        let post = |body: &[u8]| {
            let mut request = format!(
                "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body);
            request
        };
        let mut body = Vec::new();
        let mut posts = Vec::with_capacity(window);
        for k in 0..window {
            if k > 0 {
                body.push(SEPARATOR);
            }
            body.extend_from_slice(packet.as_bytes());
            posts.push(post(&body));
        }
        PollingRequests {
            get: format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes(),
            posts,
            pong: post(b"3"),
        }
    }
}

/// The polling handshake on `conn`: returns the session id.
async fn polling_handshake(conn: &mut HttpConn, addr: SocketAddr) -> io::Result<String> {
    let request =
        format!("GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    conn.request(request.as_bytes(), |status, body| {
        if status != 200 {
            return Err(bad(format!("handshake: status {status}")));
        }
        open_sid(body)
    })
    .await?
}

async fn post_ok(conn: &mut HttpConn, request: &[u8]) -> io::Result<()> {
    conn.request(request, |status, body| {
        if status == 200 && body == b"ok" {
            Ok(())
        } else {
            Err(bad(format!(
                "POST: status {status}, body {:?}",
                String::from_utf8_lossy(body)
            )))
        }
    })
    .await?
}

/// What one poll response held.
#[derive(Debug, Default)]
struct Polled {
    echoes: usize,
    pings: usize,
}

/// Parses a poll response body: echoes of `packet`, pings and noops only.
fn parse_poll(status: u16, body: &[u8], packet: &[u8]) -> io::Result<Polled> {
    if status != 200 {
        return Err(bad(format!("poll: status {status}")));
    }
    let mut polled = Polled::default();
    for p in body.split(|&b| b == SEPARATOR) {
        if p == packet {
            polled.echoes += 1;
        } else if p == b"2" {
            polled.pings += 1;
        } else if p != b"6" {
            return Err(bad(format!(
                "poll: unexpected packet {:?}",
                String::from_utf8_lossy(p)
            )));
        }
    }
    Ok(polled)
}

/// Polls until the echo of `packet` arrives (answering pings on the same
/// connection in between).
async fn poll_until_echo(
    conn: &mut HttpConn,
    requests: &PollingRequests,
    packet: &str,
) -> io::Result<()> {
    loop {
        let polled = conn
            .request(&requests.get, |status, body| {
                parse_poll(status, body, packet.as_bytes())
            })
            .await??;
        for _ in 0..polled.pings {
            post_ok(conn, &requests.pong).await?;
        }
        if polled.echoes > 1 {
            return Err(bad("more echoes than messages"));
        }
        if polled.echoes == 1 {
            return Ok(());
        }
    }
}

async fn connect_polling(addr: SocketAddr, packet: &str) -> io::Result<Session> {
    let mut get = HttpConn::connect(addr).await?;
    let sid = polling_handshake(&mut get, addr).await?;
    let mut post = HttpConn::connect(addr).await?;
    let requests = PollingRequests::new(addr, &sid, packet, 1);
    post_ok(&mut post, &requests.posts[0]).await?;
    loop {
        let polled = get
            .request(&requests.get, |status, body| {
                parse_poll(status, body, packet.as_bytes())
            })
            .await??;
        if polled.pings > 0 {
            post_ok(&mut post, &requests.pong).await?;
        }
        match polled.echoes {
            0 => {}
            1 => {
                return Ok(Session::Polling {
                    sid,
                    get,
                    post: Some(post),
                });
            }
            _ => return Err(bad("more echoes than messages")),
        }
    }
}

async fn poller(
    mut conn: HttpConn,
    requests: Arc<PollingRequests>,
    packet: Vec<u8>,
    permits: Arc<Semaphore>,
    pong: Arc<Notify>,
    counters: Arc<Counters>,
) {
    loop {
        let polled = conn
            .request(&requests.get, |status, body| {
                parse_poll(status, body, &packet)
            })
            .await;
        let Ok(Ok(polled)) = polled else {
            permits.close();
            return fail(&counters);
        };
        if polled.echoes > 0 {
            counters
                .messages
                .fetch_add(polled.echoes as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            permits.add_permits(polled.echoes);
        }
        if polled.pings > 0 {
            pong.notify_one();
        }
    }
}

async fn poster(
    mut conn: HttpConn,
    requests: Arc<PollingRequests>,
    permits: Arc<Semaphore>,
    pong: Arc<Notify>,
    window: usize,
    counters: Arc<Counters>,
) {
    loop {
        let request = tokio::select! {
            biased;
            () = pong.notified() => &requests.pong,
            first = permits.acquire() => {
                let Ok(first) = first else { return };
                first.forget();
                let mut k = 1;
                let more = permits.available_permits().min(window - 1);
                if more > 0
                    && let Ok(extra) = permits.try_acquire_many(more as u32)
                {
                    extra.forget();
                    k += more;
                }
                &requests.posts[k - 1]
            }
        };
        if post_ok(&mut conn, request).await.is_err() {
            permits.close();
            return fail(&counters);
        }
    }
}

/// What idle sessions saw.
#[derive(Debug, Default)]
pub struct IdleCounters {
    /// Pings answered.
    pub pings: AtomicU64,
    /// Sessions that received anything else, or closed.
    pub broken: AtomicU64,
}

/// Keeps an idle session (from [`connect_idle`]) alive: answers pings
/// (engineioxide pings right after the handshake, whatever its
/// `pingInterval`) and counts anything else as a broken session.
pub fn keep_idle(session: Session, addr: SocketAddr, counters: Arc<IdleCounters>) {
    tokio::spawn(async move {
        let result: io::Result<()> = match session {
            Session::WebSocket(mut ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                        counters.pings.fetch_add(1, Ordering::Relaxed);
                        if let Err(error) = ws.send(Message::text("3")).await {
                            break Err(io::Error::other(error));
                        }
                    }
                    other => break Err(bad(format!("idle WebSocket got {other:?}"))),
                }
            },
            Session::Polling {
                sid, get: mut conn, ..
            } => {
                // The poll written by `connect_idle` is outstanding.
                let requests = PollingRequests::new(addr, &sid, "", 1);
                async {
                    loop {
                        let polled = conn
                            .response(|status, body| parse_poll(status, body, b"\0"))
                            .await??;
                        if polled.echoes > 0 {
                            return Err(bad("idle poll got a message"));
                        }
                        for _ in 0..polled.pings {
                            counters.pings.fetch_add(1, Ordering::Relaxed);
                            post_ok(&mut conn, &requests.pong).await?;
                        }
                        conn.stream.write_all(&requests.get).await?;
                    }
                }
                .await
            }
        };
        if let Err(error) = result {
            if counters.broken.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("first broken idle session: {error}");
            }
        }
    });
}
