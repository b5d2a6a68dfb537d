//! Browser tests: the demo (`examples/demo`) on every runtime, driven in
//! headless Chromium (Debian's `/usr/bin/chromium`) by playwright-core with
//! `tests/browser/demo.mjs`, over each Socket.IO transport mode: the default
//! (polling, then the upgrade to websocket), websocket only, polling only.
//!
//! Each test starts the demo binary on a free port, waits for its
//! `Switchboard demo on http://ADDR/ (runtime)` line, runs the script (two
//! pages chatting in a room, a job whose progress reaches only the page that
//! started it, spread over the job's run, the raw WebSocket echo, the client
//! count) and kills the demo. Screenshots land in
//! `artifacts/browser/<runtime>-<transport>-<a|b>.png`.
//!
//! The demo binary is built by `scripts/test.sh` before the tests run
//! (`cargo build --example demo --all-features`, `--release` works too); this
//! test runs the newest of `target/{release,debug}/examples/demo` (or
//! `$SWITCHBOARD_DEMO`).
//! Under `CI=true` anything missing (the binary, node, playwright-core,
//! chromium) is a failure; elsewhere the test is skipped loudly.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use switchboard_conformance::peers::{self, run_peer};

/// Debian's chromium, or `$CHROMIUM` (as in scripts/install-peers.sh).
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}
/// The demo's first start runs `npm ci` in `examples/demo`.
const DEMO_START: Duration = Duration::from_secs(180);
/// One run of the script: a browser, two pages, a four-second job.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                peers::workspace_root().join(dir)
            }
        })
        .unwrap_or_else(|| peers::workspace_root().join("target"))
}

/// The demo binary: `$SWITCHBOARD_DEMO`, or the newest of
/// `target/{release,debug}/examples/demo`.
fn demo_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHBOARD_DEMO") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    ["release", "debug"]
        .iter()
        .map(|profile| target_dir().join(profile).join("examples").join("demo"))
        .filter(|p| p.is_file())
        .max_by_key(|p| modified(p).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// Warns when the demo's sources are newer than the binary under test.
fn warn_if_stale(binary: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary) else {
        return;
    };
    let demo = peers::workspace_root().join("examples").join("demo");
    for source in ["main.rs", "index.html"] {
        if modified(&demo.join(source)).is_some_and(|changed| changed > built) {
            eprintln!(
                "WARNING: examples/demo/{source} is newer than {}; rebuild it with \
                 `cargo build --example demo --all-features`",
                binary.display()
            );
        }
    }
}

/// Everything the test needs, or `None` (skipped, loudly) outside CI.
fn prerequisites() -> Option<PathBuf> {
    let playwright = peers::interop_dir()
        .join("node_modules")
        .join("playwright-core")
        .join("package.json");
    if !peers::require(
        peers::node_ready() && playwright.exists(),
        "node + playwright-core (tests/interop/node_modules)",
    ) {
        return None;
    }
    if !peers::require(
        chromium().exists(),
        &format!("Debian's chromium ({})", chromium().display()),
    ) {
        return None;
    }
    let Some(binary) = demo_binary() else {
        let what = format!(
            "the demo binary (looked for $SWITCHBOARD_DEMO, then {}/{{release,debug}}/examples/demo; build it with \
             `cargo build --example demo --all-features`, as scripts/test.sh does)",
            target_dir().display()
        );
        if peers::in_ci() {
            panic!("{what} is missing; CI requires the browser tests to run");
        }
        eprintln!("SKIPPED: {what} is missing");
        return None;
    };
    warn_if_stale(&binary);
    Some(binary)
}

/// Held while a demo starts when `examples/demo/node_modules` is not there
/// yet, so that only one process runs the demo's first-start `npm ci` (the
/// tests run in parallel processes). A directory is the lock: `create_dir`
/// is atomic, and a lock left by a killed process goes stale after a while.
struct StartLock(Option<PathBuf>);

impl StartLock {
    fn acquire() -> StartLock {
        let client = peers::workspace_root()
            .join("examples/demo/node_modules/socket.io-client/dist/socket.io.min.js");
        if client.exists() {
            return StartLock(None);
        }
        let cache = peers::workspace_root().join(".cache");
        std::fs::create_dir_all(&cache).expect("create .cache");
        let lock = cache.join("demo-first-start.lock");
        let deadline = Instant::now() + DEMO_START;
        loop {
            match std::fs::create_dir(&lock) {
                Ok(()) => return StartLock(Some(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|age| age > DEMO_START) {
                        let _ = std::fs::remove_dir(&lock);
                        continue;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "waited {DEMO_START:?} for {} (another demo's first start)",
                        lock.display()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("create {}: {e}", lock.display()),
            }
        }
    }
}

impl Drop for StartLock {
    fn drop(&mut self) {
        if let Some(lock) = self.0.take() {
            let _ = std::fs::remove_dir(lock);
        }
    }
}

/// A running demo, killed on drop.
struct Demo {
    child: Child,
    url: String,
    output: Arc<Mutex<String>>,
}

impl Demo {
    fn start(binary: &Path, runtime: &str) -> Demo {
        let _lock = StartLock::acquire();
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--runtime", runtime])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(String::new()));
        // Both pipes are drained for good (a full pipe would stall the demo);
        // stdout lines also go to `lines`, to find the address.
        let (lines, first_lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let out = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                out.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines.send(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let err = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                err.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let mut demo = Demo {
            child,
            url: String::new(),
            output,
        };
        let deadline = Instant::now() + DEMO_START;
        let suffix = format!(" ({runtime})");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match first_lines.recv_timeout(left) {
                Ok(line) => {
                    let url = line
                        .strip_prefix("Switchboard demo on ")
                        .and_then(|rest| rest.strip_suffix(&suffix));
                    if let Some(url) = url {
                        demo.url = url.to_string();
                        return demo;
                    }
                }
                Err(error) => {
                    let exit = match error {
                        // Its stdout closed: it exited.
                        mpsc::RecvTimeoutError::Disconnected => {
                            let status = demo.child.wait();
                            std::thread::sleep(Duration::from_millis(200));
                            format!("it exited ({status:?})")
                        }
                        mpsc::RecvTimeoutError::Timeout => format!("none within {DEMO_START:?}"),
                    };
                    panic!(
                        "the demo ({runtime}) printed no `Switchboard demo on http://ADDR/ \
                         ({runtime})` line: {exit}\n--- demo output ---\n{}",
                        demo.output()
                    )
                }
            }
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser_run(runtime: &str, transport: &str) {
    let Some(binary) = prerequisites() else {
        return;
    };
    let started = Instant::now();
    let mut demo = Demo::start(&binary, runtime);
    let artifacts = peers::workspace_root().join("artifacts").join("browser");
    let mut cmd = Command::new("node");
    cmd.arg(
        peers::workspace_root()
            .join("tests")
            .join("browser")
            .join("demo.mjs"),
    )
    .args(["--url", &demo.url, "--transport", transport])
    .args(["--runtime", runtime])
    .arg("--chromium")
    .arg(chromium())
    .arg("--artifacts")
    .arg(&artifacts)
    .current_dir(peers::interop_dir());
    let (ok, output) = run_peer(cmd, SCRIPT_TIMEOUT);
    let exited = demo.child.try_wait().ok().flatten();
    println!("{output}");
    assert!(
        ok && exited.is_none(),
        "browser run {runtime}/{transport} against {} failed (demo exited: {exited:?}):\n\
         {output}\n--- demo output ---\n{}",
        demo.url,
        demo.output()
    );
    assert!(
        output.contains("\"result\":\"pass\""),
        "no pass line from demo.mjs:\n{output}"
    );
    println!(
        "browser {runtime}/{transport}: passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

macro_rules! per_runtime {
    ($($module:ident => $runtime:literal),* $(,)?) => {
        $(
            mod $module {
                #[test]
                fn default_transports() {
                    super::browser_run($runtime, "default")
                }

                #[test]
                fn websocket_only() {
                    super::browser_run($runtime, "websocket")
                }

                #[test]
                fn polling_only() {
                    super::browser_run($runtime, "polling")
                }
            }
        )*
    };
}

per_runtime! {
    tokio => "tokio",
    smol => "smol",
    async_std => "async-std",
    threads => "threads",
}
