//! Socket.IO benchmark: ack round trips/s, broadcast fan-out deliveries/s
//! and idle memory per connected socket, Switchboard (tokio, smol) against
//! socketioxide and Node `socket.io` 4, each server a child process of this
//! one, all driven by the same raw client (`switchboard_bench::sio_bench`).
//!
//! ```text
//! sio-bench run [--rounds N] [--secs S] [--impls a,b,..] [--cases ack,broadcast]
//!               [--idle N] [--json PATH]
//! sio-bench serve <impl>   (the child: prints "LISTENING <addr>", serves)
//! ```
//!
//! See `BENCHMARKS.md` ("Socket.IO") for the method and the figures.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switchboard_bench::procfs;
use switchboard_bench::sio_bench::{self, Client, Counters, SioImpl};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// The ack cases: (name, clients, acks in flight per client).
const ACK_CASES: [(&str, usize, usize); 4] = [
    ("ack 1 client x 1", 1, 1),
    ("ack 1 client x 16", 1, 16),
    ("ack 64 clients x 1", 64, 1),
    ("ack 64 clients x 16", 64, 16),
];
/// The broadcast case's name.
const BCAST_CASE: &str = "broadcast 1000 clients";
/// Clients in the broadcast room.
const ROOM_MEMBERS: usize = 1000;
/// Emits per broadcast trigger (below socketioxide's default buffer of 128
/// packets per socket).
const EMITS_PER_TRIGGER: u32 = 100;
const WARMUP: Duration = Duration::from_millis(500);

fn main() {
    if let Err(error) = real_main() {
        eprintln!("sio-bench: {error}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let imp: SioImpl = args.get(1).ok_or("serve <impl>")?.parse()?;
            let listener = TcpListener::bind("127.0.0.1:0")?;
            println!("LISTENING {}", listener.local_addr()?);
            sio_bench::run(imp, listener)?;
            Ok(())
        }
        Some("run") => {
            let mut options = Options::default();
            let mut rest = args[1..].iter();
            while let Some(flag) = rest.next() {
                let mut value = || rest.next().ok_or_else(|| format!("{flag} needs a value"));
                match flag.as_str() {
                    "--rounds" => options.rounds = value()?.parse()?,
                    "--secs" => options.secs = value()?.parse()?,
                    "--idle" => options.idle = value()?.parse()?,
                    "--json" => options.json = Some(value()?.clone()),
                    "--max-others" => options.max_others = value()?.parse()?,
                    "--retries" => options.retries = value()?.parse()?,
                    "--cases" => {
                        let cases = value()?;
                        options.ack = cases.split(',').any(|c| c == "ack");
                        options.broadcast = cases.split(',').any(|c| c == "broadcast");
                    }
                    "--impls" => {
                        options.impls = value()?
                            .split(',')
                            .map(str::parse)
                            .collect::<Result<_, _>>()?;
                    }
                    _ => return Err(format!("unknown flag {flag}").into()),
                }
            }
            procfs::raise_nofile_limit()?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run(options))
        }
        _ => Err("usage: sio-bench run [--rounds N] [--secs S] [--impls a,b] [--cases ack,broadcast] [--idle N] [--max-others 0.1] [--retries 3] [--json PATH] | sio-bench serve <impl>".into()),
    }
}

#[derive(Debug)]
struct Options {
    rounds: usize,
    secs: f64,
    idle: usize,
    impls: Vec<SioImpl>,
    /// Whether to run the ack cases and the broadcast case.
    ack: bool,
    broadcast: bool,
    /// A measurement during which other processes used more than this many
    /// cores is discarded and repeated (at most `retries` times).
    max_others: f64,
    retries: usize,
    json: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rounds: 3,
            secs: 2.0,
            idle: 5000,
            impls: SioImpl::ALL.to_vec(),
            ack: true,
            broadcast: true,
            max_others: 0.1,
            retries: 3,
            json: None,
        }
    }
}

/// A server child process, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(imp: SioImpl) -> Result<Server> {
        let mut command = if imp == SioImpl::Node {
            let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
            let mut command = Command::new("node");
            command
                .arg(format!("{root}/benches/scripts/sio-server.js"))
                .env("NODE_PATH", format!("{root}/tests/interop/node_modules"));
            command
        } else {
            let mut command = Command::new(std::env::current_exe()?);
            command.arg("serve").arg(imp.name());
            command
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .ok_or_else(|| format!("{imp}: unexpected first line {line:?}"))?
            .parse()?;
        Ok(Server { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU readings around a measurement.
struct Cpu {
    at: Instant,
    server: procfs::CpuTime,
    own: f64,
    machine: f64,
}

/// What a measurement's CPU readings come to.
struct CpuUse {
    secs: f64,
    /// The server's CPU seconds, all of them and those in the kernel.
    server: f64,
    server_system: f64,
    /// This process's (the clients').
    clients: f64,
    /// Cores used by other processes.
    other: f64,
}

impl Cpu {
    fn now(server: u32) -> io::Result<Cpu> {
        Ok(Cpu {
            at: Instant::now(),
            server: procfs::cpu_time(server)?,
            own: procfs::cpu_seconds(std::process::id())?,
            machine: procfs::machine_busy_seconds()?,
        })
    }

    fn since(&self, server: u32) -> io::Result<CpuUse> {
        let now = Cpu::now(server)?;
        let secs = now.at.duration_since(self.at).as_secs_f64();
        let server_system = now.server.system - self.server.system;
        let server_cpu = now.server.user - self.server.user + server_system;
        let clients = now.own - self.own;
        let other = (now.machine - self.machine) - server_cpu - clients;
        Ok(CpuUse {
            secs,
            server: server_cpu,
            server_system,
            clients,
            other: (other / secs).max(0.0),
        })
    }

    /// The sample for `done` acks or deliveries.
    fn sample(&self, server: u32, done: u64) -> io::Result<Sample> {
        let used = self.since(server)?;
        let per_op = |secs: f64| secs * 1e6 / done.max(1) as f64;
        Ok(Sample {
            round: 0,
            rate: done as f64 / used.secs,
            cpu_us: per_op(used.server),
            system_us: per_op(used.server_system),
            client_us: per_op(used.clients),
            other: used.other,
        })
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The round it belongs to (set by `run`).
    round: usize,
    /// Acks or deliveries per second.
    rate: f64,
    /// Server CPU microseconds per ack or delivery.
    cpu_us: f64,
    /// The part of `cpu_us` spent in the kernel.
    system_us: f64,
    /// The clients' CPU microseconds per ack or delivery.
    client_us: f64,
    /// Cores other processes used meanwhile.
    other: f64,
}

async fn connect_many(addr: SocketAddr, n: usize) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(n);
    // A few handshakes in flight at once.
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..n {
        pending.spawn(async move { (i, Client::connect(addr).await) });
        if pending.len() >= 32 {
            let (_, client) = pending.join_next().await.ok_or("join")??;
            clients.push(client?);
        }
    }
    while let Some(done) = pending.join_next().await {
        clients.push(done?.1?);
    }
    Ok(clients)
}

async fn measure_ack(server: &Server, clients: usize, window: usize, secs: f64) -> Result<Sample> {
    let counters = Arc::new(Counters::default());
    let mut tasks = tokio::task::JoinSet::new();
    for client in connect_many(server.addr, clients).await? {
        let counters = counters.clone();
        tasks.spawn(async move {
            if let Err(error) = sio_bench::ack_loop(client, window, counters.clone()).await
                && !counters.stop.load(Ordering::Relaxed)
            {
                eprintln!("ack client: {error}");
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(WARMUP).await;
    let start = counters.count.load(Ordering::Relaxed);
    let cpu = Cpu::now(server.pid())?;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let done = counters.count.load(Ordering::Relaxed) - start;
    let sample = cpu.sample(server.pid(), done)?;
    counters.stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if counters.errors.load(Ordering::Relaxed) > 0 || done == 0 {
        return Err("ack run failed".into());
    }
    Ok(sample)
}

async fn wait_count(counters: &Counters, target: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while counters.count.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline || counters.errors.load(Ordering::Relaxed) > 0 {
            return Err(format!(
                "broadcast: {} of {target} deliveries",
                counters.count.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Ok(())
}

async fn measure_broadcast(server: &Server, secs: f64) -> Result<Sample> {
    let counters = Arc::new(Counters::default());
    let mut members = connect_many(server.addr, ROOM_MEMBERS).await?;
    for client in &mut members {
        client.join("bench").await?;
    }
    let mut trigger = Client::connect(server.addr).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for client in members {
        let counters = counters.clone();
        tasks.spawn(async move {
            if let Err(error) = sio_bench::bcast_loop(client, counters.clone()).await
                && !counters.stop.load(Ordering::Relaxed)
            {
                eprintln!("broadcast client: {error}");
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let per_trigger = ROOM_MEMBERS as u64 * u64::from(EMITS_PER_TRIGGER);
    // Warm-up: one trigger.
    trigger
        .trigger_broadcast("bench", EMITS_PER_TRIGGER)
        .await?;
    wait_count(&counters, per_trigger).await?;
    let start = counters.count.load(Ordering::Relaxed);
    let cpu = Cpu::now(server.pid())?;
    let began = Instant::now();
    let mut target = start;
    while began.elapsed().as_secs_f64() < secs {
        target += per_trigger;
        trigger
            .trigger_broadcast("bench", EMITS_PER_TRIGGER)
            .await?;
        wait_count(&counters, target).await?;
    }
    let done = counters.count.load(Ordering::Relaxed) - start;
    let sample = cpu.sample(server.pid(), done)?;
    counters.stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    drop(trigger);
    Ok(sample)
}

/// Server RSS per idle connected socket over `n` sockets, in bytes (after
/// 100 warm-up sockets), and the cores other processes used meanwhile.
async fn measure_idle(imp: SioImpl, n: usize) -> Result<Sample> {
    let server = Server::start(imp)?;
    let warm = connect_many(server.addr, 100).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = procfs::rss_bytes(server.pid())?;
    let cpu = Cpu::now(server.pid())?;
    let clients = connect_many(server.addr, n).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = procfs::rss_bytes(server.pid())?;
    let other = cpu.since(server.pid())?.other;
    drop(clients);
    drop(warm);
    Ok(Sample {
        round: 0,
        rate: after.saturating_sub(before) as f64 / n as f64,
        cpu_us: 0.0,
        system_us: 0.0,
        client_us: 0.0,
        other,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

type Results = BTreeMap<(String, SioImpl), Vec<Sample>>;

/// Runs `measure` until a sample is taken while other processes stayed
/// under `max_others` cores, or `retries` were discarded (`label` names the
/// measurement in the log); counts discards in `discarded`.
async fn measure_quietly<Fut>(
    options: &Options,
    discarded: &mut usize,
    label: &str,
    mut measure: impl FnMut() -> Fut,
) -> Result<Sample>
where
    Fut: Future<Output = Result<Sample>>,
{
    let mut tries = 0;
    loop {
        let sample = measure().await?;
        if sample.other <= options.max_others || tries >= options.retries {
            return Ok(sample);
        }
        tries += 1;
        *discarded += 1;
        eprintln!(
            "{label}: discarded, other processes used {:.2} cores",
            sample.other
        );
    }
}

async fn run(options: Options) -> Result<()> {
    let load_before = uptime();
    eprintln!("load before: {load_before}");
    let mut results: Results = BTreeMap::new();
    let mut discarded = 0;
    let impls = &options.impls;
    for round in 0..options.rounds {
        for k in 0..impls.len() {
            // Alternate the order from round to round.
            let imp = impls[(k + round) % impls.len()];
            let server = Server::start(imp)?;
            let ack_cases = if options.ack { &ACK_CASES[..] } else { &[] };
            for &(name, clients, window) in ack_cases {
                let label = format!("round {round} {imp} {name}");
                let sample = measure_quietly(&options, &mut discarded, &label, || {
                    measure_ack(&server, clients, window, options.secs)
                })
                .await;
                let sample = match sample {
                    Ok(sample) => sample,
                    Err(error) => {
                        eprintln!("round {round} {imp} {name}: {error}");
                        continue;
                    }
                };
                eprintln!(
                    "round {round} {imp:>18} {name:<22} {:>10.0}/s  {:>6.2} µs CPU  other {:.2} cores",
                    sample.rate, sample.cpu_us, sample.other
                );
                results
                    .entry((name.to_owned(), imp))
                    .or_default()
                    .push(Sample { round, ..sample });
            }
            if !options.broadcast {
                continue;
            }
            let label = format!("round {round} {imp} {BCAST_CASE}");
            let sample = measure_quietly(&options, &mut discarded, &label, || {
                measure_broadcast(&server, options.secs)
            })
            .await;
            let sample = match sample {
                Ok(sample) => sample,
                Err(error) => {
                    eprintln!("round {round} {imp} {BCAST_CASE}: {error}");
                    continue;
                }
            };
            eprintln!(
                "round {round} {imp:>18} {BCAST_CASE:<22} {:>10.0}/s  {:>6.2} µs CPU  other {:.2} cores",
                sample.rate, sample.cpu_us, sample.other
            );
            results
                .entry((BCAST_CASE.to_owned(), imp))
                .or_default()
                .push(Sample { round, ..sample });
        }
    }
    let idle_case = format!("idle bytes/socket over {}", options.idle);
    if options.idle > 0 {
        for round in 0..options.rounds.min(2) {
            for k in 0..impls.len() {
                let imp = impls[(k + round) % impls.len()];
                let sample = match measure_idle(imp, options.idle).await {
                    Ok(sample) => sample,
                    Err(error) => {
                        eprintln!("round {round} {imp} {idle_case}: {error}");
                        continue;
                    }
                };
                eprintln!(
                    "round {round} {imp:>18} {idle_case}: {:.0} B  other {:.2} cores",
                    sample.rate, sample.other
                );
                results
                    .entry((idle_case.clone(), imp))
                    .or_default()
                    .push(Sample { round, ..sample });
            }
        }
    }
    let load_after = uptime();
    eprintln!("load after: {load_after}");
    if discarded > 0 {
        eprintln!("discarded {discarded} noisy measurement(s)");
    }
    report(&options, &results, discarded, &load_before, &load_after)
}

/// Median over rounds of `imp`'s value divided by `peer`'s in that round.
fn median_ratio(samples: &Results, case: &str, imp: SioImpl, peer: SioImpl) -> Option<f64> {
    let ours = samples.get(&(case.to_owned(), imp))?;
    let theirs = samples.get(&(case.to_owned(), peer))?;
    let mut ratios: Vec<f64> = ours
        .iter()
        .filter_map(|a| {
            let b = theirs.iter().find(|b| b.round == a.round)?;
            Some(a.rate / b.rate)
        })
        .collect();
    Some(median(&mut ratios))
}

fn report(
    options: &Options,
    results: &Results,
    discarded: usize,
    before: &str,
    after: &str,
) -> Result<()> {
    let mut cases: Vec<String> = ACK_CASES.iter().map(|c| c.0.to_owned()).collect();
    cases.push(BCAST_CASE.to_owned());
    let idle_case = format!("idle bytes/socket over {}", options.idle);
    cases.push(idle_case.clone());
    println!(
        "| case | server | median | server CPU µs/op (kernel) | clients µs/op | other cores (max) | vs socketioxide | vs node | vs switchboard-tokio |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut json = Vec::new();
    for case in &cases {
        for &imp in &options.impls {
            let Some(samples) = results.get(&(case.clone(), imp)) else {
                continue;
            };
            let mut rates: Vec<f64> = samples.iter().map(|s| s.rate).collect();
            let mut cpu: Vec<f64> = samples.iter().map(|s| s.cpu_us).collect();
            let other = samples.iter().map(|s| s.other).fold(0.0, f64::max);
            let mut system: Vec<f64> = samples.iter().map(|s| s.system_us).collect();
            let mut client: Vec<f64> = samples.iter().map(|s| s.client_us).collect();
            let rate = median(&mut rates);
            let cpu = median(&mut cpu);
            let system = median(&mut system);
            let client = median(&mut client);
            let ratio = |peer| {
                median_ratio(results, case, imp, peer).map_or(String::new(), |r| format!("{r:.2}x"))
            };
            let value = if *case == idle_case {
                format!("{:.1} KiB", rate / 1024.0)
            } else {
                format!("{rate:.0}/s")
            };
            let (cpu_cell, client_cell) = if *case == idle_case {
                (String::new(), String::new())
            } else {
                (format!("{cpu:.2} ({system:.2})"), format!("{client:.2}"))
            };
            println!(
                "| {case} | {imp} | {value} | {cpu_cell} | {client_cell} | {other:.2} | {} | {} | {} |",
                ratio(SioImpl::Socketioxide),
                ratio(SioImpl::Node),
                ratio(SioImpl::SwitchboardTokio),
            );
            json.push(serde_json::json!({
                "case": case,
                "server": imp.name(),
                "median": rate,
                "rounds": samples.iter().map(|s| s.rate).collect::<Vec<_>>(),
                "server_cpu_us": cpu,
                "server_kernel_us": system,
                "client_cpu_us": client,
                "other_cores_max": other,
                "vs_socketioxide": median_ratio(results, case, imp, SioImpl::Socketioxide),
                "vs_node": median_ratio(results, case, imp, SioImpl::Node),
                "vs_switchboard_tokio": median_ratio(results, case, imp, SioImpl::SwitchboardTokio),
            }));
        }
    }
    println!("\nload before: {before}\nload after:  {after}");
    if let Some(path) = &options.json {
        let doc = serde_json::json!({
            "rounds": options.rounds,
            "secs": options.secs,
            "idle_sockets": options.idle,
            "max_other_cores": options.max_others,
            "discarded_noisy_measurements": discarded,
            "load_before": before,
            "load_after": after,
            "results": json,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
