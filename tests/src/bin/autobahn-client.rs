//! `autobahn-client --runtime tokio|smol|async-std|threads --url ws://127.0.0.1:PORT --agent NAME`
//!
//! Runs a Switchboard client on the chosen runtime through every case of an
//! Autobahn|Testsuite fuzzingserver: asks for the case count, echoes each
//! case's messages, then asks the server to write its reports.

use std::process::ExitCode;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::runtime::conformance_config;

/// Connects to `url` on `runtime` and echoes every message until the
/// connection closes, the way an application would: receive, answer,
/// receive. Returns the first text message seen.
fn run_case(runtime: RuntimeKind, url: &str) -> Result<Option<String>, String> {
    let config = conformance_config();
    match runtime {
        RuntimeKind::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(async {
                let ws = switchboard_tokio::ws::connect_with_config(url, config).await;
                echo_async(ws.map_err(|e| e.to_string())?).await
            }),
        RuntimeKind::Smol => smol::block_on(async {
            let ws = switchboard_smol::ws::connect_with_config(url, config).await;
            echo_async(ws.map_err(|e| e.to_string())?).await
        }),
        RuntimeKind::AsyncStd => async_std::task::block_on(async {
            let ws = switchboard_smol::ws::connect_with_config(url, config).await;
            echo_async(ws.map_err(|e| e.to_string())?).await
        }),
        RuntimeKind::Threads => {
            let mut ws = switchboard_threads::ws::connect_with_config(url, config)
                .map_err(|e| e.to_string())?;
            let mut first_text = None;
            while let Some(item) = ws.recv() {
                if let Ok(message) = item
                    && message.is_data()
                {
                    first_text = first_text.or_else(|| message.as_text().map(str::to_string));
                    let _ = ws.send(message);
                }
            }
            Ok(first_text)
        }
    }
}

async fn echo_async<S, R>(
    mut ws: switchboard_async::ws::WebSocket<S, R>,
) -> Result<Option<String>, String>
where
    S: futures_util::AsyncRead + futures_util::AsyncWrite + Unpin,
    R: switchboard_async::Runtime,
{
    let mut first_text = None;
    while let Some(item) = ws.recv().await {
        if let Ok(message) = item
            && message.is_data()
        {
            first_text = first_text.or_else(|| message.as_text().map(str::to_string));
            let _ = ws.send(message).await;
        }
    }
    Ok(first_text)
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
