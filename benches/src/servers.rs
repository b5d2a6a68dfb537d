//! The echo servers under test. Each echoes every text and binary message
//! back as it arrives (one write per message, as each library's plain
//! `recv`/`send` loop does), answers pings and closes, and sets
//! `TCP_NODELAY`. The async ones run on two worker threads (one per core):
//! tokio's default multi-thread runtime, or a two-thread smol executor.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};

/// A server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// `switchboard-tokio`: `ws::serve` + `ws::echo` on tokio.
    SwitchboardTokio,
    /// `switchboard-smol`: `ws::serve_on` + `ws::echo` on a smol executor.
    SwitchboardSmol,
    /// `switchboard-threads`: `ws::serve` + `ws::echo`, a thread per
    /// connection.
    SwitchboardThreads,
    /// tokio-tungstenite: `accept_async`, then `next`/`send`.
    TokioTungstenite,
    /// fastwebsockets: a minimal handshake, then `FragmentCollector`
    /// `read_frame`/`write_frame` (automatic pong and close on).
    FastWebSockets,
}

impl Impl {
    /// Every implementation, Switchboard's first.
    pub const ALL: [Impl; 5] = [
        Impl::SwitchboardTokio,
        Impl::SwitchboardSmol,
        Impl::SwitchboardThreads,
        Impl::TokioTungstenite,
        Impl::FastWebSockets,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Impl::SwitchboardTokio => "switchboard-tokio",
            Impl::SwitchboardSmol => "switchboard-smol",
            Impl::SwitchboardThreads => "switchboard-threads",
            Impl::TokioTungstenite => "tokio-tungstenite",
            Impl::FastWebSockets => "fastwebsockets",
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Impl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let short = match s {
            "tokio" => Some(Impl::SwitchboardTokio),
            "smol" => Some(Impl::SwitchboardSmol),
            "threads" => Some(Impl::SwitchboardThreads),
            "tungstenite" => Some(Impl::TokioTungstenite),
            _ => None,
        };
        short
            .or_else(|| Impl::ALL.into_iter().find(|i| i.name() == s))
            .ok_or_else(|| {
                let names: Vec<_> = Impl::ALL.iter().map(|i| i.name()).collect();
                format!(
                    "unknown implementation {s:?}: use one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Worker threads of the async servers: one per core.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// tokio's multi-thread runtime with [`workers`] threads.
pub(crate) fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The smol executor of the smol servers: one thread per core (as many as
/// [`workers`]), the same as `conformance-server` runs.
pub(crate) fn smol_executor() -> Arc<smol::Executor<'static>> {
    switchboard_conformance::runtime::smol_executor()
}

/// Serves `imp`'s echo on `listener`, blocking forever.
pub fn run(imp: Impl, listener: TcpListener) -> io::Result<()> {
    let config = switchboard_core::ws::Config::default();
    match imp {
        Impl::SwitchboardTokio => tokio_runtime().block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            switchboard_tokio::ws::serve(listener, config, switchboard_tokio::ws::echo).await;
            Ok(())
        }),
        Impl::SwitchboardSmol => {
            let executor = smol_executor();
            smol::block_on(async move {
                let listener = async_net::TcpListener::try_from(listener)?;
                let runtime = switchboard_smol::Smol::with_spawner(move |task| {
                    executor.spawn(task).detach();
                });
                switchboard_smol::ws::serve_on(
                    runtime,
                    listener,
                    config,
                    switchboard_smol::ws::echo,
                )
                .await;
                Ok(())
            })
        }
        Impl::SwitchboardThreads => {
            switchboard_threads::ws::serve(listener, config, switchboard_threads::ws::echo)
        }
        Impl::TokioTungstenite => tokio_runtime().block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                tokio::spawn(tungstenite_echo(stream));
            }
        }),
        Impl::FastWebSockets => tokio_runtime().block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                tokio::spawn(async move {
                    // Transport errors are how load runs end; only protocol
                    // errors are news.
                    if let Err(error) = fastwebsockets_echo(stream).await
                        && !matches!(error, fastwebsockets::WebSocketError::IoError(_))
                    {
                        eprintln!("fastwebsockets connection: {error}");
                    }
                });
            }
        }),
    }
}

async fn tungstenite_echo(stream: tokio::net::TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
}

async fn fastwebsockets_echo(
    mut stream: tokio::net::TcpStream,
) -> Result<(), fastwebsockets::WebSocketError> {
    server_handshake(&mut stream).await?;
    let ws = fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Server);
    let mut ws = fastwebsockets::FragmentCollector::new(ws);
    loop {
        let frame = match ws.read_frame().await {
            Ok(frame) => frame,
            Err(fastwebsockets::WebSocketError::ConnectionClosed) => return Ok(()),
            Err(fastwebsockets::WebSocketError::UnexpectedEOF) => return Ok(()),
            Err(error) => return Err(error),
        };
        match frame.opcode {
            fastwebsockets::OpCode::Close => return Ok(()),
            fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => {
                ws.write_frame(frame).await?;
            }
            _ => {}
        }
    }
}

/// The server side of the opening handshake, for fastwebsockets (whose own
/// lives behind hyper): read the request head, answer 101.
async fn server_handshake(stream: &mut tokio::net::TcpStream) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let key = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                if len != head.len() {
                    return Err(io::Error::other("data before the handshake finished"));
                }
                let key = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                    .ok_or_else(|| io::Error::other("no Sec-WebSocket-Key"))?;
                break key.value.to_vec();
            }
            Ok(httparse::Status::Partial) if head.len() < 8192 => {}
            _ => return Err(io::Error::other("bad handshake request")),
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    stream.write_all(response.as_bytes()).await
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 section 4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}
