//! The Engine.IO sockets API (`EngineIo::with_sockets`: each session a
//! `Socket` the application reads) on every runtime.

//!
//! The `*_echo` servers echo over the sockets API, or (`reads` false)
//! accept sessions and never read them.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_async::engineio::Socket;
use switchboard_conformance::eio_cases;
use switchboard_conformance::raw::frame;
use switchboard_conformance::runtime::{conformance_engineio_config, spawn_on_free_port};
use switchboard_core::engineio::ServerConfig;

/// One session on an async runtime: echoed, or never read.
async fn echo_or_ignore(mut socket: Socket, reads: bool) {
    if !reads {
        return std::future::pending().await;
    }
    while let Some(message) = socket.recv().await {
        let _ = socket.send(message);
    }
}

/// The contract's settings for the echo; the defaults (a heartbeat of 25
/// s, longer than a wait for room) for the server that never reads.
fn config(reads: bool) -> ServerConfig {
    if reads {
        conformance_engineio_config()
    } else {
        ServerConfig::default()
    }
}

fn tokio_echo(reads: bool) -> SocketAddr {
    use switchboard_tokio::engineio::{EngineIo, Routes, serve};
    spawn_on_free_port("eio-sockets-tokio".into(), move |listener| {
        let runtime = ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = ::tokio::net::TcpListener::from_std(listener).expect("listener");
            let (engine, mut sockets) = EngineIo::with_sockets(config(reads));
            ::tokio::spawn(serve(
                listener,
                Routes::new().engineio("/engine.io/", engine),
            ));
            while let Some(socket) = sockets.accept().await {
                ::tokio::spawn(echo_or_ignore(socket, reads));
            }
        });
    })
}

fn smol_echo(reads: bool) -> SocketAddr {
    use switchboard_smol::engineio::{EngineIo, Routes, serve};
    spawn_on_free_port("eio-sockets-smol".into(), move |listener| {
        ::smol::block_on(async move {
            let listener = async_net::TcpListener::try_from(listener).expect("listener");
            let (engine, mut sockets) = EngineIo::with_sockets(config(reads));
            ::smol::spawn(serve(
                listener,
                Routes::new().engineio("/engine.io/", engine),
            ))
            .detach();
            while let Some(socket) = sockets.accept().await {
                ::smol::spawn(echo_or_ignore(socket, reads)).detach();
            }
        });
    })
}

fn threads_echo(reads: bool) -> SocketAddr {
    use switchboard_threads::engineio::{EngineIo, Routes, blocking, serve};
    spawn_on_free_port("eio-sockets-threads".into(), move |listener| {
        let (engine, sockets) = EngineIo::with_sockets(config(reads));
        std::thread::spawn(move || serve(listener, Routes::new().engineio("/engine.io/", engine)));
        for mut socket in blocking(sockets) {
            std::thread::spawn(move || {
                if !reads {
                    std::thread::park();
                }
                while let Some(message) = socket.recv() {
                    let _ = socket.send(message);
                }
            });
        }
    })
}

fn session_never_read_is_closed(addr: SocketAddr) {
    let started = std::time::Instant::now();
    let mut conn = eio_cases::ws_open(addr, "/engine.io/?EIO=4&transport=websocket");
    assert!(
        matches!(eio_cases::ws_recv(&mut conn, Duration::from_secs(5)), eio_cases::WsMsg::Text(open) if open.starts_with('0')),
        "the open packet"
    );
    let burst: Vec<u8> = (0..3000)
        .flat_map(|i| frame(1, true, 0, format!("4m{i}").as_bytes(), true))
        .collect();
    conn.write(&burst);
    loop {
        match eio_cases::ws_recv(&mut conn, Duration::from_secs(10)) {
            eio_cases::WsMsg::Text(ping) if ping == "2" => eio_cases::ws_text(&mut conn, "3"),
            eio_cases::WsMsg::Close(..) | eio_cases::WsMsg::Eof => break,
            other => panic!("expected the session to close, got {other:?}"),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(9),
        "closed after {took:?}"
    );
}

macro_rules! runtime_suite {
    ($name:ident, $echo:ident) => {
        mod $name {
            /// A burst of more messages than a session's inbox holds
            /// (`max_buffered_packets`, 1,024) is echoed, in order, and the
            /// session stays: the connection hands the burst over as the
            /// application reads it.
            #[test]
            fn a_burst_larger_than_the_inbox_is_echoed() {
                super::eio_cases::websocket_burst_larger_than_the_send_queue_is_echoed(
                    super::$echo(true),
                );
            }

            /// An application that never reads: the burst waits for it
            /// once (`HANDLERS_CATCH_UP`, 5 s), then fills the inbox and
            /// the session is closed rather than buffered without bound.
            #[test]
            fn a_session_never_read_is_closed() {
                super::session_never_read_is_closed(super::$echo(false));
            }

            #[test]
            fn polling_echo() {
                let mut session = super::eio_cases::Polling::open(super::$echo(true));
                session.post_ok("4hello\x1e4world");
                assert_eq!(session.recv_messages(2), ["4hello", "4world"]);
            }
        }
    };
}

runtime_suite!(tokio, tokio_echo);
runtime_suite!(smol, smol_echo);
runtime_suite!(threads, threads_echo);
