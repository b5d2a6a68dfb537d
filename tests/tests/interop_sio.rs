//! The official Socket.IO clients against a Socket.IO server with the
//! namespaces and handlers of contract sections 2 and 3:
//!
//! - `socket.io-client` v4 (npm), driven by `tests/interop/sio-client.mjs`:
//!   default transports (polling, then the upgrade), websocket only, polling
//!   only; acks both ways; binary round trips; rooms among three clients;
//!   auth refusal and acceptance on `/admin`; disconnect reasons and the
//!   reconnection after the server drops the connection; `/custom`;
//! - python-socketio's clients (PyPI), sync `socketio.Client` and asyncio
//!   `socketio.AsyncClient`, over websocket and polling, driven by
//!   `tests/interop/sio_client.py`;
//! - `socket.io-client` 2.5.0 (Socket.IO protocol v4 over Engine.IO v3),
//!   `sio-client.mjs --v2`.
//!
//! Each test runs against the official Node server (`sio-server.mjs
//! --eio3`) and against `conformance-server` on every runtime.

use std::process::Command;
use std::time::Duration;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::peers::{self, PeerProcess, run_peer};
use switchboard_conformance::server_process::ServerProcess;

/// What the client runs against; kept alive for the test's duration.
enum Server {
    Node(PeerProcess),
    Ours(ServerProcess),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Node(p) => format!("http://127.0.0.1:{}", p.port),
            Server::Ours(p) => format!("http://{}", p.addr),
        }
    }
}

/// Which server a test runs against.
#[derive(Clone, Copy)]
enum Target {
    Node,
    Ours(RuntimeKind),
}

impl Target {
    fn start(self) -> Server {
        match self {
            Target::Node => Server::Node(PeerProcess::spawn_node("sio-server.mjs", &["--eio3"])),
            Target::Ours(rt) => Server::Ours(ServerProcess::spawn(
                env!("CARGO_BIN_EXE_conformance-server"),
                rt,
            )),
        }
    }
}

fn node_ready() -> bool {
    let modules = peers::interop_dir().join("node_modules");
    peers::require(
        peers::node_ready()
            && ["socket.io", "socket.io-client", "socket.io-client-v2"]
                .iter()
                .all(|m| modules.join(m).exists()),
        "node + the socket.io, socket.io-client and socket.io-client-v2 packages",
    )
}

/// The Python venv, and for the Node target the Node server.
fn python_ready(target: Target) -> bool {
    let server_ready = match target {
        Target::Node => peers::require(
            peers::node_ready()
                && peers::interop_dir()
                    .join("node_modules")
                    .join("socket.io")
                    .exists(),
            "node + the socket.io package",
        ),
        Target::Ours(_) => true,
    };
    server_ready
        && peers::require(
            peers::python().exists(),
            "the peers' Python venv (python-socketio)",
        )
}

/// Runs a client to completion and asserts it reported success.
fn expect_success(mut cmd: Command, what: &str, server: &Server) {
    cmd.current_dir(peers::interop_dir());
    let (ok, output) = run_peer(cmd, Duration::from_secs(40));
    // JSON lines: compact from Node, with spaces from Python.
    let reported = output.contains(r#""event":"result","ok":true"#)
        || output.contains(r#""event": "result", "ok": true"#);
    assert!(ok && reported, "{what} against {}:\n{output}", server.url());
}

/// `sio-client.mjs URL SCENARIO ARGS...` (socket.io-client v4, or v2 with
/// `--v2`).
fn js(target: Target, scenario: &str, args: &[&str]) {
    if !node_ready() {
        return;
    }
    let server = target.start();
    let mut cmd = Command::new("node");
    cmd.arg(peers::interop_dir().join("sio-client.mjs"))
        .arg(server.url())
        .arg(scenario)
        .args(args);
    expect_success(cmd, &format!("sio-client {scenario} {args:?}"), &server);
}

/// `sio_client.py URL SCENARIO --mode MODE --transport TRANSPORT`.
fn python(target: Target, scenario: &str, mode: &str, transport: &str) {
    if !python_ready(target) {
        return;
    }
    let server = target.start();
    let mut cmd = Command::new(peers::python());
    cmd.arg(peers::interop_dir().join("sio_client.py"))
        .arg(server.url())
        .arg(scenario)
        .args(["--mode", mode, "--transport", transport]);
    expect_success(
        cmd,
        &format!("sio_client.py {scenario} --mode {mode} --transport {transport}"),
        &server,
    );
}

const POLLING: &[&str] = &["--transports", "polling", "--expect-transport", "polling"];
const WEBSOCKET: &[&str] = &[
    "--transports",
    "websocket",
    "--expect-transport",
    "websocket",
];
const UPGRADE: &[&str] = &["--expect-upgrade", "--expect-transport", "websocket"];

// socket.io-client v4 -------------------------------------------------------

fn echo_with_upgrade(t: Target) {
    js(t, "echo", UPGRADE);
}

fn echo_over_websocket(t: Target) {
    js(t, "echo", WEBSOCKET);
}

fn echo_over_polling(t: Target) {
    js(t, "echo", POLLING);
}

fn binary_with_upgrade(t: Target) {
    js(t, "binary", UPGRADE);
}

fn binary_over_websocket(t: Target) {
    js(t, "binary", WEBSOCKET);
}

fn binary_over_polling(t: Target) {
    js(t, "binary", POLLING);
}

fn acks_both_ways(t: Target) {
    js(t, "acks", UPGRADE);
}

fn acks_both_ways_over_polling(t: Target) {
    js(t, "acks", POLLING);
}

fn rooms_among_three_clients(t: Target) {
    js(t, "rooms", UPGRADE);
}

fn rooms_among_three_clients_over_polling(t: Target) {
    js(t, "rooms", POLLING);
}

fn admin_auth(t: Target) {
    js(t, "auth", UPGRADE);
}

fn admin_auth_over_polling(t: Target) {
    js(t, "auth", POLLING);
}

fn server_disconnect_reason(t: Target) {
    js(t, "disconnect", UPGRADE);
}

fn drop_then_reconnect(t: Target) {
    js(t, "drop", UPGRADE);
}

fn drop_then_reconnect_over_polling(t: Target) {
    js(t, "drop", POLLING);
}

fn drop_then_reconnect_over_websocket(t: Target) {
    js(t, "drop", WEBSOCKET);
}

fn namespaces_over_one_connection(t: Target) {
    js(t, "namespaces", UPGRADE);
}

fn namespaces_over_polling(t: Target) {
    js(t, "namespaces", POLLING);
}

// socket.io-client v2 (EIO=3) -----------------------------------------------

fn v2_echo_with_upgrade(t: Target) {
    js(
        t,
        "echo",
        &[
            "--v2",
            "--expect-upgrade",
            "--expect-transport",
            "websocket",
        ],
    );
}

fn v2_echo_over_polling(t: Target) {
    js(
        t,
        "echo",
        &[
            "--v2",
            "--transports",
            "polling",
            "--expect-transport",
            "polling",
        ],
    );
}

fn v2_echo_over_websocket(t: Target) {
    js(
        t,
        "echo",
        &[
            "--v2",
            "--transports",
            "websocket",
            "--expect-transport",
            "websocket",
        ],
    );
}

fn v2_binary_with_upgrade(t: Target) {
    js(
        t,
        "binary",
        &[
            "--v2",
            "--expect-upgrade",
            "--expect-transport",
            "websocket",
        ],
    );
}

fn v2_binary_over_polling(t: Target) {
    js(
        t,
        "binary",
        &[
            "--v2",
            "--transports",
            "polling",
            "--expect-transport",
            "polling",
        ],
    );
}

fn v2_admin_refusal(t: Target) {
    js(t, "auth", &["--v2"]);
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

/// python-socketio: one test per scenario, mode and transport.
macro_rules! python_tests {
    ($target:expr; $($scenario:literal => $name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn sync_websocket() {
                    crate::python($target, $scenario, "sync", "websocket")
                }
                #[test]
                fn sync_polling() {
                    crate::python($target, $scenario, "sync", "polling")
                }
                #[test]
                fn async_websocket() {
                    crate::python($target, $scenario, "async", "websocket")
                }
                #[test]
                fn async_polling() {
                    crate::python($target, $scenario, "async", "polling")
                }
            }
        )*
    };
}

macro_rules! suite {
    ($module:ident, $target:expr) => {
        mod $module {
            use super::*;
            tests!($target;
                echo_with_upgrade,
                echo_over_websocket,
                echo_over_polling,
                binary_with_upgrade,
                binary_over_websocket,
                binary_over_polling,
                acks_both_ways,
                acks_both_ways_over_polling,
                rooms_among_three_clients,
                rooms_among_three_clients_over_polling,
                admin_auth,
                admin_auth_over_polling,
                server_disconnect_reason,
                drop_then_reconnect,
                drop_then_reconnect_over_polling,
                drop_then_reconnect_over_websocket,
                namespaces_over_one_connection,
                namespaces_over_polling,
                v2_echo_with_upgrade,
                v2_echo_over_polling,
                v2_echo_over_websocket,
                v2_binary_with_upgrade,
                v2_binary_over_polling,
                v2_admin_refusal,
            );
            python_tests!($target;
                "echo" => python_echo,
                "binary" => python_binary,
                "auth" => python_auth,
                "rooms" => python_rooms,
            );
        }
    };
}

suite!(node, Target::Node);
suite!(tokio, Target::Ours(RuntimeKind::Tokio));
suite!(smol, Target::Ours(RuntimeKind::Smol));
suite!(async_std, Target::Ours(RuntimeKind::AsyncStd));
suite!(threads, Target::Ours(RuntimeKind::Threads));
