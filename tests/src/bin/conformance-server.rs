//! `conformance-server --runtime tokio|smol|async-std|threads --listen 127.0.0.1:PORT`
//!
//! The one server every conformance check, interop test and benchmark points
//! at (see `shared/conformance-contract.md`): Engine.IO at `/engine.io/`
//! (section 1), and a WebSocket echo with the limits raised for RFC 6455
//! suites on every other path.

use std::net::TcpListener;
use std::process::ExitCode;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::runtime::run_conformance_server;

fn usage() -> ExitCode {
    eprintln!(
        "usage: conformance-server --runtime tokio|smol|async-std|threads --listen 127.0.0.1:PORT"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut runtime = RuntimeKind::Tokio;
    let mut listen = "127.0.0.1:3000".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runtime" => match args.next().map(|v| v.parse()) {
                Some(Ok(kind)) => runtime = kind,
                Some(Err(e)) => {
                    eprintln!("{e}");
                    return usage();
                }
                None => return usage(),
            },
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => return usage(),
            },
            "-h" | "--help" => {
                usage();
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("local addr");
    std::thread::Builder::new()
        .name("server".into())
        .spawn(move || run_conformance_server(runtime, listener))
        .expect("spawn server");
    tracing::info!(%addr, %runtime, "conformance-server listening");
    println!("listening on {addr} ({runtime})");
    wait_for_shutdown_signal();
    tracing::info!("shutting down");
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_shutdown_signal() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal runtime");
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}
