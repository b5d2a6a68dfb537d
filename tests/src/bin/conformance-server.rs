//! `conformance-server --runtime tokio|smol|async-std|threads --listen 127.0.0.1:PORT`
//!
//! The one server every conformance check, interop test and benchmark points
//! at (see `shared/conformance-contract.md`): Engine.IO at `/engine.io/`
//! (section 1), Socket.IO at `/socket.io/`, which also takes Engine.IO v3
//! clients (sections 2 and 3), and a WebSocket echo with the limits raised
//! for RFC 6455 suites on every other path.
//!
//! Both options are required. It prints `listening on ADDR (RUNTIME)` on
//! stdout once it accepts connections (`--listen 127.0.0.1:0` picks a free
//! port), logs through `tracing` on stderr (`RUST_LOG`, `info` by default),
//! and exits with status 0 on SIGINT or SIGTERM. A bad command line exits
//! with status 2 and the usage on stderr; an address it cannot listen on,
//! or a server that stops on its own, with status 1.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::process::ExitCode;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::runtime::run_conformance_server;

const USAGE: &str =
    "usage: conformance-server --runtime tokio|smol|async-std|threads --listen 127.0.0.1:PORT";

/// Reports a command-line error with the usage; exit status 2.
fn usage_error(error: &str) -> ExitCode {
    eprintln!("conformance-server: {error}");
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// What the command line asks for.
enum Command {
    Serve {
        runtime: RuntimeKind,
        listen: String,
    },
    Help,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut runtime = None;
    let mut listen = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runtime" => {
                let value = args.next().ok_or("--runtime needs a value")?;
                runtime = Some(value.parse::<RuntimeKind>()?);
            }
            "--listen" => listen = Some(args.next().ok_or("--listen needs a value")?),
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    match (runtime, listen) {
        (Some(runtime), Some(listen)) => Ok(Command::Serve { runtime, listen }),
        (None, _) => Err("--runtime is required".into()),
        (_, None) => Err("--listen is required".into()),
    }
}

fn main() -> ExitCode {
    let (runtime, listen) = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve { runtime, listen }) => (runtime, listen),
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => return usage_error(&error),
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|e| {
            eprintln!(
                "conformance-server: ignoring RUST_LOG={directives:?} ({e}); logging at info"
            );
            tracing_subscriber::EnvFilter::new("info")
        }),
        Err(_) => tracing_subscriber::EnvFilter::new("info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Plain text when the log goes to a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("conformance-server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("conformance-server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The signal handlers are in place before the listening line, so a
    // signal sent as soon as it is read is a clean shutdown.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("conformance-server: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropped when the server thread ends, which it only does by failing
    // (a panic unwinds through it too).
    let (running, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            let _running = running;
            run_conformance_server(runtime, listener)
        })
        .expect("spawn server");
    tracing::info!(%addr, %runtime, "conformance-server listening");
    println!("listening on {addr} ({runtime})");
    match signals.wait(stopped) {
        Shutdown::Signal(name) => {
            tracing::info!(signal = name, "shutting down");
            ExitCode::SUCCESS
        }
        Shutdown::ServerStopped => {
            tracing::error!("the server stopped");
            ExitCode::FAILURE
        }
    }
}

/// Why `conformance-server` ends.
enum Shutdown {
    /// SIGINT or SIGTERM.
    Signal(&'static str),
    /// The server thread ended (it failed).
    ServerStopped,
}

/// SIGINT and SIGTERM handlers, on a runtime of their own.
struct Signals {
    rt: tokio::runtime::Runtime,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers: from now on SIGINT and SIGTERM no longer end
    /// the process on their own.
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (int, term) = {
            let _context = rt.enter();
            (
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            )
        };
        Ok(Signals { rt, int, term })
    }

    /// Blocks until SIGINT or SIGTERM, or until the server thread ends.
    fn wait(self, stopped: tokio::sync::oneshot::Receiver<()>) -> Shutdown {
        let Signals {
            rt,
            mut int,
            mut term,
        } = self;
        rt.block_on(async {
            tokio::select! {
                _ = int.recv() => Shutdown::Signal("SIGINT"),
                _ = term.recv() => Shutdown::Signal("SIGTERM"),
                _ = stopped => Shutdown::ServerStopped,
            }
        })
    }
}
