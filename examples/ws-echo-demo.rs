//! The WebSocket echo demo: a page on http://127.0.0.1:3000/ with an echo
//! panel, served by Switchboard on the chosen runtime.
//!
//! `cargo run --release --example ws-echo-demo -- [--listen 127.0.0.1:3000] [--runtime tokio|smol|async-std|threads]`
//!
//! Plain HTTP requests get the page; WebSocket upgrades (any path) get an
//! echo. Routing happens on the parsed request head, which is how an app
//! embeds Switchboard beside its own routes.

use std::net::TcpListener;
use std::sync::Arc;

use switchboard::core::http::{Request, encode_response};
use switchboard::core::ws::Config;
use switchboard::core::ws::handshake::is_upgrade_request;

const PAGE: &str = include_str!("ws-echo-demo.html");

fn page_response(request: &Request) -> Vec<u8> {
    if request.path() == "/" {
        encode_response(
            200,
            &[
                ("Content-Type", "text/html; charset=utf-8"),
                ("Connection", "close"),
            ],
            PAGE.as_bytes(),
        )
    } else {
        encode_response(
            404,
            &[("Content-Type", "text/plain"), ("Connection", "close")],
            b"not found",
        )
    }
}

async fn handle_async<R: switchboard_async::Runtime>(
    runtime: R,
    mut io: R::TcpStream,
    config: Arc<Config>,
) {
    use futures_util::AsyncWriteExt;
    let Ok((request, buffered)) = switchboard_async::ws::read_request(&mut io, &config).await
    else {
        return;
    };
    if is_upgrade_request(&request) {
        if let Ok(ws) =
            switchboard_async::ws::accept_request(runtime, io, &request, &buffered, config).await
        {
            switchboard_async::ws::echo(ws).await;
        }
    } else {
        let _ = io.write_all(&page_response(&request)).await;
        let _ = io.close().await;
    }
}

async fn serve_async<R: switchboard_async::Runtime>(
    runtime: R,
    listener: R::TcpListener,
    config: Arc<Config>,
) {
    loop {
        match runtime.accept(&listener).await {
            Ok((io, _)) => runtime.spawn(handle_async(runtime.clone(), io, config.clone())),
            Err(error) => eprintln!("accept failed: {error}"),
        }
    }
}

fn main() {
    let mut listen = "127.0.0.1:3000".to_string();
    let mut runtime = "tokio".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--runtime", Some(v)) => runtime = v,
            _ => {
                eprintln!(
                    "usage: ws-echo-demo [--listen ADDR] [--runtime tokio|smol|async-std|threads]"
                );
                std::process::exit(2);
            }
        }
    }
    let listener =
        TcpListener::bind(&listen).unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    let config = Arc::new(Config::default());
    println!(
        "Switchboard WebSocket echo demo ({runtime}): http://{}/",
        listener.local_addr().unwrap()
    );
    match runtime.as_str() {
        "tokio" => tokio::runtime::Runtime::new().unwrap().block_on(async {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve_async(switchboard::tokio::Tokio, listener, config).await
        }),
        "smol" | "async-std" => {
            let listener = async_net::TcpListener::try_from(listener).unwrap();
            if runtime == "smol" {
                smol::block_on(serve_async(
                    switchboard::smol::Smol::new(),
                    listener,
                    config,
                ))
            } else {
                let rt = switchboard::smol::Smol::with_spawner(|task| {
                    async_std::task::spawn(task);
                });
                async_std::task::block_on(serve_async(rt, listener, config))
            }
        }
        "threads" => {
            use switchboard::threads::ws;
            for stream in listener.incoming().flatten() {
                let config = config.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let Ok((request, buffered)) = ws::read_request(&mut stream, &config) else {
                        return;
                    };
                    if is_upgrade_request(&request) {
                        if let Ok(socket) = ws::accept_request(stream, &request, &buffered, config)
                        {
                            ws::echo(socket);
                        }
                    } else {
                        use std::io::Write;
                        let _ = stream.write_all(&page_response(&request));
                    }
                });
            }
        }
        other => {
            eprintln!("unknown runtime {other}");
            std::process::exit(2);
        }
    }
}
