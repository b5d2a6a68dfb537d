//! `loadgen eio` and `loadgen eio-idle`: Engine.IO echo throughput and idle
//! memory per session, Switchboard (tokio, smol) against engineioxide, each
//! server a child process (`loadgen serve-eio <impl>`, see
//! `switchboard_bench::eio_servers`) driven by the client of
//! `switchboard_bench::eio_client` on one tokio thread.
//!
//! Throughput: each case (transport x sessions) opens its sessions (each
//! handshakes and echoes one message), keeps `window` 32-byte text
//! messages in flight per session for `duration` after `warmup`, and counts
//! the echoes; rounds outermost, implementations innermost; ratios are the
//! median of per-round ratios against engineioxide.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_bench::eio_client::{self, Counters, IdleCounters, Session, Transport};
use switchboard_bench::eio_servers::{self, EioImpl};
use switchboard_bench::procfs;

use super::{Error, Server, client_runtime, machine, median, write_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EioCase {
    transport: Transport,
    sessions: usize,
}

impl EioCase {
    fn label(&self) -> String {
        format!("{}/{}", self.transport.name(), self.sessions)
    }
}

/// A server under test: an implementation, served by this binary or (for
/// `--also`) by another build of `loadgen`, such as one of a prototype.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Contender {
    name: String,
    imp: EioImpl,
    exe: Option<std::path::PathBuf>,
}

impl Contender {
    fn of(imp: EioImpl) -> Self {
        Contender {
            name: imp.name().to_owned(),
            imp,
            exe: None,
        }
    }

    /// `NAME=PATH:IMPL`.
    fn parse_also(spec: &str) -> Result<Self, Error> {
        let (name, rest) = spec.split_once('=').ok_or("--also takes NAME=PATH:IMPL")?;
        let (path, imp) = rest.rsplit_once(':').ok_or("--also takes NAME=PATH:IMPL")?;
        Ok(Contender {
            name: name.to_owned(),
            imp: imp.parse()?,
            exe: Some(path.into()),
        })
    }

    fn start(&self) -> Result<Server, Error> {
        let args = ["serve-eio", self.imp.name()];
        match &self.exe {
            Some(exe) => Server::spawn_exe(exe, &args, false),
            None => Server::spawn(&args, false),
        }
    }

    fn is_baseline(&self) -> bool {
        self.imp == EioImpl::Engineioxide && self.exe.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct EioOptions {
    impls: Vec<Contender>,
    cases: Vec<EioCase>,
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    window_ws: usize,
    window_polling: usize,
    size: usize,
    max_others: f64,
    retries: usize,
    transports: Vec<Transport>,
    sessions: usize,
    json: Option<String>,
}

impl EioOptions {
    pub fn parse(args: &[String]) -> Result<Self, Error> {
        let mut o = EioOptions {
            impls: EioImpl::DEFAULT.map(Contender::of).to_vec(),
            cases: [
                (Transport::WebSocket, 1),
                (Transport::WebSocket, 64),
                (Transport::Polling, 1),
                (Transport::Polling, 64),
            ]
            .map(|(transport, sessions)| EioCase {
                transport,
                sessions,
            })
            .to_vec(),
            duration: Duration::from_secs(3),
            warmup: Duration::from_millis(500),
            rounds: 5,
            window_ws: 16,
            window_polling: 16,
            size: 32,
            max_others: 0.1,
            retries: 3,
            transports: vec![Transport::WebSocket, Transport::Polling],
            sessions: 5000,
            json: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            let secs =
                |v: &str| -> Result<Duration, Error> { Ok(Duration::from_secs_f64(v.parse()?)) };
            match flag.as_str() {
                "--impls" => {
                    let v = value()?;
                    let imps: Vec<EioImpl> = if v == "all" {
                        EioImpl::ALL.to_vec()
                    } else {
                        v.split(',').map(str::parse).collect::<Result<_, _>>()?
                    };
                    let also: Vec<Contender> = o
                        .impls
                        .iter()
                        .filter(|c| c.exe.is_some())
                        .cloned()
                        .collect();
                    o.impls = imps.into_iter().map(Contender::of).chain(also).collect();
                }
                "--also" => {
                    let contender = Contender::parse_also(value()?)?;
                    o.impls.push(contender);
                }
                "--cases" => {
                    o.cases = value()?
                        .split(',')
                        .map(|c| -> Result<EioCase, Error> {
                            let (t, n) = c
                                .split_once('/')
                                .ok_or("a case is TRANSPORT/SESSIONS, e.g. polling/64")?;
                            Ok(EioCase {
                                transport: t.parse()?,
                                sessions: n.parse()?,
                            })
                        })
                        .collect::<Result<_, _>>()?
                }
                "--transports" => {
                    o.transports = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                "--duration" => o.duration = secs(value()?)?,
                "--warmup" => o.warmup = secs(value()?)?,
                "--rounds" => o.rounds = value()?.parse()?,
                "--window-ws" => o.window_ws = value()?.parse()?,
                "--window-polling" => o.window_polling = value()?.parse()?,
                "--size" => o.size = value()?.parse()?,
                "--max-others" => o.max_others = value()?.parse()?,
                "--retries" => o.retries = value()?.parse()?,
                "--sessions" => o.sessions = value()?.parse()?,
                "--json" => o.json = Some(value()?.clone()),
                other => return Err(format!("unknown option {other}").into()),
            }
        }
        Ok(o)
    }

    fn window(&self, transport: Transport) -> usize {
        match transport {
            Transport::WebSocket | Transport::WebSocketDeflate => self.window_ws,
            Transport::Polling => self.window_polling,
        }
    }

    /// The `4<payload>` packet every session sends.
    fn packet(&self) -> String {
        let payload = switchboard_bench::frames::text_payload(self.size, 5);
        eio_client::message_packet(std::str::from_utf8(&payload).expect("ASCII payload"))
    }
}

/// Opens `n` sessions, at most 64 handshakes at a time.
async fn open_sessions(
    addr: SocketAddr,
    transport: Transport,
    packet: &str,
    n: usize,
    idle: bool,
) -> Result<Vec<Session>, Error> {
    let packet: Arc<str> = packet.into();
    let mut sessions = Vec::with_capacity(n);
    let mut next = 0;
    while next < n {
        let batch = (n - next).min(64);
        let mut tasks = Vec::with_capacity(batch);
        for _ in 0..batch {
            let packet = packet.clone();
            tasks.push(tokio::spawn(async move {
                if idle {
                    eio_client::connect_idle(addr, transport, &packet).await
                } else {
                    eio_client::connect(addr, transport, &packet).await
                }
            }));
        }
        for task in tasks {
            sessions.push(task.await??);
        }
        next += batch;
    }
    Ok(sessions)
}

#[derive(Debug, Clone)]
struct EioResult {
    imp: Contender,
    case: EioCase,
    round: usize,
    window: usize,
    seconds: f64,
    messages: u64,
    /// The batches the echoes arrived in (see `Counters::batches`).
    batches: u64,
    server_cpu: f64,
    /// The part of `server_cpu` spent in the kernel.
    server_system: f64,
    client_cpu: f64,
    other_cpu: f64,
    failures: u64,
    /// Sessions that negotiated permessage-deflate.
    compressed: usize,
}

impl EioResult {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }

    fn messages_per_batch(&self) -> f64 {
        self.messages as f64 / self.batches.max(1) as f64
    }

    fn cpu_us_per_message(&self) -> f64 {
        self.server_cpu * 1e6 / self.messages.max(1) as f64
    }

    fn kernel_us_per_message(&self) -> f64 {
        self.server_system * 1e6 / self.messages.max(1) as f64
    }

    fn client_us_per_message(&self) -> f64 {
        self.client_cpu * 1e6 / self.messages.max(1) as f64
    }

    fn json(&self) -> Value {
        json!({
            "impl": self.imp.name,
            "case": self.case.label(),
            "transport": self.case.transport.name(),
            "sessions": self.case.sessions,
            "window": self.window,
            "round": self.round,
            "seconds": self.seconds,
            "messages": self.messages,
            "messages_per_second": self.rate(),
            "server_cpu_seconds": self.server_cpu,
            "server_cpu_us_per_message": self.cpu_us_per_message(),
            "server_kernel_us_per_message": self.kernel_us_per_message(),
            "client_cpu_us_per_message": self.client_us_per_message(),
            "server_cores": self.server_cpu / self.seconds,
            "client_cores": self.client_cpu / self.seconds,
            "other_cores": self.other_cpu / self.seconds,
            "messages_per_batch": self.messages_per_batch(),
            "failed_sessions": self.failures,
            "compressed_sessions": self.compressed,
        })
    }
}

fn run_case(
    imp: &Contender,
    case: EioCase,
    round: usize,
    o: &EioOptions,
) -> Result<EioResult, Error> {
    let server = imp.start()?;
    let runtime = client_runtime(1);
    let window = o.window(case.transport);
    let packet = o.packet();
    let addr = server.addr;
    let result = runtime.block_on(async {
        let sessions = open_sessions(addr, case.transport, &packet, case.sessions, false).await?;
        let compressed = sessions.iter().filter(|s| s.is_compressed()).count();
        let counters = Arc::new(Counters::default());
        for session in sessions {
            eio_client::start_load(session, addr, &packet, window, counters.clone());
        }
        tokio::time::sleep(o.warmup).await;
        let snapshot = || {
            (
                Instant::now(),
                counters.messages.load(Ordering::Relaxed),
                counters.batches.load(Ordering::Relaxed),
                server.cpu_time(),
                procfs::cpu_seconds(std::process::id()).expect("own stat"),
                procfs::machine_busy_seconds().expect("/proc/stat"),
            )
        };
        let (t0, m0, n0, s0, c0, b0) = snapshot();
        tokio::time::sleep(o.duration).await;
        let (t1, m1, n1, s1, c1, b1) = snapshot();
        Ok::<_, Error>(EioResult {
            imp: imp.clone(),
            case,
            round,
            window,
            seconds: (t1 - t0).as_secs_f64(),
            messages: m1 - m0,
            batches: n1 - n0,
            server_cpu: (s1.user + s1.system) - (s0.user + s0.system),
            server_system: s1.system - s0.system,
            client_cpu: c1 - c0,
            other_cpu: ((b1 - b0) - (s1.user + s1.system - s0.user - s0.system) - (c1 - c0))
                .max(0.0),
            failures: counters.failures.load(Ordering::Relaxed),
            compressed,
        })
    });
    runtime.shutdown_background();
    drop(server);
    result
}

pub fn load(o: EioOptions) -> Result<(), Error> {
    eprintln!(
        "eio: {} implementation(s) x {} case(s) x {} round(s), {:?} each after {:?} warm-up, windows websocket {} / polling {}, {}-byte text messages, 1 client thread",
        o.impls.len(),
        o.cases.len(),
        o.rounds,
        o.duration,
        o.warmup,
        o.window_ws,
        o.window_polling,
        o.size,
    );
    let mut results: Vec<EioResult> = Vec::new();
    let mut discarded = Vec::new();
    for round in 0..o.rounds {
        for &case in &o.cases {
            for imp in &o.impls {
                let mut r = run_case(imp, case, round, &o)?;
                let mut tries = 0;
                while r.other_cpu / r.seconds > o.max_others && tries < o.retries {
                    eprintln!(
                        "  round {round} {:<20} {:<18} discarded: other processes used {:.2} cores",
                        case.label(),
                        imp.name,
                        r.other_cpu / r.seconds
                    );
                    discarded.push(r);
                    std::thread::sleep(Duration::from_secs(2));
                    r = run_case(imp, case, round, &o)?;
                    tries += 1;
                }
                eprintln!(
                    "  round {round} {:<20} {:<18} {:>9.0} msg/s  {:>6.2} us CPU/msg  {:>5.2} msg/batch  server {:.2} cores  client {:.2} cores  others {:.2} cores{}",
                    case.label(),
                    imp.name,
                    r.rate(),
                    r.cpu_us_per_message(),
                    r.messages_per_batch(),
                    r.server_cpu / r.seconds,
                    r.client_cpu / r.seconds,
                    r.other_cpu / r.seconds,
                    if r.failures > 0 {
                        format!("  FAILED SESSIONS: {}", r.failures)
                    } else {
                        String::new()
                    }
                );
                if r.compressed > 0 {
                    eprintln!(
                        "    ({} of {} sessions compressed)",
                        r.compressed, case.sessions
                    );
                }
                results.push(r);
            }
        }
    }

    let mut summary = Vec::new();
    println!();
    println!(
        "{:<20} {:<18} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7} {:>7} {:>12} {:>14}",
        "case",
        "server",
        "msg/s",
        "CPU us/msg",
        "kernel us",
        "client us",
        "srv cpu",
        "cli cpu",
        "others",
        "vs engineiox",
        "(min..max)"
    );
    for &case in &o.cases {
        let of = |imp: &Contender| -> Vec<&EioResult> {
            results
                .iter()
                .filter(|r| &r.imp == imp && r.case == case)
                .collect()
        };
        let mut medians: HashMap<&Contender, [f64; 7]> = HashMap::new();
        for imp in &o.impls {
            let rs = of(imp);
            let m = |f: &dyn Fn(&EioResult) -> f64| median(rs.iter().map(|r| f(r)).collect());
            medians.insert(
                imp,
                [
                    m(&EioResult::rate),
                    m(&EioResult::cpu_us_per_message),
                    m(&EioResult::kernel_us_per_message),
                    m(&EioResult::client_us_per_message),
                    m(&|r| r.server_cpu / r.seconds),
                    m(&|r| r.client_cpu / r.seconds),
                    m(&|r| r.other_cpu / r.seconds),
                ],
            );
        }
        let rate_in = |imp: &Contender, round: usize| {
            results
                .iter()
                .find(|r| &r.imp == imp && r.round == round && r.case == case)
                .map(EioResult::rate)
        };
        let baseline = o.impls.iter().find(|c| c.is_baseline());
        for imp in &o.impls {
            let [rate, cpu, kernel, client, srv, cli, other] = medians[imp];
            let per_round: Vec<f64> = (0..o.rounds)
                .filter_map(|round| Some(rate_in(imp, round)? / rate_in(baseline?, round)?))
                .collect();
            let ratio = (!per_round.is_empty()).then(|| median(per_round.clone()));
            let spread = (!per_round.is_empty()).then(|| {
                (
                    per_round.iter().copied().fold(f64::INFINITY, f64::min),
                    per_round.iter().copied().fold(0.0, f64::max),
                )
            });
            println!(
                "{:<20} {:<18} {:>10.0} {:>10.2} {:>10.2} {:>10.2} {:>7.2} {:>7.2} {:>7.2} {:>12} {:>14}",
                case.label(),
                imp.name,
                rate,
                cpu,
                kernel,
                client,
                srv,
                cli,
                other,
                ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                spread.map_or("-".into(), |(lo, hi)| format!("{lo:.2}..{hi:.2}")),
            );
            let failures: u64 = of(imp).iter().map(|r| r.failures).sum();
            summary.push(json!({
                "case": case.label(),
                "transport": case.transport.name(),
                "sessions": case.sessions,
                "impl": imp.name,
                "messages_per_second_median": rate,
                "server_cpu_us_per_message_median": cpu,
                "server_kernel_us_per_message_median": kernel,
                "client_cpu_us_per_message_median": client,
                "server_cores_median": srv,
                "client_cores_median": cli,
                "other_cores_median": other,
                "ratio_vs_engineioxide_median_of_rounds": ratio,
                "ratio_vs_engineioxide_min_max": spread.map(|(lo, hi)| [lo, hi]),
                "failed_sessions": failures,
            }));
        }
    }
    let path = o
        .json
        .clone()
        .unwrap_or_else(|| "target/loadgen-eio.json".into());
    write_json(
        &path,
        &json!({
            "benchmark": "Engine.IO echo load",
            "machine": machine(),
            "settings": settings(&o),
            "summary": summary,
            "runs": results.iter().map(EioResult::json).collect::<Vec<_>>(),
            "discarded_noisy_runs": discarded.iter().map(EioResult::json).collect::<Vec<_>>(),
        }),
    )
}

fn settings(o: &EioOptions) -> Value {
    json!({
        "duration_seconds": o.duration.as_secs_f64(),
        "warmup_seconds": o.warmup.as_secs_f64(),
        "rounds": o.rounds,
        "window_websocket_messages": o.window_ws,
        "window_polling_messages": o.window_polling,
        "message": format!("{}-byte JSON-like text payload, sent as the Engine.IO packet 4<payload>", o.size),
        "client": "one tokio thread; WebSocket: switchboard_tokio::ws client; polling: raw HTTP/1.1, a GET connection and a POST connection per session",
        "max_other_cores": o.max_others,
        "server_config": {
            "ping_interval_seconds": eio_servers::PING_INTERVAL.as_secs_f64(),
            "ping_timeout_seconds": eio_servers::PING_TIMEOUT.as_secs_f64(),
            "max_payload": eio_servers::MAX_PAYLOAD,
            "max_buffered_packets": eio_servers::MAX_BUFFERED,
            "worker_threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        "engineioxide": "0.17.9 under hyper 1 http1 (with upgrades), tokio multi-thread runtime",
    })
}

pub fn idle(o: EioOptions, nofile: u64) -> Result<(), Error> {
    let n = o.sessions;
    if n as u64 + 64 > nofile {
        return Err(format!("open-file limit {nofile} too low for {n} sessions").into());
    }
    let checkpoint = (n / 5).max(1);
    let packet = o.packet();
    let mut rows = Vec::new();
    println!(
        "{:<17} {:<18} {:>11} {:>11} {:>11} {:>13} {:>15}",
        "transport",
        "server",
        "RSS before",
        format!("RSS @{checkpoint}"),
        format!("RSS @{n}"),
        "growth/sess",
        "marginal/sess"
    );
    for &transport in &o.transports {
        for imp in &o.impls {
            let server = imp.start()?;
            let runtime = client_runtime(1);
            let addr = server.addr;
            let row = runtime.block_on(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let before = server.rss();
                let counters = Arc::new(IdleCounters::default());
                let keep = |sessions: Vec<Session>| {
                    for session in sessions {
                        eio_client::keep_idle(session, addr, counters.clone());
                    }
                };
                keep(open_sessions(addr, transport, &packet, checkpoint, true).await?);
                tokio::time::sleep(Duration::from_millis(500)).await;
                let at_checkpoint = server.rss();
                keep(open_sessions(addr, transport, &packet, n - checkpoint, true).await?);
                tokio::time::sleep(Duration::from_secs(1)).await;
                let after = server.rss();
                let broken = counters.broken.load(Ordering::Relaxed);
                let pings = counters.pings.load(Ordering::Relaxed);
                Ok::<_, Error>((before, at_checkpoint, after, broken, pings))
            });
            runtime.shutdown_background();
            drop(server);
            let (before, at_checkpoint, after, broken, pings) = row?;
            let growth = (after as f64 - before as f64) / n as f64;
            let marginal = (after as f64 - at_checkpoint as f64) / (n - checkpoint).max(1) as f64;
            println!(
                "{:<17} {:<18} {:>7} KiB {:>7} KiB {:>7} KiB {:>9.2} KiB {:>11.2} KiB{}",
                transport.name(),
                imp.name,
                before / 1024,
                at_checkpoint / 1024,
                after / 1024,
                growth / 1024.0,
                marginal / 1024.0,
                match (broken, pings) {
                    (0, 0) => String::new(),
                    (0, p) => format!("  ({p} pings answered while idle)"),
                    (b, p) => format!("  ({b} SESSIONS BROKEN, {p} pings answered while idle)"),
                }
            );
            rows.push(json!({
                "transport": transport.name(),
                "impl": imp.name,
                "sessions": n,
                "rss_before_bytes": before,
                "rss_at_checkpoint_bytes": at_checkpoint,
                "checkpoint_sessions": checkpoint,
                "rss_after_bytes": after,
                "growth_bytes_per_session": growth,
                "marginal_bytes_per_session": marginal,
                "sessions_broken": broken,
                "pings_answered": pings,
            }));
        }
    }
    let path = o
        .json
        .clone()
        .unwrap_or_else(|| "target/loadgen-eio-idle.json".into());
    write_json(
        &path,
        &json!({
            "benchmark": "Engine.IO idle memory",
            "machine": machine(),
            "method": "server RSS (VmRSS) before and after opening the sessions; each session handshakes and echoes one 32-byte text message, then idles: over WebSocket, one WebSocket; over polling, one keep-alive connection holding a GET poll open (the POST connection a browser would also keep is not opened)",
            "server_config": settings(&o)["server_config"].clone(),
            "results": rows,
        }),
    )
}
