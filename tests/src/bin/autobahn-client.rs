//! `autobahn-client --runtime tokio|smol|async-std|threads --url ws://127.0.0.1:PORT --agent NAME`
//!
//! Runs a Switchboard client on the chosen runtime through every case of an
//! Autobahn|Testsuite fuzzingserver: asks for the case count, echoes each
//! case's messages, then asks the server to write its reports.

use std::process::ExitCode;
use std::time::Duration;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::client::{Received, TestClient};
use switchboard_conformance::runtime::conformance_config;
use switchboard_core::ws::Message;

const IDLE: Duration = Duration::from_secs(60);

fn run_case(runtime: RuntimeKind, url: &str) -> Result<Option<String>, String> {
    let mut client = TestClient::connect(runtime, url, conformance_config())?;
    let mut first_text = None;
    loop {
        match client.recv(IDLE) {
            Received::Message(message @ (Message::Text(_) | Message::Binary(_))) => {
                if first_text.is_none() {
                    first_text = message.as_text().map(str::to_string);
                }
                if client.send(message).is_err() {
                    // The connection is closing; keep reading to the end.
                }
            }
            Received::Message(_) | Received::Error(_) => {}
            Received::End => return Ok(first_text),
            Received::Timeout => return Err(format!("{url}: no activity for {IDLE:?}")),
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut runtime = RuntimeKind::Tokio;
    let mut base = "ws://127.0.0.1:9001".to_string();
    let mut agent = "switchboard".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--runtime", Some(v)) => match v.parse() {
                Ok(kind) => runtime = kind,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            },
            ("--url", Some(v)) => base = v.trim_end_matches('/').to_string(),
            ("--agent", Some(v)) => agent = v,
            _ => {
                eprintln!(
                    "usage: autobahn-client --runtime RUNTIME --url ws://HOST:PORT --agent NAME"
                );
                return ExitCode::from(2);
            }
        }
    }
    let count: usize = match run_case(runtime, &format!("{base}/getCaseCount")) {
        Ok(Some(text)) => match text.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("bad case count {text:?}");
                return ExitCode::FAILURE;
            }
        },
        Ok(None) => {
            eprintln!("no case count received");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("getCaseCount failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("running {count} cases on {runtime} as {agent}");
    for case in 1..=count {
        if let Err(e) = run_case(
            runtime,
            &format!("{base}/runCase?case={case}&agent={agent}"),
        ) {
            eprintln!("case {case}: {e}");
        }
    }
    if let Err(e) = run_case(runtime, &format!("{base}/updateReports?agent={agent}")) {
        eprintln!("updateReports failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
