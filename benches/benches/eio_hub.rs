//! The Engine.IO hub's per-message path with two threads at once: each
//! thread feeds a read's worth of 16 messages to each of its 32 WebSocket
//! sessions in turn (`EngineIo::ws_messages`), the echo handler sends each
//! back
//! (`EngineIo::send`, delivered on the same thread), and the thread takes
//! the echoes off the sessions' queues, as connection tasks do. Compared:
//! the endpoint as one shard (one lock for every session, the design before
//! shards) and as eight; one thread alone shows what sharding costs
//! without contention.
//!
//! Run: `cargo bench -p switchboard-bench --bench eio_hub`

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_async::engineio::EngineIo;
use switchboard_bench::hub::{drain, open_ws_sessions};
use switchboard_core::engineio::{ServerConfig, ServerEvent};
use switchboard_core::ws::Message;

const SESSIONS_PER_THREAD: usize = 32;
/// Messages handed over per read, as under load (16 in flight per session).
const BURST: usize = 16;

fn echo_endpoint(shards: usize) -> EngineIo {
    EngineIo::with_shards(
        ServerConfig::default(),
        |engine: &EngineIo, event: ServerEvent| {
            if let ServerEvent::Message { sid, data } = event {
                let _ = engine.send(&sid, data);
            }
        },
        shards,
    )
}

/// `rounds` echoes on each session of each of `threads` threads, all at
/// once; returns the slowest thread's time.
fn echo_rounds(engine: &EngineIo, threads: usize, rounds: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let engine = engine.clone();
            let barrier = barrier.clone();
            let mut sessions = open_ws_sessions(&engine, "/engine.io/", SESSIONS_PER_THREAD);
            // Handshakes go round the shards, so each thread's n-th session
            // is in the same shard: start each thread elsewhere in its
            // list, or the threads would march through the shards in step.
            sessions.rotate_left(thread * 4 % SESSIONS_PER_THREAD);
            std::thread::spawn(move || {
                let message = Message::text("4{\"n\":1,\"payload\":\"0123456789\"}");
                barrier.wait();
                let start = Instant::now();
                // Another thread may be delivering a session's events when
                // its message arrives (it then runs the echo), so an echo
                // can come a little later: count them all in.
                let mut missing = 0;
                for _ in 0..rounds {
                    for (conn, commands) in &mut sessions {
                        engine.ws_messages(*conn, (0..BURST).map(|_| message.clone()));
                        missing += BURST;
                        missing -= drain(commands);
                    }
                }
                while missing > 0 {
                    for (_, commands) in &mut sessions {
                        missing -= drain(commands);
                    }
                    std::thread::yield_now();
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn hub(c: &mut Criterion) {
    let mut group =
        c.benchmark_group("engineio hub echo (per round of 32 sessions x 16 messages per thread)");
    group.measurement_time(Duration::from_secs(4));
    for (threads, shards) in [(1, 1), (1, 8), (2, 1), (2, 8)] {
        let name = format!("{threads} thread(s), {shards} shard(s)");
        group.bench_function(name, |b| {
            b.iter_custom(|rounds| {
                // A fresh endpoint per sample: sessions do not pile up.
                let engine = echo_endpoint(shards);
                echo_rounds(&engine, threads, rounds)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hub);
criterion_main!(benches);
