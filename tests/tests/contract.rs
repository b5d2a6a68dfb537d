//! The clauses of `shared/conformance-contract.md` that the case suites
//! (`eio.rs`, `sio.rs`, `ws.rs`, `interop_*.rs`) do not check, each against
//! the `conformance-server` binary on every runtime:
//!
//! - the command line: both options required, errors exit with status 2
//!   (an address it cannot listen on with status 1) and start nothing;
//! - logging through `tracing` on stderr, filtered by `RUST_LOG`;
//! - a clean exit (status 0) on SIGINT and SIGTERM, also with connections
//!   open and right after the `listening on` line;
//! - the WebSocket echo on every path but `/engine.io/` and `/socket.io/`
//!   (`ws.rs` runs the same echo in-process, not the binary's routes):
//!   text, binary, ping, close, permessage-deflate, a 16 MiB message and a
//!   message of 65,536 fragments;
//! - `maxPayload` on `/socket.io/` (`eio.rs` checks it on `/engine.io/`);
//! - a Socket.IO socket whose connection ends (client `close` packet,
//!   `drop-me`, lost TCP connection) leaves all of its rooms.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchboard_conformance::RuntimeKind;
use switchboard_conformance::eio_cases::{
    self, Json, TEXT_BODY, WsMsg, http_request, ws_open, ws_recv,
};
use switchboard_conformance::raw::{self, ReadResult, close_payload, frame};
use switchboard_conformance::server_process::ServerProcess;
use switchboard_conformance::sio_cases::{self, Frame, Session, Transport};
use switchboard_conformance::ws_cases::client_deflate;

const EXE: &str = env!("CARGO_BIN_EXE_conformance-server");

/// How long anything may take before the test gives up on it (a liveness
/// bound, not a measurement).
const T: Duration = Duration::from_secs(10);

/// `maxPayload` of contract sections 1 and 2.
const MAX_PAYLOAD: usize = 1_000_000;

// ---------------------------------------------------------------------------
// Running the binary with its output captured.

/// `conformance-server` started with `args` and `env`, its stdout and
/// stderr captured; killed on drop if still running.
struct Captured {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
}

impl Captured {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Captured {
        let mut command = Command::new(EXE);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {EXE}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Captured {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// Starts a server on `runtime` and waits for its `listening on ADDR
    /// (runtime)` line; returns it and the address.
    fn serve(runtime: RuntimeKind, env: &[(&str, &str)]) -> (Captured, SocketAddr) {
        let mut server = Captured::start(
            &["--runtime", runtime.name(), "--listen", "127.0.0.1:0"],
            env,
        );
        let mut line = String::new();
        server
            .stdout
            .as_mut()
            .expect("stdout")
            .read_line(&mut line)
            .expect("read the listening line");
        let suffix = format!(" ({runtime})");
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|rest| rest.strip_suffix(suffix.as_str()))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{runtime}: unexpected first line {line:?}"));
        (server, addr)
    }

    /// Sends `signal` (`INT`, `TERM`) to the process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits (at most [`T`]) for the process to exit; returns its status,
    /// the rest of its stdout and all of its stderr.
    fn finish(mut self, what: &str) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.take().expect("stderr").join().unwrap();
                panic!("{what}: still running after {T:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let _ = self
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout);
        let stderr = self.stderr.take().expect("stderr").join().unwrap();
        (status, stdout, stderr)
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The command line.

/// A bad command line exits with status 2, the usage on stderr, and starts
/// no server; `--help` prints the usage on stdout and exits with status 0.
#[test]
fn command_line_errors_exit_with_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--runtime is required"),
        (&["--listen", "127.0.0.1:0"], "--runtime is required"),
        (&["--runtime", "smol"], "--listen is required"),
        (&["--runtime"], "--runtime needs a value"),
        (&["--runtime", "smol", "--listen"], "--listen needs a value"),
        (
            &["--runtime", "fibers", "--listen", "127.0.0.1:0"],
            "\"fibers\"",
        ),
        (
            &["--runtime", "Tokio", "--listen", "127.0.0.1:0"],
            "\"Tokio\"",
        ),
        (
            &["--runtime", "smol", "--listen", "127.0.0.1:0", "--port"],
            "\"--port\"",
        ),
        (&["smol"], "\"smol\""),
    ];
    for (args, message) in cases {
        let what = format!("conformance-server {}", args.join(" "));
        let (status, stdout, stderr) = Captured::start(args, &[]).finish(&what);
        assert_eq!(
            status.code(),
            Some(2),
            "{what}: {status}; stderr:\n{stderr}"
        );
        assert!(stdout.is_empty(), "{what}: started anyway: {stdout:?}");
        assert!(stderr.contains(message), "{what}: stderr {stderr:?}");
        assert!(
            stderr.contains("usage: conformance-server --runtime"),
            "{what}: no usage on stderr: {stderr:?}"
        );
    }
    for flag in ["--help", "-h"] {
        let (status, stdout, _) = Captured::start(&[flag], &[]).finish(flag);
        assert!(status.success(), "{flag}: {status}");
        assert!(
            stdout.starts_with(
                "usage: conformance-server --runtime tokio|smol|async-std|threads --listen"
            ),
            "{flag}: stdout {stdout:?}"
        );
    }
}

/// An address it cannot listen on (taken, or not an address) exits with
/// status 1 and says why, on every runtime.
#[test]
fn an_address_it_cannot_listen_on_exits_with_status_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    for runtime in RuntimeKind::ALL {
        for listen in [taken.as_str(), "not an address"] {
            let what = format!("--runtime {runtime} --listen {listen:?}");
            let (status, stdout, stderr) =
                Captured::start(&["--runtime", runtime.name(), "--listen", listen], &[])
                    .finish(&what);
            assert_eq!(
                status.code(),
                Some(1),
                "{what}: {status}; stderr:\n{stderr}"
            );
            assert!(stdout.is_empty(), "{what}: started anyway: {stdout:?}");
            assert!(
                stderr.contains(&format!("cannot listen on {listen}")),
                "{what}: stderr {stderr:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Signals and logging.

/// SIGINT and SIGTERM end the server with status 0 (and an `info` log
/// line): right after the `listening on` line, and with a WebSocket, an
/// Engine.IO session and a Socket.IO socket open.
fn exits_cleanly_on_signals(runtime: RuntimeKind) {
    for signal in ["INT", "TERM"] {
        let what = format!("{runtime}, SIG{signal} at once");
        let (server, _) = Captured::serve(runtime, &[]);
        server.signal(signal);
        let (status, _, stderr) = server.finish(&what);
        assert_eq!(
            status.code(),
            Some(0),
            "{what}: {status}; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains("shutting down"),
            "{what}: stderr {stderr:?}"
        );

        let what = format!("{runtime}, SIG{signal} with connections open");
        let (server, addr) = Captured::serve(runtime, &[]);
        let mut ws = ws_open(addr, "/");
        ws.write(&frame(1, true, 0, b"open", true));
        assert_eq!(ws_recv(&mut ws, T), WsMsg::Text("open".into()), "{what}");
        let mut polling = eio_cases::Polling::open(addr);
        polling.post_ok("4open");
        let (sio, _) = Session::connected(addr, Transport::Websocket);
        sio.send(r#"421["echo","open"]"#);
        sio.expect(r#"431["open"]"#);
        server.signal(signal);
        let (status, _, stderr) = server.finish(&what);
        assert_eq!(
            status.code(),
            Some(0),
            "{what}: {status}; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains("shutting down"),
            "{what}: stderr {stderr:?}"
        );
        assert!(
            ws.closed_within(T),
            "{what}: the websocket outlived the server"
        );
    }
}

/// Logs go through `tracing` to stderr: `info` by default (the listening
/// line, as plain text when stderr is not a terminal), what `RUST_LOG`
/// selects otherwise, the libraries' events included; a `RUST_LOG` that
/// does not parse is reported and `info` used.
fn logs_through_tracing(runtime: RuntimeKind) {
    let (server, addr) = Captured::serve(runtime, &[]);
    server.signal("TERM");
    let (_, _, stderr) = server.finish("default log");
    let listening = stderr
        .lines()
        .find(|line| line.contains("conformance-server listening"))
        .unwrap_or_else(|| panic!("{runtime}: no listening line in {stderr:?}"));
    assert!(listening.contains("INFO"), "{listening:?}");
    assert!(listening.contains(&addr.to_string()), "{listening:?}");
    assert!(
        !stderr.contains('\x1b'),
        "{runtime}: colour codes in a log that goes to a pipe: {stderr:?}"
    );

    let (server, _) = Captured::serve(runtime, &[("RUST_LOG", "warn")]);
    server.signal("TERM");
    let (status, _, stderr) = server.finish("RUST_LOG=warn");
    assert!(status.success(), "{runtime}: {status}");
    assert!(
        stderr.is_empty(),
        "{runtime}: RUST_LOG=warn, yet stderr has {stderr:?}"
    );

    // A RUST_LOG that does not parse: said so, and info as by default.
    let (server, _) = Captured::serve(runtime, &[("RUST_LOG", "conformance=[")]);
    server.signal("TERM");
    let (_, _, stderr) = server.finish("RUST_LOG that does not parse");
    assert!(
        stderr.contains("ignoring RUST_LOG") && stderr.contains("conformance-server listening"),
        "{runtime}: RUST_LOG that does not parse: {stderr:?}"
    );

    // An invalid Socket.IO packet: the core logs it at debug level.
    let (server, addr) = Captured::serve(runtime, &[("RUST_LOG", "switchboard_core=debug")]);
    let (s, _) = Session::connected(addr, Transport::Websocket);
    s.send_lossy(&[Frame::text("49")]);
    s.expect_closed(T, "an unknown packet type");
    server.signal("TERM");
    let (_, _, stderr) = server.finish("RUST_LOG=switchboard_core=debug");
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("DEBUG") && line.contains("switchboard_core")),
        "{runtime}: no debug event of switchboard_core in {stderr:?}"
    );
    assert!(
        !stderr.contains("conformance-server listening"),
        "{runtime}: the filter let info through: {stderr:?}"
    );
}

// ---------------------------------------------------------------------------
// The WebSocket echo on every other path.

fn next_frame(conn: &mut raw::RawConn, what: &str) -> raw::RawFrame {
    match conn.read_frame(T) {
        ReadResult::Frame(f) => f,
        other => panic!("{what}: {other:?}"),
    }
}

/// Sends `payload` as one message of `opcode` in fragments of `size`
/// bytes.
fn send_fragmented(conn: &mut raw::RawConn, opcode: u8, payload: &[u8], size: usize) -> usize {
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let mut bytes = Vec::with_capacity(payload.len() + chunks.len() * 8);
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { opcode } else { 0 };
        bytes.extend(frame(op, i + 1 == chunks.len(), 0, chunk, true));
    }
    conn.write(&bytes);
    chunks.len()
}

/// On every path but the Engine.IO and Socket.IO ones, text and binary come
/// back as sent, a ping is answered with its payload, and a close is echoed
/// before the connection ends. (`/engine.io` and `/socket.io`, without the
/// trailing slash, are left out: the routes hand them to the endpoints, as
/// python-engineio does, where Node's `engine.io` would not.)
fn websocket_echo_on_any_other_path(runtime: RuntimeKind) {
    let server = ServerProcess::spawn(EXE, runtime);
    for path in [
        "/",
        "/echo",
        "/some/deep/path?query=1",
        "/engine.iox/",
        "/socket.iox",
        "/websocket/socket.io/",
    ] {
        let what = format!("{runtime} {path}");
        let mut conn = ws_open(server.addr, path);
        conn.write(&frame(1, true, 0, "κόσμε €".as_bytes(), true));
        let f = next_frame(&mut conn, &what);
        assert_eq!(
            (f.opcode, f.fin, f.masked, f.payload.as_slice()),
            (1, true, false, "κόσμε €".as_bytes()),
            "{what}: text"
        );
        conn.write(&frame(2, true, 0, &[0, 1, 2, 255], true));
        let f = next_frame(&mut conn, &what);
        assert_eq!(
            (f.opcode, f.payload.as_slice()),
            (2, &[0u8, 1, 2, 255][..]),
            "{what}: binary"
        );
        conn.write(&frame(9, true, 0, b"are you there", true));
        let f = next_frame(&mut conn, &what);
        assert_eq!(
            (f.opcode, f.payload.as_slice()),
            (10, &b"are you there"[..]),
            "{what}: pong"
        );
        conn.write(&frame(8, true, 0, &close_payload(1000, b"bye"), true));
        let f = conn.expect_close(T);
        assert_eq!(f.close_code(), Some(1000), "{what}: close {f:?}");
        conn.expect_eof(T);
    }
}

/// The echo accepts permessage-deflate when offered and answers
/// compressed.
fn websocket_echo_accepts_deflate(runtime: RuntimeKind) {
    let server = ServerProcess::spawn(EXE, runtime);
    let (conn, head) = eio_cases::ws_handshake(
        server.addr,
        "/",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    let mut conn = conn.unwrap_or_else(|| panic!("{runtime}: refused: {head}"));
    let ext = raw::header(&head, "sec-websocket-extensions")
        .unwrap_or_else(|| panic!("{runtime}: deflate not accepted: {head}"));
    assert!(ext.starts_with("permessage-deflate"), "{runtime}: {ext}");
    let mut codec = client_deflate();
    let text = "squeeze me, squeeze me, squeeze me! ".repeat(200);
    let mut compressed = BytesMut::new();
    codec.compress(text.as_bytes(), &mut compressed);
    conn.write(&frame(1, true, 4, &compressed, true));
    let f = next_frame(&mut conn, "compressed echo");
    assert!(
        f.rsv1 && f.opcode == 1 && f.fin,
        "{runtime}: the echo should be one compressed text frame: {f:?}"
    );
    let mut inflated = BytesMut::new();
    codec
        .decompress(&f.payload, true, &mut inflated, 1 << 20)
        .expect("inflate");
    assert_eq!(&inflated[..], text.as_bytes(), "{runtime}");
}

/// The limits raised for RFC 6455 suites: 4 MiB in 64-byte fragments
/// (65,536 fragments, as the suites send) and a 16 MiB message in 65,536
/// fragments both come back whole.
fn websocket_echo_takes_large_and_fragmented_messages(runtime: RuntimeKind) {
    let server = ServerProcess::spawn(EXE, runtime);
    let mut conn = ws_open(server.addr, "/");
    conn.stream.set_write_timeout(Some(T * 6)).expect("timeout");

    let text: Vec<u8> = (0..4usize << 20).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(send_fragmented(&mut conn, 1, &text, 64), 65_536);
    match ws_recv(&mut conn, T * 6) {
        WsMsg::Text(echo) => assert!(
            echo.as_bytes() == text.as_slice(),
            "{runtime}: the 4 MiB text came back changed"
        ),
        other => panic!("{runtime}: 4 MiB in 64-byte fragments: {other:?}"),
    }

    let binary: Vec<u8> = (0..16usize << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(send_fragmented(&mut conn, 2, &binary, 256), 65_536);
    match ws_recv(&mut conn, T * 6) {
        WsMsg::Binary(echo) => assert!(
            echo == binary,
            "{runtime}: the 16 MiB message came back changed ({} bytes)",
            echo.len()
        ),
        other => panic!("{runtime}: 16 MiB in 65,536 fragments: {other:?}"),
    }

    // One frame of 16 MiB.
    conn.write(&frame(2, true, 0, &binary, true));
    match ws_recv(&mut conn, T * 6) {
        WsMsg::Binary(echo) => assert!(echo == binary, "{runtime}: 16 MiB frame changed"),
        other => panic!("{runtime}: one 16 MiB frame: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Socket.IO.

/// `maxPayload` (1,000,000) on `/socket.io/`: a websocket message of
/// exactly that size is handled and a larger one closes the session; a
/// POST of exactly that size is handled and a larger one gets 413.
fn socketio_enforces_max_payload(runtime: RuntimeKind) {
    let server = ServerProcess::spawn(EXE, runtime);
    let addr = server.addr;
    // `42["message","xxx..."]`: 16 bytes around the string.
    let packet = |len: usize| format!(r#"42["message","{}"]"#, "x".repeat(len - 16));
    assert_eq!(packet(MAX_PAYLOAD).len(), MAX_PAYLOAD);
    for t in [Transport::Websocket, Transport::Polling] {
        let what = format!("{runtime} {t:?}");
        let (s, _) = Session::connected(addr, t);
        s.send(&packet(MAX_PAYLOAD));
        let back = s.recv_text(&what);
        assert_eq!(
            back,
            format!(r#"42["message-back","{}"]"#, "x".repeat(MAX_PAYLOAD - 16)),
            "{what}: message-back of a maxPayload message"
        );
        match t {
            Transport::Websocket => {
                s.send_lossy(&[Frame::text(packet(MAX_PAYLOAD + 1))]);
                s.expect_closed(T, &format!("{what}: a message over maxPayload"));
            }
            Transport::Polling => {
                let target = format!("{}?EIO=4&transport=polling&sid={}", sio_cases::PATH, s.sid);
                let r = http_request(
                    addr,
                    "POST",
                    &target,
                    &[TEXT_BODY],
                    packet(MAX_PAYLOAD + 1).as_bytes(),
                );
                assert_eq!(r.status, 413, "{what}: POST over maxPayload: {}", r.head);
            }
        }
    }
}

/// Asks `room-size` of each of `rooms` through `s` until every one is 0
/// (at most [`T`]: the change comes from another connection).
fn wait_until_empty(s: &Session, rooms: &[&str], what: &str) {
    let deadline = Instant::now() + T;
    let mut id = 100u64;
    for room in rooms {
        loop {
            id += 1;
            s.send(&format!(r#"42{id}["room-size","{room}"]"#));
            let p = s.recv_packet("room-size");
            assert_eq!((p.kind, p.id), (3, Some(id)), "{what}: {p:?}");
            let size = match p.data {
                Some(Json::Array(items)) => match items.as_slice() {
                    [Json::Number(n)] => *n,
                    other => panic!("{what}: room-size acked {other:?}"),
                },
                other => panic!("{what}: room-size acked {other:?}"),
            };
            if size == 0.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {room:?} still has {size} members"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How a socket's connection ends in [`rooms_are_left_when_the_connection_ends`].
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The client sends the Engine.IO `close` packet.
    ClosePacket,
    /// The client asks `drop-me`.
    DropMe,
    /// The TCP connection goes away (websocket).
    LostConnection,
}

/// A socket that disconnects leaves all of its rooms, also when its
/// connection ends without a Socket.IO DISCONNECT.
fn rooms_are_left_when_the_connection_ends(runtime: RuntimeKind) {
    let server = ServerProcess::spawn(EXE, runtime);
    let addr = server.addr;
    let (observer, _) = Session::connected(addr, Transport::Websocket);
    for (t, ending) in [
        (Transport::Polling, Ending::ClosePacket),
        (Transport::Websocket, Ending::ClosePacket),
        (Transport::Polling, Ending::DropMe),
        (Transport::Websocket, Ending::DropMe),
        (Transport::Websocket, Ending::LostConnection),
    ] {
        let what = format!("{runtime} {t:?} {ending:?}");
        let rooms = ["left-1", "left-2"];
        let (s, _) = Session::connected(addr, t);
        for (i, room) in rooms.iter().enumerate() {
            s.send(&format!(r#"42{i}["join","{room}"]"#));
            s.expect(&format!(r#"43{i}["{room}"]"#));
        }
        for room in rooms {
            observer.send(&format!(r#"429["room-size","{room}"]"#));
            observer.expect("439[1]");
        }
        match ending {
            Ending::ClosePacket => {
                s.send_lossy(&[Frame::text("1")]);
                s.expect_closed(T, &what);
            }
            Ending::DropMe => {
                s.send(r#"42["drop-me"]"#);
                s.expect_closed(T, &what);
            }
            Ending::LostConnection => drop(s),
        }
        wait_until_empty(&observer, &rooms, &what);
    }
}

macro_rules! runtime_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn exits_cleanly_on_signals() {
                super::exits_cleanly_on_signals($kind)
            }

            #[test]
            fn logs_through_tracing() {
                super::logs_through_tracing($kind)
            }

            #[test]
            fn websocket_echo_on_any_other_path() {
                super::websocket_echo_on_any_other_path($kind)
            }

            #[test]
            fn websocket_echo_accepts_deflate() {
                super::websocket_echo_accepts_deflate($kind)
            }

            #[test]
            fn websocket_echo_takes_large_and_fragmented_messages() {
                super::websocket_echo_takes_large_and_fragmented_messages($kind)
            }

            #[test]
            fn socketio_enforces_max_payload() {
                super::socketio_enforces_max_payload($kind)
            }

            #[test]
            fn rooms_are_left_when_the_connection_ends() {
                super::rooms_are_left_when_the_connection_ends($kind)
            }
        }
    };
}

runtime_suite!(tokio, RuntimeKind::Tokio);
runtime_suite!(smol, RuntimeKind::Smol);
runtime_suite!(async_std, RuntimeKind::AsyncStd);
runtime_suite!(threads, RuntimeKind::Threads);
