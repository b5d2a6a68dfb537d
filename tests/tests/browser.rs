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
//! `bad_input_and_restart` (per runtime) drives one page with a script of
//! its own (`RESTART_SCRIPT`): HTML in room names and chat lines stays text,
//! an overlong chat line is cut, bad room names are refused, a socket runs
//! one job at a time; then the demo is killed mid-job and started again on
//! the same address, and the page must get back to its room, its chat and
//! its echo, with no error in its console.
//!
//! The demo binary is built by `scripts/test.sh` before the tests run
//! (`cargo build --example demo --all-features`, `--release` works too); this
//! test runs the newest of `target/{release,debug}/examples/demo` (or
//! `$SWITCHBOARD_DEMO`).
//! Under `CI=true` anything missing (the binary, node, playwright-core,
//! chromium) is a failure; elsewhere the test is skipped loudly.

use std::io::{BufRead, BufReader, Read, Write};
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
    /// Starts the demo on `listen` (`127.0.0.1:0` for a free port).
    fn start(binary: &Path, runtime: &str, listen: &str) -> Demo {
        let _lock = StartLock::acquire();
        let mut child = Command::new(binary)
            .args(["--listen", listen, "--runtime", runtime])
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
    let mut demo = Demo::start(&binary, runtime, "127.0.0.1:0");
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

/// The script of [`restart_run`], run by node in `tests/interop` (where
/// playwright-core is): one page, in the default transport mode, through
/// what a user may throw at the demo, then a restart of the server.
///
/// Arguments: the page's URL, the chromium binary, a timeout in ms for each
/// wait. It prints one JSON line per check and a last `result` line; it
/// prints `{"restart":true}` when the server is to be restarted, and reads
/// a line on stdin once it has been.
const RESTART_SCRIPT: &str = r##"
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(`${process.cwd()}/package.json`);
const { chromium } = require("playwright-core");
const [url, chromiumPath, timeoutArg] = process.argv.slice(1);
const timeoutMs = Number(timeoutArg);
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const emit = (fields) => console.log(JSON.stringify(fields));
const nonce = Math.random().toString(36).slice(2, 8);

class CheckFailed extends Error {}
const expect = (condition, message) => {
  if (!condition) throw new CheckFailed(message);
};
async function check(name, body) {
  try {
    emit({ check: name, ok: true, ...((await body()) ?? {}) });
  } catch (error) {
    emit({ check: name, ok: false, error: String(error?.message ?? error) });
    throw error;
  }
}

let page;
// Waits until `#id`'s text satisfies `predicate`, failing with the last text.
async function waitText(id, predicate, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await page.locator(`#${id}`).textContent();
    if (predicate(text)) return text;
    if (Date.now() > deadline) {
      throw new CheckFailed(`${what}: #${id} is ${JSON.stringify(text.slice(-300))} after ${timeoutMs} ms`);
    }
    await page.waitForTimeout(50);
  }
}
const lines = (id) => page.$$eval(`#${id} div`, (divs) => divs.map((d) => d.textContent));

// Console errors and uncaught exceptions, all but the refused connections
// the page meets while the server is down.
const errors = [];
let serverDown = false;
const refused = /net::ERR_|WebSocket connection to .* failed/;

let browser;
let failure = null;
try {
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    timeout: timeoutMs,
  });
  page = await browser.newPage();
  page.setDefaultTimeout(timeoutMs);
  page.on("console", (message) => {
    if (message.type() === "error" && !(serverDown && refused.test(message.text()))) {
      errors.push(`console: ${message.text()} (${message.location()?.url ?? "?"})`);
    }
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));

  await check("load", async () => {
    const response = await page.goto(url, { waitUntil: "load" });
    expect(response?.ok(), `GET ${url} answered ${response?.status()}`);
    await waitText("transport", (t) => t === "websocket", "connecting");
    await waitText("runtime", (t) => t !== "?", "the welcome");
    await waitText("echo-log", (t) => t.includes("(open)"), "the raw WebSocket opening");
  });

  await check("html-is-text", async () => {
    const room = "<b>room</b>";
    await page.locator("#room").fill(room);
    await page.locator("#join").click();
    await waitText("current-room", (t) => t === room, "joining a room named with HTML");
    const line = `<img src=x onerror="window.injected=1"> ${nonce}`;
    await page.locator("#text").fill(line);
    await page.locator("#send").click();
    await waitText("messages", (t) => t.includes(line), "a chat line of HTML");
    const elements = await page.$$eval("#current-room *, #messages div *", (e) => e.length);
    expect(elements === 0, `${elements} elements made of the room name or the chat line`);
    expect(await page.evaluate(() => window.injected === undefined), "the chat line's script ran");
  });

  await check("long-chat-line", async () => {
    // Past the input's maxlength, as a script or devtools would.
    await page.evaluate(() => { document.getElementById("text").value = "y".repeat(100000); });
    await page.locator("#send").click();
    await waitText("messages", (t) => t.includes("yyyy"), "the long chat line");
    const line = (await lines("messages")).find((l) => l.includes("yyyy"));
    expect(line.endsWith(`: ${"y".repeat(500)}…`), `the line is ${line.length} characters long, want 500 and an ellipsis`);
  });

  await check("bad-room-names", async () => {
    for (const [name, want] of [["   ", "needs a name"], ["r".repeat(5000), "at most"]]) {
      // The long one past the input's maxlength, as a script would.
      await page.evaluate((name) => { document.getElementById("room").value = name; }, name);
      await page.locator("#join").click();
      await waitText("join-error", (t) => t.includes(want), `joining a room named ${name.length} characters`);
      const room = await page.locator("#current-room").textContent();
      expect(room === "<b>room</b>", `a refused join moved the page to ${JSON.stringify(room.slice(0, 40))}`);
    }
    await page.locator("#room").fill("r2");
    await page.locator("#join").click();
    await waitText("current-room", (t) => t === "r2", "joining r2");
    await waitText("join-error", (t) => t === "", "the error going away");
  });

  await check("one-job-at-a-time", async () => {
    await page.locator("#start-job").click();
    expect(await page.locator("#start-job").isDisabled(), "the start button is enabled while the job runs");
    await page.waitForFunction(() => window.progressLog.length > 0, null, { timeout: timeoutMs });
    // The page's own Socket.IO client, as a second click would send it.
    const answer = await page.evaluate(() => socket.timeout(5000).emitWithAck("start-job"));
    expect(answer?.started === false, `a second job while one runs: ${JSON.stringify(answer)}`);
  });

  // The server goes away mid-job and comes back on the same address.
  serverDown = true;
  emit({ restart: true });
  const restarted = await stdin.next();
  expect(!restarted.done, "no answer to the restart");

  await check("reconnect-after-restart", async () => {
    await waitText("messages", (t) => t.includes("rejoined r2"), "the page back in room r2");
    await waitText("transport", (t) => t === "websocket", "reconnecting");
    await waitText("current-room", (t) => t === "r2", "the room shown after reconnecting");
    const job = await page.locator("#job-state").textContent();
    expect(job.startsWith("interrupted"), `the job cut short by the restart shows ${JSON.stringify(job)}`);
    expect(!(await page.locator("#start-job").isDisabled()), "the start button stays disabled");
    await waitText("echo-log", (t) => t.split("(open)").length > 2, "the raw WebSocket opening again");
    serverDown = false;
    const line = `back ${nonce}`;
    await page.locator("#text").fill(line);
    await page.locator("#send").click();
    await waitText("messages", (t) => t.includes(line), "a chat line after the restart");
    await page.locator("#echo-text").fill(`echo ${nonce}`);
    await page.locator("#echo-send").click();
    await waitText("echo-log", (t) => t.includes(`echo: echo ${nonce}`), "the echo after the restart");
  });

  await check("console-errors", async () => {
    expect(errors.length === 0, errors.join("; "));
  });
} catch (error) {
  failure = String(error?.message ?? error);
}
await browser?.close().catch(() => {});
emit({ result: failure ? "fail" : "pass", ...(failure ? { error: failure } : {}) });
process.exit(failure ? 1 : 0);
"##;

/// The script's node process, killed on drop (with its browser) should the
/// test panic while it runs.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo on `runtime` in a real browser through bad input (HTML, an
/// overlong chat line, bad room names, a second job), then restarted under
/// a connected page: the page must be back in its room, chatting, echoing
/// and not showing a job that died with the old server as running, with no
/// error in its console (the refused connections while the server is down
/// aside).
fn restart_run(runtime: &str) {
    let Some(binary) = prerequisites() else {
        return;
    };
    let mut demo = Demo::start(&binary, runtime, "127.0.0.1:0");
    let url = demo.url.clone();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut node = Command::new("node")
        .args(["--input-type=module", "-e", RESTART_SCRIPT, "--", &url])
        .arg(chromium())
        .arg("30000")
        .current_dir(peers::interop_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Script)
        .expect("spawn node");
    let node = &mut node.0;
    let output = Arc::new(Mutex::new(String::new()));
    let (lines, script_lines) = mpsc::channel();
    let stdout = node.stdout.take().expect("stdout");
    let out = Arc::clone(&output);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            out.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = lines.send(line);
        }
    });
    let mut stderr = node.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdin = node.stdin.take();
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let mut restarts = 0;
    let finished = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match script_lines.recv_timeout(left) {
            Ok(line) if line == r#"{"restart":true}"# => {
                drop(demo);
                demo = Demo::start(&binary, runtime, &addr);
                restarts += 1;
                if let Some(stdin) = stdin.as_mut() {
                    let _ = stdin.write_all(b"restarted\n");
                }
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break true,
            Err(mpsc::RecvTimeoutError::Timeout) => break false,
        }
    };
    drop(stdin);
    if !finished {
        let _ = node.kill();
    }
    let status = node.wait().expect("wait for node");
    let output = format!(
        "{}{}",
        output.lock().unwrap(),
        errors.join().unwrap_or_default()
    );
    println!("{output}");
    assert!(
        finished && status.success() && output.contains(r#""result":"pass""#),
        "browser restart run {runtime} failed ({}, {status}, {restarts} restart(s)):\n{output}\n\
         --- demo output (since the last start) ---\n{}",
        if finished { "finished" } else { "timed out" },
        demo.output()
    );
    assert_eq!(restarts, 1, "the script asked for {restarts} restarts");
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

                #[test]
                fn bad_input_and_restart() {
                    super::restart_run($runtime)
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
