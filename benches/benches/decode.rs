//! Decoding and unmasking client frames as a server receives them:
//! Switchboard's sans-IO `Connection` against tungstenite and fastwebsockets,
//! with a `memcpy` of the same bytes as the bandwidth ceiling.
//!
//! Each iteration consumes one batch of masked frames back to back
//! (16 x 16 KiB binary, or 4096 x 32 B text), arriving in reads of at most
//! 64 KiB (the size of the scratch buffer Switchboard's async driver reads a
//! socket into). Every contender copies the bytes out of the "socket" once,
//! parses each header, unmasks the payload and, for text, validates UTF-8,
//! and hands each message over as an owned value that is then dropped.
//!
//! Run: `cargo bench -p switchboard-bench --bench decode`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_bench::frames::{self, BINARY, TEXT};
use switchboard_bench::mem::{LoopStream, READ_CHUNK, now_or_never};
use switchboard_core::ws::{Config, Connection, Event, Message, Role};

struct Case {
    name: &'static str,
    opcode: u8,
    payload: Vec<u8>,
    count: usize,
}

fn cases() -> [Case; 2] {
    [
        Case {
            name: "16KiB-binary",
            opcode: BINARY,
            payload: frames::binary_payload(16 << 10, 11),
            count: 16,
        },
        Case {
            name: "32B-text",
            opcode: TEXT,
            payload: frames::text_payload(32, 12),
            count: 4096,
        },
    ]
}

/// Switchboard: `receive` each read, then drain `poll_event`.
struct Switchboard {
    conn: Connection,
}

impl Switchboard {
    fn new() -> Self {
        // The default limits (4 MiB) and no permessage-deflate negotiated.
        Self {
            conn: Connection::new(Role::Server, Arc::new(Config::default()), None),
        }
    }

    /// Feeds `batch` in reads of at most 64 KiB; returns the messages decoded
    /// and the payload bytes they carried.
    fn run(&mut self, batch: &[u8]) -> (usize, usize) {
        let (mut messages, mut bytes) = (0, 0);
        for chunk in batch.chunks(READ_CHUNK) {
            self.conn.receive(chunk);
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Message(Message::Binary(data)) => bytes += black_box(data).len(),
                    Event::Message(Message::Text(text)) => bytes += black_box(text).len(),
                    other => panic!("unexpected {other:?}"),
                }
                messages += 1;
            }
        }
        (messages, bytes)
    }
}

/// tungstenite: `WebSocket::read` over an in-memory `Read + Write` stream.
struct Tungstenite {
    ws: tungstenite::WebSocket<LoopStream>,
}

impl Tungstenite {
    fn new(batch: &Arc<[u8]>) -> Self {
        Self {
            ws: tungstenite::WebSocket::from_raw_socket(
                LoopStream::new(batch.clone()),
                tungstenite::protocol::Role::Server,
                None,
            ),
        }
    }

    fn run(&mut self, count: usize) -> (usize, usize) {
        let mut bytes = 0;
        for _ in 0..count {
            match self.ws.read().expect("tungstenite read") {
                tungstenite::Message::Binary(data) => bytes += black_box(data).len(),
                tungstenite::Message::Text(text) => bytes += black_box(text).len(),
                other => panic!("unexpected {other:?}"),
            }
        }
        (count, bytes)
    }
}

/// fastwebsockets: `WebSocket::read_frame` (server role, automatic pongs
/// off) over an in-memory tokio stream, polled without an executor since the
/// stream never waits.
struct FastWebSockets {
    ws: fastwebsockets::WebSocket<LoopStream>,
}

impl FastWebSockets {
    fn new(batch: &Arc<[u8]>) -> Self {
        let mut ws = fastwebsockets::WebSocket::after_handshake(
            LoopStream::new(batch.clone()),
            fastwebsockets::Role::Server,
        );
        ws.set_auto_pong(false);
        Self { ws }
    }

    fn run(&mut self, count: usize) -> (usize, usize) {
        let mut bytes = 0;
        for _ in 0..count {
            let frame = now_or_never(self.ws.read_frame()).expect("fastwebsockets read");
            assert!(frame.fin);
            match frame.opcode {
                fastwebsockets::OpCode::Binary | fastwebsockets::OpCode::Text => {
                    bytes += black_box(frame.payload).len()
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        (count, bytes)
    }
}

/// Before measuring: each contender yields the original payloads, and each
/// refuses a text frame that is not UTF-8 (so none skips validation).
fn check_contenders(case: &Case, batch: &Arc<[u8]>) {
    let expected = (case.count, case.count * case.payload.len());
    let mut sb = Switchboard::new();
    assert_eq!(sb.run(batch), expected);
    let mut tg = Tungstenite::new(batch);
    assert_eq!(tg.run(case.count), expected);
    let mut fw = FastWebSockets::new(batch);
    assert_eq!(fw.run(case.count), expected);

    // Payload contents, message by message.
    let mut conn = Connection::new(Role::Server, Arc::new(Config::default()), None);
    conn.receive(&batch[..batch.len() / case.count]);
    match conn.poll_event() {
        Some(Event::Message(m)) => assert_eq!(m.payload(), &case.payload[..]),
        other => panic!("{other:?}"),
    }
    let mut tg = Tungstenite::new(batch);
    assert_eq!(
        &tg.ws.read().unwrap().into_data()[..],
        &case.payload[..],
        "tungstenite payload"
    );
    let mut fw = FastWebSockets::new(batch);
    let frame = now_or_never(fw.ws.read_frame()).unwrap();
    assert_eq!(
        &frame.payload[..],
        &case.payload[..],
        "fastwebsockets payload"
    );

    if case.opcode == TEXT {
        let mut bad = case.payload.clone();
        bad[case.payload.len() / 2] = 0xFF;
        let invalid: Arc<[u8]> = frames::masked_frames(TEXT, &bad, 1, 3).into();
        let mut conn = Connection::new(Role::Server, Arc::new(Config::default()), None);
        conn.receive(&invalid);
        assert!(
            matches!(conn.poll_event(), Some(Event::Failed(_))),
            "switchboard accepted bad UTF-8"
        );
        assert!(
            Tungstenite::new(&invalid).ws.read().is_err(),
            "tungstenite accepted bad UTF-8"
        );
        assert!(
            now_or_never(FastWebSockets::new(&invalid).ws.read_frame()).is_err(),
            "fastwebsockets accepted bad UTF-8"
        );
    }
}

fn decode(c: &mut Criterion) {
    for case in cases() {
        let batch: Arc<[u8]> =
            frames::masked_frames(case.opcode, &case.payload, case.count, 42).into();
        check_contenders(&case, &batch);
        let expected = (case.count, case.count * case.payload.len());

        let mut group = c.benchmark_group(format!("decode/{}", case.name));
        group.throughput(Throughput::Bytes(batch.len() as u64));

        // The destination at the same offset within a 4 KiB page as the
        // source: on some CPUs (this AMD EPYC among them) glibc's
        // `rep movsb` copy runs many times slower when the two are a few
        // bytes apart modulo 4 KiB, and the baseline is the fast copy.
        let mut dst_buf = vec![0u8; batch.len() + 4096];
        let skew = (batch.as_ptr() as usize).wrapping_sub(dst_buf.as_ptr() as usize) % 4096;
        let dst = &mut dst_buf[skew..skew + batch.len()];
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&batch[..]));
                black_box(&mut *dst);
            })
        });

        let mut sb = Switchboard::new();
        group.bench_function("switchboard", |b| {
            b.iter(|| assert_eq!(sb.run(black_box(&batch)), expected))
        });

        let mut tg = Tungstenite::new(&batch);
        group.bench_function("tungstenite", |b| {
            b.iter(|| assert_eq!(tg.run(case.count), expected))
        });
        assert_eq!(tg.ws.get_ref().written, 0);

        let mut fw = FastWebSockets::new(&batch);
        group.bench_function("fastwebsockets", |b| {
            b.iter(|| assert_eq!(fw.run(case.count), expected))
        });
        assert_eq!(fw.ws.into_inner().written, 0);

        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);
    targets = decode
}
criterion_main!(benches);
