//! The WebSocket conformance cases, written once and run on every runtime by
//! `tests/tests/ws.rs`. Server-role cases speak raw bytes to a Switchboard
//! echo server; client-role cases drive a Switchboard client against a raw
//! server. Each asserts the exact bytes, close codes and statuses RFC 6455
//! and RFC 7692 require.

use std::time::Duration;

use bytes::BytesMut;
use switchboard_core::ws::deflate::{Deflate, DeflateParams};
use switchboard_core::ws::{CloseCode, CloseFrame, Config, KeepAlive, Message, OriginPolicy};

use crate::RuntimeKind;
use crate::client::{Received, TestClient};
use crate::raw::{self, RawConn, RawServer, ReadResult, close_payload, frame};
use switchboard_core::http::ServerLimits;

use crate::runtime::{
    conformance_config, spawn_ws_echo, spawn_ws_routes, spawn_ws_routes_with_limits,
};

const T: Duration = Duration::from_secs(5);

fn echo_server(rt: RuntimeKind) -> std::net::SocketAddr {
    spawn_ws_echo(rt, conformance_config())
}

fn expect_data(conn: &mut RawConn, opcode: u8, payload: &[u8]) {
    match conn.read_frame(T) {
        ReadResult::Frame(f) => {
            assert_eq!(
                (f.opcode, f.fin, f.masked),
                (opcode, true, false),
                "frame {f:?}"
            );
            assert_eq!(f.payload.len(), payload.len());
            assert!(f.payload == payload, "payload differs");
        }
        other => panic!("expected an echo, got {other:?}"),
    }
}

/// Sends `bytes` and asserts the server fails the connection with `code`
/// and then closes the TCP connection.
fn expect_failure(rt: RuntimeKind, config: Config, bytes: &[u8], code: u16) {
    let addr = spawn_ws_echo(rt, config);
    let (mut conn, _) = raw::open(addr, "");
    conn.write(bytes);
    let close = conn.expect_close(T);
    assert_eq!(close.close_code(), Some(code), "close frame {close:?}");
    conn.expect_eof(T);
}

/// Text and binary of every length form (7-bit, 16-bit, 64-bit) come back
/// unchanged and unmasked.
pub fn server_echoes_all_length_forms(rt: RuntimeKind) {
    let (mut conn, _) = raw::open(echo_server(rt), "");
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 300_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        conn.write(&frame(2, true, 0, &payload, true));
        expect_data(&mut conn, 2, &payload);
    }
    let text = "κόσμε €𝄞".repeat(50);
    conn.write(&frame(1, true, 0, text.as_bytes(), true));
    expect_data(&mut conn, 1, text.as_bytes());
}

/// Malformed upgrade requests get the right HTTP status and the connection
/// is closed.
pub fn server_answers_bad_handshakes(rt: RuntimeKind) {
    let addr = echo_server(rt);
    let base =
        "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
    let key = format!("Sec-WebSocket-Key: {}\r\n", raw::CLIENT_KEY);
    let cases: Vec<(String, &str)> = vec![
        (format!("POST / HTTP/1.1\r\n{base}{key}\r\n"), "405"),
        (format!("GET / HTTP/1.0\r\n{base}{key}\r\n"), "400"),
        (format!("GET / HTTP/1.1\r\n{base}\r\n"), "400"),
        (
            format!("GET / HTTP/1.1\r\n{base}Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n"),
            "400",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}\r\n"
            ),
            "400",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n{key}\r\n"
            ),
            "400",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n{key}\r\n"
            ),
            "426",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nX-Big: {}\r\n{base}{key}\r\n",
                "a".repeat(10_000)
            ),
            "431",
        ),
        ("\x16\x03\x01 not http\r\n\r\n".to_string(), "400"),
    ];
    for (request, status) in cases {
        let mut conn = raw::connect(addr);
        conn.write(request.as_bytes());
        let head = conn
            .read_head(T)
            .unwrap_or_else(|| panic!("no answer to {request:?}"));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "expected {status} for {:?}, got {head}",
            &request[..request.len().min(60)]
        );
        if status == "426" {
            assert_eq!(
                raw::header(&head, "sec-websocket-version").as_deref(),
                Some("13")
            );
        }
        conn.read_to_end(T);
    }
}

/// An Origin policy refuses with 403 and admits listed origins.
pub fn server_origin_policy(rt: RuntimeKind) {
    let config = Config {
        origin: OriginPolicy::AllowList(vec!["https://good.example".into()]),
        ..conformance_config()
    };
    let addr = spawn_ws_echo(rt, config);
    let mut conn = raw::connect(addr);
    conn.write(raw::upgrade_request("/", "Origin: https://evil.example\r\n").as_bytes());
    let head = conn.read_head(T).expect("answer");
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (mut conn, _) = raw::open(addr, "Origin: https://good.example\r\n");
    conn.write(&frame(1, true, 0, b"ok", true));
    expect_data(&mut conn, 1, b"ok");
}

/// The first offered sub-protocol the server supports is chosen; none is
/// announced when none matches.
pub fn server_negotiates_subprotocol(rt: RuntimeKind) {
    let config = Config {
        protocols: vec!["chat".into(), "superchat".into()],
        ..conformance_config()
    };
    let addr = spawn_ws_echo(rt, config);
    let (_, head) = raw::open(addr, "Sec-WebSocket-Protocol: other, superchat, chat\r\n");
    assert_eq!(
        raw::header(&head, "sec-websocket-protocol").as_deref(),
        Some("superchat")
    );
    let (_, head) = raw::open(addr, "Sec-WebSocket-Protocol: other\r\n");
    assert_eq!(raw::header(&head, "sec-websocket-protocol"), None);
}

/// A client's permessage-deflate, with context takeover and full windows
/// both ways.
pub fn client_deflate() -> Deflate {
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    Deflate::new(&params, false, &Default::default())
}

/// permessage-deflate is accepted when offered; compressed messages (also
/// fragmented) are inflated, and the echo comes back compressed.
pub fn server_negotiates_deflate(rt: RuntimeKind) {
    let (mut conn, head) = raw::open(
        echo_server(rt),
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    let ext = raw::header(&head, "sec-websocket-extensions").expect("extension answered");
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    let mut codec = client_deflate();
    let text = "compress me, compress me, compress me! ".repeat(100);
    let mut compressed = BytesMut::new();
    codec.compress(text.as_bytes(), &mut compressed);
    assert!(compressed.len() < text.len() / 4);
    conn.write(&frame(1, true, 4, &compressed, true));
    let f = match conn.read_frame(T) {
        ReadResult::Frame(f) => f,
        other => panic!("{other:?}"),
    };
    assert!(
        f.rsv1 && f.opcode == 1,
        "echo should be compressed text: {f:?}"
    );
    let mut inflated = BytesMut::new();
    codec
        .decompress(&f.payload, true, &mut inflated, 1 << 20)
        .expect("inflate");
    assert_eq!(&inflated[..], text.as_bytes());
    // The same message, compressed by a fresh context, split over three frames.
    let mut again = BytesMut::new();
    client_deflate().compress(text.as_bytes(), &mut again);
    let (a, rest) = again.split_at(again.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let (mut conn, _) = raw::open(
        echo_server(rt),
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    conn.write(&frame(1, false, 4, a, true));
    conn.write(&frame(0, false, 0, b, true));
    conn.write(&frame(0, true, 0, c, true));
    let f = match conn.read_frame(T) {
        ReadResult::Frame(f) => f,
        other => panic!("{other:?}"),
    };
    let mut inflated = BytesMut::new();
    client_deflate()
        .decompress(&f.payload, true, &mut inflated, 1 << 20)
        .expect("inflate");
    assert_eq!(&inflated[..], text.as_bytes());
    // Without an offer, RSV1 is a protocol error.
    expect_failure(
        rt,
        conformance_config(),
        &frame(1, true, 4, &compressed, true),
        1002,
    );
}

/// A server fails an unmasked client frame with 1002.
pub fn server_fails_unmasked_frame(rt: RuntimeKind) {
    expect_failure(
        rt,
        conformance_config(),
        &frame(1, true, 0, b"hi", false),
        1002,
    );
}

/// Reserved bits without an extension and reserved opcodes fail with 1002.
pub fn server_fails_reserved_bits_and_opcodes(rt: RuntimeKind) {
    for rsv in [1u8, 2, 4] {
        expect_failure(
            rt,
            conformance_config(),
            &frame(1, true, rsv, b"x", true),
            1002,
        );
    }
    for opcode in [3u8, 7, 0xB, 0xF] {
        expect_failure(
            rt,
            conformance_config(),
            &frame(opcode, true, 0, b"", true),
            1002,
        );
    }
}

/// Control frames over 125 bytes or fragmented fail with 1002.
pub fn server_fails_bad_control_frames(rt: RuntimeKind) {
    expect_failure(
        rt,
        conformance_config(),
        &frame(9, true, 0, &[0; 126], true),
        1002,
    );
    expect_failure(
        rt,
        conformance_config(),
        &frame(9, false, 0, b"x", true),
        1002,
    );
    expect_failure(
        rt,
        conformance_config(),
        &frame(8, false, 0, &close_payload(1000, b""), true),
        1002,
    );
}

/// Fragments are reassembled, with pings between them answered at once.
pub fn server_reassembles_fragments_around_pings(rt: RuntimeKind) {
    let (mut conn, _) = raw::open(echo_server(rt), "");
    conn.write(&frame(1, false, 0, "frag".as_bytes(), true));
    conn.write(&frame(9, true, 0, b"ping-1", true));
    match conn.read_frame(T) {
        ReadResult::Frame(f) => assert_eq!((f.opcode, f.payload.as_slice()), (10, &b"ping-1"[..])),
        other => panic!("expected pong, got {other:?}"),
    }
    // A code point split across fragments.
    let euro = "€".as_bytes();
    conn.write(&frame(0, false, 0, &[b'-', euro[0]], true));
    conn.write(&frame(0, false, 0, &euro[1..], true));
    conn.write(&frame(0, true, 0, b"ment", true));
    expect_data(&mut conn, 1, "frag-€ment".as_bytes());
    // Empty fragments are fine too.
    conn.write(&frame(2, false, 0, b"", true));
    conn.write(&frame(0, true, 0, b"", true));
    expect_data(&mut conn, 2, b"");
}

/// A continuation with no message, and a new message inside one, fail 1002.
pub fn server_fails_bad_fragment_sequences(rt: RuntimeKind) {
    expect_failure(
        rt,
        conformance_config(),
        &frame(0, true, 0, b"x", true),
        1002,
    );
    let mut bytes = frame(1, false, 0, b"a", true);
    bytes.extend(frame(1, true, 0, b"b", true));
    expect_failure(rt, conformance_config(), &bytes, 1002);
}

/// Invalid UTF-8 fails with 1007, as soon as it is seen: inside a single
/// frame, and in a fragment before the message ends.
pub fn server_fails_invalid_utf8_fast(rt: RuntimeKind) {
    expect_failure(
        rt,
        conformance_config(),
        &frame(1, true, 0, b"\xce\xba\xff", true),
        1007,
    );
    // Fail fast: the bad fragment has no FIN and no further fragment is
    // sent; the close must still come.
    let mut bytes = frame(1, false, 0, "κόσμε".as_bytes(), true);
    bytes.extend(frame(0, false, 0, b"\xed\xa0\x80", true));
    expect_failure(rt, conformance_config(), &bytes, 1007);
    // Fail fast inside one frame whose tail never arrives.
    let whole = frame(
        1,
        true,
        0,
        b"\xf4\x90\x80\x80 and more text that never arrives",
        true,
    );
    expect_failure(rt, conformance_config(), &whole[..whole.len() - 20], 1007);
    // A message that ends inside a code point.
    expect_failure(
        rt,
        conformance_config(),
        &frame(1, true, 0, b"\xe2\x82", true),
        1007,
    );
}

/// The close handshake: the server echoes the code and closes TCP first;
/// bad close frames fail with 1002 (or 1007 for a bad reason).
pub fn server_close_handshake(rt: RuntimeKind) {
    let addr = echo_server(rt);
    for (payload, answer) in [
        (close_payload(1000, b"bye"), Some(1000)),
        (close_payload(4999, b""), Some(4999)),
        (close_payload(3000, b""), Some(3000)),
    ] {
        let (mut conn, _) = raw::open(addr, "");
        conn.write(&frame(8, true, 0, &payload, true));
        assert_eq!(conn.expect_close(T).close_code(), answer);
        conn.expect_eof(T);
    }
    let (mut conn, _) = raw::open(addr, "");
    conn.write(&frame(8, true, 0, b"", true));
    let close = conn.expect_close(T);
    assert!(close.payload.is_empty(), "an empty close is echoed empty");
    conn.expect_eof(T);
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        expect_failure(
            rt,
            conformance_config(),
            &frame(8, true, 0, &close_payload(code, b""), true),
            1002,
        );
    }
    expect_failure(
        rt,
        conformance_config(),
        &frame(8, true, 0, &[0x03], true),
        1002,
    );
    expect_failure(
        rt,
        conformance_config(),
        &frame(8, true, 0, &close_payload(1000, b"\xff\xfe"), true),
        1007,
    );
}

/// Frame, message, fragment-count and inflate limits fail with 1009.
pub fn server_enforces_size_limits(rt: RuntimeKind) {
    let small = Config {
        max_frame_size: 1000,
        max_message_size: 2000,
        max_fragments: 10,
        ..Config::default()
    };
    expect_failure(
        rt,
        small.clone(),
        &frame(2, true, 0, &[0; 1001], true),
        1009,
    );
    let mut bytes = Vec::new();
    for _ in 0..3 {
        bytes.extend(frame(
            if bytes.is_empty() { 2 } else { 0 },
            false,
            0,
            &[0; 900],
            true,
        ));
    }
    expect_failure(rt, small.clone(), &bytes, 1009);
    let mut bytes = frame(2, false, 0, b"x", true);
    for _ in 0..10 {
        bytes.extend(frame(0, false, 0, b"x", true));
    }
    expect_failure(rt, small.clone(), &bytes, 1009);
    // A 10 MB message compressed to a few KB must not inflate past the limit.
    let addr = spawn_ws_echo(
        rt,
        Config {
            max_message_size: 1 << 20,
            ..Config::default()
        },
    );
    let (mut conn, _) = raw::open(addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    let mut bomb = BytesMut::new();
    client_deflate().compress(&vec![0u8; 10 << 20], &mut bomb);
    assert!(bomb.len() < 64 << 10);
    conn.write(&frame(2, true, 4, &bomb, true));
    assert_eq!(conn.expect_close(T).close_code(), Some(1009));
    conn.expect_eof(T);
    // Other connections are untouched.
    let (mut other, _) = raw::open(addr, "");
    other.write(&frame(1, true, 0, b"still here", true));
    expect_data(&mut other, 1, b"still here");
}

/// Unsolicited pongs are ignored; bytes pipelined after the handshake are
/// processed.
pub fn server_ignores_unsolicited_pong_and_reads_pipelined_frames(rt: RuntimeKind) {
    let addr = echo_server(rt);
    let mut conn = raw::connect(addr);
    let mut bytes = raw::upgrade_request("/", "").into_bytes();
    bytes.extend(frame(10, true, 0, b"unsolicited", true));
    bytes.extend(frame(1, true, 0, b"pipelined", true));
    conn.write(&bytes);
    let head = conn.read_head(T).expect("101");
    assert!(head.starts_with("HTTP/1.1 101 "));
    expect_data(&mut conn, 1, b"pipelined");
}

/// Keep-alive: the server pings; a peer that answers stays; one that stops
/// answering is disconnected.
pub fn server_keepalive(rt: RuntimeKind) {
    let config = Config {
        keepalive: Some(KeepAlive {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(150),
        }),
        ..conformance_config()
    };
    let addr = spawn_ws_echo(rt, config);
    let (mut live, _) = raw::open(addr, "");
    let (mut silent, _) = raw::open(addr, "");
    // The live peer answers every ping for a while.
    let until = std::time::Instant::now() + Duration::from_millis(800);
    let mut pings = 0;
    while std::time::Instant::now() < until {
        match live.read_frame(Duration::from_millis(100)) {
            ReadResult::Frame(f) if f.opcode == 9 => {
                pings += 1;
                live.write(&frame(10, true, 0, &f.payload, true));
            }
            ReadResult::Timeout => {}
            other => panic!("live peer got {other:?}"),
        }
    }
    assert!(pings >= 3, "expected regular pings, got {pings}");
    live.write(&frame(1, true, 0, b"alive", true));
    loop {
        match live.read_frame(T) {
            ReadResult::Frame(f) if f.opcode == 9 => {
                live.write(&frame(10, true, 0, &f.payload, true))
            }
            ReadResult::Frame(f) => {
                assert_eq!(f.payload, b"alive");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // The silent peer sees a ping, then the connection closes.
    let mut saw_ping = false;
    loop {
        match silent.read_frame(T) {
            ReadResult::Frame(f) if f.opcode == 9 => saw_ping = true,
            ReadResult::Frame(f) => panic!("unexpected {f:?}"),
            ReadResult::Eof => break,
            ReadResult::Timeout => panic!("silent peer was never disconnected"),
        }
    }
    assert!(saw_ping);
}

/// Writes `bytes` over and over until the server stops taking them (a
/// write waits past 500 ms): it stopped reading, because its own writes to
/// this peer, which reads nothing, are stuck. Returns early if the server
/// closes the connection meanwhile.
fn flood_until_blocked(conn: &mut RawConn, bytes: &[u8]) {
    use std::io::{ErrorKind, Write};
    conn.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < until {
        match conn.stream.write(bytes) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
            Err(_) => return,
        }
    }
    panic!("the server never stopped reading");
}

/// Whether the server closes the connection within `timeout`, seen by a
/// peer that still reads nothing: a write to it fails (reset).
fn closed_while_not_reading(conn: &mut RawConn, timeout: Duration) -> bool {
    use std::io::{ErrorKind, Write};
    conn.stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .expect("write timeout");
    let until = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < until {
        match conn.stream.write(&[0]) {
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Keep-alive 2 s / 1 s and a 500 ms close timeout, for the cases of a peer
/// that stops reading.
fn stalled_peer_config() -> Config {
    Config {
        keepalive: Some(KeepAlive {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
        }),
        close_timeout: Duration::from_millis(500),
        ..conformance_config()
    }
}

/// A peer sends messages but never reads: the echo handler ends up waiting
/// in `send` for room. The keep-alive still fires meanwhile (its ping goes
/// unanswered), and the connection is closed instead of held for good.
pub fn server_keepalive_fires_while_a_send_waits(rt: RuntimeKind) {
    let addr = spawn_ws_echo(rt, stalled_peer_config());
    let (mut conn, _) = raw::open(addr, "");
    flood_until_blocked(&mut conn, &frame(2, true, 0, &[7; 64 << 10], true));
    assert!(
        closed_while_not_reading(&mut conn, Duration::from_secs(10)),
        "the connection of a peer that reads nothing stayed open past the keep-alive timeout"
    );
}

/// A peer sends pings but never reads: the automatic pongs fill the
/// transmit buffer and the server stops reading. When the keep-alive then
/// fails the connection, its close frame cannot be written either; within
/// the close timeout the server gives up on it and closes the connection.
pub fn server_gives_up_unwritable_output_after_a_failure(rt: RuntimeKind) {
    let addr = spawn_ws_echo(rt, stalled_peer_config());
    let (mut conn, _) = raw::open(addr, "");
    let pings: Vec<u8> = (0..500)
        .flat_map(|_| frame(9, true, 0, &[1; 125], true))
        .collect();
    flood_until_blocked(&mut conn, &pings);
    assert!(
        closed_while_not_reading(&mut conn, Duration::from_secs(10)),
        "a failed connection whose output the peer does not read stayed open"
    );
}

/// A handshake that does not finish in time is dropped.
pub fn server_handshake_deadline(rt: RuntimeKind) {
    let config = Config {
        handshake_timeout: Duration::from_millis(300),
        ..conformance_config()
    };
    let addr = spawn_ws_echo(rt, config);
    let mut conn = raw::connect(addr);
    conn.write(b"GET / HTTP/1.1\r\nHost: x\r\n");
    let start = std::time::Instant::now();
    let rest = conn.read_to_end(T);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "not dropped in time"
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{rest:?}"
    );
}

/// `Config::max_connections` at 2: a third client gets no handshake answer
/// while two connections are open (it waits in the listen backlog), the
/// open ones keep working, and the third is served as soon as one closes.
pub fn server_connection_limit(rt: RuntimeKind) {
    let config = Config {
        max_connections: 2,
        ..conformance_config()
    };
    let addr = spawn_ws_echo(rt, config);
    let (first, _) = raw::open(addr, "");
    let (mut second, _) = raw::open(addr, "");
    let mut third = raw::connect(addr);
    third.write(raw::upgrade_request("/", "").as_bytes());
    assert_eq!(
        third.read_head(Duration::from_millis(500)),
        None,
        "a third connection was served"
    );
    second.write(&frame(1, true, 0, b"still served", true));
    expect_data(&mut second, 1, b"still served");
    drop(first);
    let head = third.read_head(T).expect("served once a connection closed");
    assert!(head.starts_with("HTTP/1.1 101 "), "not a 101: {head}");
    third.write(&frame(1, true, 0, b"third", true));
    expect_data(&mut third, 1, b"third");
}

/// Routes send an upgrade to the handler of its exact path, whatever the
/// query, and every other path to the handler for the rest.
pub fn server_routes_by_path(rt: RuntimeKind) {
    let addr = spawn_ws_routes(rt);
    for (path, expected) in [
        ("/shout", &b"HELLO"[..]),
        ("/shout?room=1", b"HELLO"),
        ("/shout/", b"hello"),
        ("/other", b"hello"),
    ] {
        let mut conn = raw::connect(addr);
        conn.write(raw::upgrade_request(path, "").as_bytes());
        let head = conn.read_head(T).expect("handshake response");
        assert!(head.starts_with("HTTP/1.1 101 "), "{path}: {head}");
        conn.write(&frame(1, true, 0, b"hello", true));
        expect_data(&mut conn, 1, expected);
    }
}

/// The application's own HTTP handler gets whole bodies up to
/// `ServerLimits::max_http_body` (2 MiB by default), with no Engine.IO
/// endpoint mounted; a longer body is answered 413 without it.
pub fn server_routes_http_bodies(rt: RuntimeKind) {
    let post = |addr, size: usize| {
        let mut conn = raw::connect(addr);
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
        );
        conn.write(head.as_bytes());
        conn.write(&vec![b'x'; size]);
        String::from_utf8_lossy(&conn.read_to_end(T)).into_owned()
    };
    let addr = spawn_ws_routes(rt);
    for size in [0, 1, 100_000] {
        let response = post(addr, size);
        assert!(response.starts_with("HTTP/1.1 200 "), "{size}: {response}");
        assert!(
            response.ends_with(&format!("\r\n\r\n{size} bytes")),
            "{size}: {response}"
        );
    }
    let limits = ServerLimits {
        max_http_body: 1000,
        ..ServerLimits::default()
    };
    let addr = spawn_ws_routes_with_limits(rt, limits);
    let fits = post(addr, 1000);
    assert!(fits.ends_with("\r\n\r\n1000 bytes"), "{fits}");
    let over = post(addr, 1001);
    assert!(over.starts_with("HTTP/1.1 413 "), "{over}");
}

/// `ServerLimits::request_timeout` (300 ms) runs from a request's first
/// byte: a keep-alive connection idle for longer than that (within its
/// keep-alive timeout) whose next request then arrives in two pieces is
/// answered, not refused with 408.
pub fn server_times_a_request_from_its_first_byte(rt: RuntimeKind) {
    let limits = ServerLimits {
        request_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_secs(10),
        ..ServerLimits::default()
    };
    let addr = spawn_ws_routes_with_limits(rt, limits);
    let mut conn = raw::connect(addr);
    conn.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(600));
    conn.write(b"GET /b HTTP/1.1\r\nHost: x\r\n");
    std::thread::sleep(Duration::from_millis(100));
    conn.write(b"Connection: close\r\n\r\n");
    let answers = String::from_utf8_lossy(&conn.read_to_end(T)).into_owned();
    assert_eq!(
        answers.matches("HTTP/1.1 200 ").count(),
        2,
        "both requests answered: {answers}"
    );
}

/// The client's request is a valid RFC 6455 upgrade with a fresh 16-byte
/// key, and the client masks every frame.
pub fn client_request_and_masking(rt: RuntimeKind) {
    let server = RawServer::bind();
    let (client, mut conn, head) = open_client(rt, &server, "");
    assert!(head.starts_with("GET /test HTTP/1.1\r\n"), "{head}");
    assert_eq!(raw::header(&head, "upgrade").as_deref(), Some("websocket"));
    assert_eq!(
        raw::header(&head, "sec-websocket-version").as_deref(),
        Some("13")
    );
    let key = raw::header(&head, "sec-websocket-key").expect("key");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .expect("base64 key");
    assert_eq!(decoded.len(), 16);
    assert!(
        raw::header(&head, "sec-websocket-extensions")
            .is_some_and(|e| e.contains("permessage-deflate"))
    );
    client.send(Message::text("masked")).expect("send");
    match conn.read_frame(T) {
        ReadResult::Frame(f) => {
            assert!(f.masked, "client frames must be masked");
            assert_eq!((f.opcode, f.payload.as_slice()), (1, &b"masked"[..]));
        }
        other => panic!("{other:?}"),
    }
    // A second client uses a different key.
    let (_c2, _conn2, head2) = open_client(rt, &server, "");
    assert_ne!(raw::header(&head2, "sec-websocket-key"), Some(key));
}

/// Bad handshake responses are refused with typed errors.
pub fn client_rejects_bad_responses(rt: RuntimeKind) {
    for response in [
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n".to_string(),
        "BANANA\r\n\r\n".to_string(),
    ] {
        let server = RawServer::bind();
        let url = server.url();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = server.accept();
            conn.write(response.as_bytes());
            std::thread::sleep(Duration::from_millis(200));
        });
        let result = TestClient::connect(rt, &url, Config::default());
        assert!(result.is_err(), "client accepted a bad response");
        handle.join().unwrap();
    }
    // A sub-protocol that was not offered.
    let server = RawServer::bind();
    let url = server.url();
    let handle = std::thread::spawn(move || {
        let _ = server.accept_upgrade("Sec-WebSocket-Protocol: surprise\r\n");
        std::thread::sleep(Duration::from_millis(200));
    });
    let err = TestClient::connect(rt, &url, Config::default())
        .err()
        .expect("refused");
    assert!(err.contains("surprise"), "{err}");
    handle.join().unwrap();
}

/// A masked frame from the server fails the client with 1002; pings are
/// answered; fragmented messages are reassembled.
pub fn client_protocol_rules(rt: RuntimeKind) {
    let server = RawServer::bind();
    let (mut client, mut conn, _) = open_client(rt, &server, "");
    conn.write(&frame(1, false, 0, b"hel", false));
    conn.write(&frame(9, true, 0, b"p", false));
    conn.write(&frame(0, true, 0, b"lo", false));
    match conn.read_frame(T) {
        ReadResult::Frame(f) => assert_eq!(
            (f.opcode, f.payload.as_slice(), f.masked),
            (10, &b"p"[..], true)
        ),
        other => panic!("expected pong, got {other:?}"),
    }
    assert_eq!(
        client.recv(T),
        Received::Message(Message::Ping(bytes::Bytes::from_static(b"p")))
    );
    assert_eq!(client.recv(T), Received::Message(Message::text("hello")));
    conn.write(&frame(1, true, 0, b"masked!", true));
    assert_eq!(conn.expect_close(T).close_code(), Some(1002));
    assert!(matches!(client.recv(T), Received::Error(_)));
    assert_eq!(client.recv(T), Received::End);
}

/// The client answers a server close with the same code and waits for the
/// server to close TCP; a client-initiated close completes too.
pub fn client_close_handshake(rt: RuntimeKind) {
    let server = RawServer::bind();
    let (mut client, mut conn, _) = open_client(rt, &server, "");
    conn.write(&frame(8, true, 0, &close_payload(1001, b"going"), false));
    let echo = conn.expect_close(T);
    assert!(echo.masked);
    assert_eq!(echo.close_code(), Some(1001));
    assert_eq!(
        client.recv(T),
        Received::Message(Message::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            "going"
        ))))
    );
    // The client has not closed TCP: the server closes first.
    assert_eq!(
        conn.read_frame(Duration::from_millis(200)),
        ReadResult::Timeout
    );
    drop(conn);
    assert_eq!(client.recv(T), Received::End);

    let (mut client, mut conn, _) = open_client(rt, &server, "");
    client
        .send(Message::Close(Some(CloseFrame::new(4000u16, "done"))))
        .expect("close");
    let close = conn.expect_close(T);
    assert_eq!(close.payload, close_payload(4000, b"done"));
    conn.write(&frame(8, true, 0, &close_payload(4000, b""), false));
    drop(conn);
    assert!(matches!(
        client.recv(T),
        Received::Message(Message::Close(Some(_)))
    ));
    assert_eq!(client.recv(T), Received::End);
}

/// Sending waits when the peer does not read (the outgoing queue is
/// bounded), and nothing is dropped once it reads again.
pub fn client_backpressure(rt: RuntimeKind) {
    let server = RawServer::bind();
    let (client, mut conn, _) = open_client(rt, &server, "");
    let payload = vec![7u8; 64 << 10];
    let mut completed = 0usize;
    let mut blocked = false;
    while completed < 1024 {
        match client.send_within(Message::binary(payload.clone()), Duration::from_millis(500)) {
            Some(Ok(())) => completed += 1,
            Some(Err(e)) => panic!("send failed: {e}"),
            None => {
                blocked = true;
                break;
            }
        }
    }
    assert!(
        blocked,
        "64 MiB went out to a peer that reads nothing: the queue is unbounded"
    );
    let mut received = 0usize;
    while received < completed + 1 {
        match conn.read_frame(T) {
            ReadResult::Frame(f) => {
                assert_eq!(f.payload.len(), payload.len());
                received += 1;
            }
            other => panic!("after {received} of {}: {other:?}", completed + 1),
        }
    }
    client
        .send(Message::text("after"))
        .expect("send after draining");
    match conn.read_frame(T) {
        ReadResult::Frame(f) => assert_eq!(f.payload, b"after"),
        other => panic!("{other:?}"),
    }
}

fn open_client(
    rt: RuntimeKind,
    server: &RawServer,
    response_extra: &str,
) -> (TestClient, RawConn, String) {
    std::thread::scope(|s| {
        let server_side = s.spawn(|| server.accept_upgrade(response_extra));
        let client =
            TestClient::connect(rt, &server.url(), Config::default()).expect("client connects");
        let (conn, head) = server_side.join().expect("server side");
        (client, conn, head)
    })
}
