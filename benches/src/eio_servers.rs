//! The Engine.IO echo servers under test: every message, text or binary,
//! comes back as sent, and nothing else is sent (heartbeats are 10 minutes
//! apart, so none falls inside a run). Both sides accept both transports
//! and upgrades, take up to [`MAX_PAYLOAD`] bytes per polling body and
//! buffer up to [`MAX_BUFFERED`] packets per session; TCP_NODELAY on every
//! connection; two worker threads (one per core).
//!
//! - **switchboard-tokio**: `switchboard_tokio::engineio::serve` with
//!   `conformance-server`'s echo endpoint
//!   (`switchboard_conformance::runtime::engineio_echo`) at `/engine.io/`,
//!   on tokio's multi-thread runtime.
//! - **switchboard-smol**: the same endpoint through
//!   `switchboard_smol::engineio::serve_on`, spawning on a two-thread smol
//!   executor (`conformance-server`'s).
//! - **switchboard-threads** (not in the default set; `--impls` names it):
//!   the same endpoint through `switchboard_threads::engineio::serve`, a
//!   thread per connection plus a writer thread per Engine.IO WebSocket.
//! - **engineioxide**: socketioxide's Engine.IO engine, an
//!   `EngineIoService` served by hyper's HTTP/1.1 server (with upgrades)
//!   on tokio's multi-thread runtime, and a handler that `emit`s every
//!   message back. engineioxide runs only on tokio: both Switchboard
//!   servers are compared against it.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engineioxide::handler::EngineIoHandler;
use engineioxide::{DisconnectReason, Socket, Str};

use crate::servers::{smol_executor, tokio_runtime};

/// `pingInterval` of every server: long enough that no heartbeat falls in
/// a run (and none disturbs the idle-memory count).
pub const PING_INTERVAL: Duration = Duration::from_secs(600);
/// `pingTimeout` of every server (both libraries' default).
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// `maxPayload` of every server (Switchboard's and Node's default;
/// engineioxide's default is 100 kB).
pub const MAX_PAYLOAD: usize = 1_000_000;
/// Packets buffered per session before a server gives up on it
/// (Switchboard's default; engineioxide's default is 128).
pub const MAX_BUFFERED: usize = 1024;

/// An Engine.IO server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EioImpl {
    /// `switchboard_tokio::engineio::serve` + the echo endpoint.
    SwitchboardTokio,
    /// `switchboard_smol::engineio::serve_on` + the echo endpoint.
    SwitchboardSmol,
    /// `switchboard_threads::engineio::serve` + the echo endpoint.
    SwitchboardThreads,
    /// engineioxide's `EngineIoService` under hyper.
    Engineioxide,
}

impl EioImpl {
    /// The implementations measured by default: the targets' runtimes and
    /// the peer.
    pub const DEFAULT: [EioImpl; 3] = [
        EioImpl::SwitchboardTokio,
        EioImpl::SwitchboardSmol,
        EioImpl::Engineioxide,
    ];

    /// Every implementation, Switchboard's first.
    pub const ALL: [EioImpl; 4] = [
        EioImpl::SwitchboardTokio,
        EioImpl::SwitchboardSmol,
        EioImpl::SwitchboardThreads,
        EioImpl::Engineioxide,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            EioImpl::SwitchboardTokio => "switchboard-tokio",
            EioImpl::SwitchboardSmol => "switchboard-smol",
            EioImpl::SwitchboardThreads => "switchboard-threads",
            EioImpl::Engineioxide => "engineioxide",
        }
    }
}

impl fmt::Display for EioImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EioImpl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let short = match s {
            "tokio" => Some(EioImpl::SwitchboardTokio),
            "smol" => Some(EioImpl::SwitchboardSmol),
            "threads" => Some(EioImpl::SwitchboardThreads),
            _ => None,
        };
        short
            .or_else(|| EioImpl::ALL.into_iter().find(|i| i.name() == s))
            .ok_or_else(|| {
                format!("unknown Engine.IO implementation {s:?}: use switchboard-tokio (tokio), switchboard-smol (smol), switchboard-threads (threads) or engineioxide")
            })
    }
}

/// Switchboard's endpoint configuration.
pub fn switchboard_config() -> switchboard_core::engineio::ServerConfig {
    switchboard_core::engineio::ServerConfig {
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        max_payload: MAX_PAYLOAD,
        max_buffered_packets: MAX_BUFFERED,
        ..Default::default()
    }
}

/// engineioxide's configuration, the same settings.
pub fn engineioxide_config() -> engineioxide::config::EngineIoConfig {
    engineioxide::config::EngineIoConfig::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .max_payload(MAX_PAYLOAD as u64)
        .max_buffer_size(MAX_BUFFERED)
        .build()
}

/// Serves `imp`'s Engine.IO echo at `/engine.io/` on `listener`, blocking
/// forever.
pub fn run(imp: EioImpl, listener: TcpListener) -> io::Result<()> {
    match imp {
        EioImpl::SwitchboardTokio => {
            let engine = switchboard_conformance::runtime::engineio_echo(switchboard_config());
            tokio_runtime().block_on(async move {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let routes =
                    switchboard_tokio::engineio::Routes::new().engineio("/engine.io/", engine);
                switchboard_tokio::engineio::serve(listener, routes).await;
                Ok(())
            })
        }
        EioImpl::SwitchboardSmol => {
            let engine = switchboard_conformance::runtime::engineio_echo(switchboard_config());
            let executor = smol_executor();
            smol::block_on(async move {
                let listener = async_net::TcpListener::try_from(listener)?;
                let runtime = switchboard_smol::Smol::with_spawner(move |task| {
                    executor.spawn(task).detach();
                });
                let routes =
                    switchboard_smol::engineio::Routes::new().engineio("/engine.io/", engine);
                switchboard_smol::engineio::serve_on(runtime, listener, routes).await;
                Ok(())
            })
        }
        EioImpl::SwitchboardThreads => {
            let engine = switchboard_conformance::runtime::engineio_echo(switchboard_config());
            let routes =
                switchboard_threads::engineio::Routes::new().engineio("/engine.io/", engine);
            switchboard_threads::engineio::serve(listener, routes)
        }
        EioImpl::Engineioxide => tokio_runtime().block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let service = engineioxide::service::EngineIoService::with_config(
                Arc::new(Echo),
                engineioxide_config(),
            );
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let service = service.clone();
                tokio::spawn(async move {
                    // Connection errors are how load runs end.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        }),
    }
}

/// engineioxide's echo handler: every message back as sent.
#[derive(Debug)]
struct Echo;

impl EngineIoHandler for Echo {
    type Data = ();

    fn on_connect(self: Arc<Self>, _socket: Arc<Socket<()>>) {}

    fn on_disconnect(&self, _socket: Arc<Socket<()>>, _reason: DisconnectReason) {}

    fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<()>>) {
        if let Err(error) = socket.emit(msg) {
            eprintln!("engineioxide echo failed: {error}");
        }
    }

    fn on_binary(self: &Arc<Self>, data: Bytes, socket: Arc<Socket<()>>) {
        if let Err(error) = socket.emit_binary(data) {
            eprintln!("engineioxide echo failed: {error}");
        }
    }
}
