//! The official Node Engine.IO clients against an Engine.IO echo server:
//! `engine.io-client` v6 (protocol v4) and `engine.io-client` 3.5.6
//! (protocol v3), driven by `tests/interop/eio-client.mjs`. Each test runs
//! against the official Node server (`eio-server.mjs`, `--eio3` for the v3
//! client) and against `conformance-server` on every runtime.
//!
//! v4 runs on `/engine.io/` of `conformance-server`. The v3 client runs on
//! `/engine.io/` of the Node server with `--eio3`, and of our routes started
//! in-process with `allow_eio3` (the contract's v3 path, `/socket.io/`, is
//! the Socket.IO server).
//!
//! Not covered: a close initiated by the server. An echo-only server never
//! closes a session on its own, so the client cannot be shown one here.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::peers::{self, PeerProcess, run_peer};
use switchboard_conformance::runtime;
use switchboard_conformance::server_process::ServerProcess;
use switchboard_core::engineio::ServerConfig;

/// What the client runs against; kept alive for the test's duration.
enum Server {
    Node(PeerProcess),
    Ours(ServerProcess),
    /// Our routes in-process with `allow_eio3` at `/engine.io/`, for the v3
    /// client (the contract keeps `conformance-server`'s `/engine.io/` v4
    /// only).
    OursEio3(SocketAddr),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Node(p) => format!("http://127.0.0.1:{}", p.port),
            Server::Ours(p) => format!("http://{}", p.addr),
            Server::OursEio3(addr) => format!("http://{addr}"),
        }
    }
}

fn clients_ready() -> bool {
    let modules = peers::interop_dir().join("node_modules");
    peers::require(
        peers::node_ready()
            && ["engine.io", "engine.io-client", "engine.io-client-v3"]
                .iter()
                .all(|m| modules.join(m).exists()),
        "node + the engine.io, engine.io-client and engine.io-client-v3 packages",
    )
}

/// Which server a test runs against.
#[derive(Clone, Copy)]
enum Target {
    Node,
    Ours(RuntimeKind),
}

impl Target {
    /// Starts the server (`eio3`: the Node server accepts v3 too).
    fn start(self, eio3: bool) -> Server {
        match self {
            Target::Node => {
                let args: &[&str] = if eio3 { &["--eio3"] } else { &[] };
                Server::Node(PeerProcess::spawn_node("eio-server.mjs", args))
            }
            Target::Ours(rt) if eio3 => {
                let config = ServerConfig {
                    allow_eio3: true,
                    ..runtime::conformance_engineio_config()
                };
                Server::OursEio3(runtime::spawn_engineio_echo(rt, config))
            }
            Target::Ours(rt) => Server::Ours(ServerProcess::spawn(
                env!("CARGO_BIN_EXE_conformance-server"),
                rt,
            )),
        }
    }
}

/// Runs `eio-client.mjs URL SCENARIO ARGS...` and asserts it succeeded.
fn client(server: &Server, scenario: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(peers::interop_dir().join("eio-client.mjs"))
        .arg(server.url())
        .arg(scenario)
        .args(args)
        .current_dir(peers::interop_dir());
    let (ok, output) = run_peer(cmd, Duration::from_secs(30));
    assert!(
        ok && output.contains(r#""event":"result","ok":true"#),
        "eio-client {scenario} {args:?} against {}:\n{output}",
        server.url()
    );
    output
}

fn v4(target: Target, scenario: &str, args: &[&str]) {
    if !clients_ready() {
        return;
    }
    let server = target.start(false);
    client(&server, scenario, args);
}

fn v3(target: Target, scenario: &str, args: &[&str]) {
    if !clients_ready() {
        return;
    }
    let server = target.start(true);
    let mut all = vec!["--v3", "--path", "/engine.io/"];
    all.extend_from_slice(args);
    client(&server, scenario, &all);
}

fn polling_echo(t: Target) {
    v4(
        t,
        "echo",
        &["--transports", "polling", "--expect-transport", "polling"],
    );
}

fn websocket_echo(t: Target) {
    v4(
        t,
        "echo",
        &[
            "--transports",
            "websocket",
            "--expect-transport",
            "websocket",
        ],
    );
}

fn upgrade_then_echo(t: Target) {
    v4(
        t,
        "echo",
        &[
            "--transports",
            "polling,websocket",
            "--expect-upgrade",
            "--expect-transport",
            "websocket",
        ],
    );
}

fn heartbeat_over_polling(t: Target) {
    v4(
        t,
        "heartbeat",
        &["--transports", "polling", "--expect-transport", "polling"],
    );
}

fn heartbeat_over_websocket(t: Target) {
    v4(
        t,
        "heartbeat",
        &[
            "--transports",
            "websocket",
            "--expect-transport",
            "websocket",
        ],
    );
}

fn heartbeat_after_upgrade(t: Target) {
    v4(t, "heartbeat", &["--expect-upgrade"]);
}

fn client_close_over_polling(t: Target) {
    v4(
        t,
        "client-close",
        &["--transports", "polling", "--expect-transport", "polling"],
    );
}

fn client_close_over_websocket(t: Target) {
    v4(
        t,
        "client-close",
        &[
            "--transports",
            "websocket",
            "--expect-transport",
            "websocket",
        ],
    );
}

fn client_close_after_upgrade(t: Target) {
    v4(t, "client-close", &["--expect-upgrade"]);
}

fn v3_polling_echo(t: Target) {
    v3(
        t,
        "echo",
        &["--transports", "polling", "--expect-transport", "polling"],
    );
}

fn v3_upgrade_then_echo(t: Target) {
    v3(
        t,
        "echo",
        &["--expect-upgrade", "--expect-transport", "websocket"],
    );
}

fn v3_heartbeat_over_polling(t: Target) {
    v3(
        t,
        "heartbeat",
        &["--transports", "polling", "--expect-transport", "polling"],
    );
}

fn v3_heartbeat_after_upgrade(t: Target) {
    v3(
        t,
        "heartbeat",
        &["--expect-upgrade", "--expect-transport", "websocket"],
    );
}

fn v3_client_close_over_polling(t: Target) {
    v3(
        t,
        "client-close",
        &["--transports", "polling", "--expect-transport", "polling"],
    );
}

fn v3_client_close_over_websocket(t: Target) {
    v3(
        t,
        "client-close",
        &[
            "--transports",
            "websocket",
            "--expect-transport",
            "websocket",
        ],
    );
}

macro_rules! tests {
    ($target:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name($target)
            }
        )*
    };
}

macro_rules! suite {
    ($module:ident, $target:expr) => {
        mod $module {
            use super::*;
            tests!($target;
                polling_echo,
                websocket_echo,
                upgrade_then_echo,
                heartbeat_over_polling,
                heartbeat_over_websocket,
                heartbeat_after_upgrade,
                client_close_over_polling,
                client_close_over_websocket,
                client_close_after_upgrade,
                v3_polling_echo,
                v3_upgrade_then_echo,
                v3_heartbeat_over_polling,
                v3_heartbeat_after_upgrade,
                v3_client_close_over_polling,
                v3_client_close_over_websocket,
            );
        }
    };
}

suite!(node, Target::Node);
suite!(tokio, Target::Ours(RuntimeKind::Tokio));
suite!(smol, Target::Ours(RuntimeKind::Smol));
suite!(async_std, Target::Ours(RuntimeKind::AsyncStd));
suite!(threads, Target::Ours(RuntimeKind::Threads));
