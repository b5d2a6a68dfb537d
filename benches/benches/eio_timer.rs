//! The Engine.IO core's `poll_timeout`, which the hubs call after every
//! pass (every message): with 5,000 live polling sessions, and with 5,000
//! more closed by the server while no poll was held (each waits for the
//! client's next poll until pingInterval + pingTimeout have passed).
//!
//! Run: `cargo bench -p switchboard-bench --bench eio_timer`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_core::engineio::{OpenPacket, RequestOutcome, Server, ServerConfig};
use switchboard_core::http::{Limits, Request};

const SESSIONS: usize = 5_000;

fn open_session(server: &mut Server, now: Instant) -> String {
    let head = b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: bench\r\n\r\n";
    let (request, _) = Request::parse(head, &Limits::default())
        .expect("valid head")
        .expect("complete head");
    let RequestOutcome::Respond(response) = server.handle_request(&request, Bytes::new(), now)
    else {
        panic!("a handshake is answered at once");
    };
    let body = std::str::from_utf8(&response.body).expect("text");
    OpenPacket::from_json(&body[1..]).expect("open packet").sid
}

fn poll_timeout(c: &mut Criterion) {
    let now = Instant::now();
    let mut server = Server::new(ServerConfig::default());
    for _ in 0..SESSIONS {
        open_session(&mut server, now);
    }
    while server.poll_event().is_some() {}
    let mut group = c.benchmark_group("engineio poll_timeout");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("5000 sessions", |b| {
        b.iter(|| black_box(server.poll_timeout()))
    });
    for _ in 0..SESSIONS {
        let sid = open_session(&mut server, now);
        server.close(&sid);
    }
    while server.poll_event().is_some() {}
    group.bench_function("5000 sessions + 5000 closing", |b| {
        b.iter(|| black_box(server.poll_timeout()))
    });
    group.finish();
}

criterion_group!(benches, poll_timeout);
criterion_main!(benches);
