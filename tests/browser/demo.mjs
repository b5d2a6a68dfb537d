#!/usr/bin/env node
// Drives the Switchboard demo page (examples/demo) in headless Chromium with
// playwright-core, two pages at once, and checks what a user would see:
//
//   - both pages connect with the requested Socket.IO transport (and, in the
//     default mode, upgrade from polling to websocket);
//   - both join room "r1" and chat through it, each seeing the other's line;
//   - page A starts the background job: its progress steps 1..10 arrive one
//     by one, spread over the job's run (window.progressLog timestamps), while
//     page B (same room) sees none of them;
//   - the raw WebSocket echo panel echoes a message;
//   - the live client count shows at least 2.
//
// Usage:
//   node tests/browser/demo.mjs --url http://127.0.0.1:3000/ \
//     [--transport default|websocket|polling] [--runtime NAME] \
//     [--artifacts DIR] [--chromium /usr/bin/chromium] [--timeout-ms 30000]
//
// Prints one JSON object per line (a line per check, then a summary) and
// saves a screenshot of each page as DIR/<runtime>-<transport>-<a|b>.png
// (DIR defaults to artifacts/browser at the workspace root), also on failure.
// Exits 0 when every check passed, 1 on a failed check, 2 on bad usage.
//
// playwright-core is resolved from tests/interop/node_modules (installed by
// scripts/install-peers.sh), or else through NODE_PATH. It never downloads a
// browser: it runs Debian's chromium at /usr/bin/chromium.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");

// Flags from the machine notes: without the background-networking ones,
// Chromium keeps trying to reach Google's hosts from a closed network.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

const JOB_STEPS = 10;
const MIN_DISTINCT_ARRIVALS = 5;
const MIN_SPAN_MS = 1500;

function usage(message) {
  console.error(`demo.mjs: ${message}`);
  console.error(
    "usage: node tests/browser/demo.mjs --url URL [--transport default|websocket|polling]" +
      " [--runtime NAME] [--artifacts DIR] [--chromium PATH] [--timeout-ms MS]",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    url: null,
    transport: "default",
    runtime: "unknown",
    artifacts: join(ROOT, "artifacts", "browser"),
    chromium: process.env.CHROMIUM || "/usr/bin/chromium",
    timeoutMs: 30000,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${flag} needs a value`);
    switch (flag) {
      case "--url": opts.url = value; break;
      case "--transport": opts.transport = value; break;
      case "--runtime": opts.runtime = value; break;
      case "--artifacts": opts.artifacts = resolve(value); break;
      case "--chromium": opts.chromium = value; break;
      case "--timeout-ms": opts.timeoutMs = Number(value); break;
      default: usage(`unknown flag ${flag}`);
    }
  }
  if (!opts.url) usage("--url is required");
  if (!["default", "websocket", "polling"].includes(opts.transport)) {
    usage(`unknown transport ${opts.transport}`);
  }
  if (!(opts.timeoutMs > 0)) usage("--timeout-ms must be a positive number");
  return opts;
}

function loadPlaywright() {
  const attempts = [
    createRequire(join(ROOT, "tests", "interop", "package.json")),
    createRequire(import.meta.url), // honours NODE_PATH
  ];
  for (const require of attempts) {
    try {
      return require("playwright-core");
    } catch (error) {
      if (error.code !== "MODULE_NOT_FOUND") throw error;
    }
  }
  console.error(
    "demo.mjs: cannot find playwright-core (run scripts/install-peers.sh, or set NODE_PATH)",
  );
  process.exit(1);
}

const opts = parseArgs(process.argv.slice(2));
const { chromium } = loadPlaywright();
const started = Date.now();
const base = { runtime: opts.runtime, transport: opts.transport };
const emit = (fields) => console.log(JSON.stringify({ ...base, ...fields }));

class CheckFailed extends Error {}

// Playwright's messages carry terminal colours.
// eslint-disable-next-line no-control-regex
const plain = (message) => message.replace(/\u001b\[[0-9;]*m/g, "");

// Runs one named check, printing its outcome; a failure ends the run.
async function check(name, body) {
  const t0 = Date.now();
  try {
    const detail = await body();
    emit({ check: name, ok: true, ms: Date.now() - t0, ...(detail ?? {}) });
  } catch (error) {
    const message = plain(error instanceof CheckFailed ? error.message : String(error?.stack ?? error));
    emit({ check: name, ok: false, ms: Date.now() - t0, error: message });
    throw new CheckFailed(`${name}: ${message}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

const text = (page, id) => page.locator(`#${id}`).textContent();

// Waits until `#id`'s text satisfies `predicate`, failing with the last text
// seen (a stuck page is easier to diagnose than a bare timeout).
async function waitText(page, id, predicate, what, timeout = opts.timeoutMs) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await text(page, id);
    if (predicate(last)) return last;
    if (Date.now() > deadline) {
      throw new CheckFailed(`${what}: #${id} is ${JSON.stringify(last)} after ${timeout} ms`);
    }
    await page.waitForTimeout(50);
  }
}

const pageUrl = (() => {
  const url = new URL(opts.url);
  if (opts.transport !== "default") url.searchParams.set("transport", opts.transport);
  return url.toString();
})();

const nonce = Math.random().toString(36).slice(2, 8);
let browser;
const pages = {};
const pageErrors = [];
let failure = null;

try {
  await check("launch", async () => {
    browser = await chromium.launch({
      executablePath: opts.chromium,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: opts.timeoutMs,
    });
    return { browser: browser.version() };
  });

  await check("open-pages", async () => {
    // One context per page: two independent visitors, arriving together.
    const open = async (name) => {
      const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
      const page = await context.newPage();
      page.setDefaultTimeout(opts.timeoutMs);
      page.on("pageerror", (error) => pageErrors.push(`${name}: ${error.message}`));
      pages[name] = page;
      const response = await page.goto(pageUrl, { waitUntil: "load" });
      expect(response?.ok(), `page ${name}: GET ${pageUrl} answered ${response?.status()}`);
    };
    await Promise.all(["a", "b"].map(open));
    return { url: pageUrl };
  });

  const wantTransport = opts.transport === "polling" ? "polling" : "websocket";
  await check("transport", async () => {
    const seen = {};
    for (const [name, page] of Object.entries(pages)) {
      seen[name] = await waitText(
        page,
        "transport",
        (t) => t === wantTransport,
        `page ${name} transport (want ${wantTransport})`,
      );
      // The server's `welcome` (emitted by its connect handler) may come
      // in a later poll than the connection itself.
      const runtime = await waitText(page, "runtime", (t) => t !== "?", `page ${name} welcome`);
      if (opts.runtime !== "unknown") {
        expect(runtime === opts.runtime, `page ${name} says runtime ${runtime}, want ${opts.runtime}`);
      }
    }
    return { seen };
  });

  await check("join-room", async () => {
    const join = async ([name, page]) => {
      await page.locator("#room").fill("r1");
      await page.locator("#join").click();
      await waitText(page, "current-room", (t) => t === "r1", `page ${name} joining r1`);
    };
    await Promise.all(Object.entries(pages).map(join));
  });

  // The job runs while the rest is checked: its steps must keep arriving on
  // their own schedule whatever else the page does.
  const jobClicked = Date.now();
  await pages.a.locator("#start-job").click();

  await check("chat", async () => {
    const lines = { a: `hello from a ${nonce}`, b: `hello from b ${nonce}` };
    for (const [from, to] of [["a", "b"], ["b", "a"]]) {
      await pages[from].locator("#text").fill(lines[from]);
      await pages[from].locator("#send").click();
      await waitText(
        pages[to],
        "messages",
        (t) => t.includes(lines[from]),
        `page ${to} waiting for page ${from}'s chat line`,
      );
    }
    // Each page also sees its own line (the room includes the sender). It
    // comes over the sender's own transport, independently of the other
    // page's copy (over polling, with the sender's next poll), so wait.
    for (const name of ["a", "b"]) {
      await waitText(
        pages[name],
        "messages",
        (t) => t.includes(lines[name]),
        `page ${name} waiting for its own chat line`,
      );
    }
  });

  await check("echo", async () => {
    const page = pages.a;
    const message = `echo ${nonce}`;
    await waitText(page, "echo-log", (t) => t.includes("(open)"), "raw WebSocket opening");
    await page.locator("#echo-text").fill(message);
    await page.locator("#echo-send").click();
    await waitText(page, "echo-log", (t) => t.includes(`echo: ${message}`), "the echo");
  });

  await check("clients", async () => {
    const counts = {};
    for (const [name, page] of Object.entries(pages)) {
      counts[name] = Number(
        await waitText(page, "clients", (t) => Number(t) >= 2, `page ${name} client count`),
      );
    }
    return { counts };
  });

  await check("job-progress", async () => {
    const page = pages.a;
    await page.waitForFunction(
      (steps) => window.progressLog.some((p) => p.step === steps),
      JOB_STEPS,
      { timeout: opts.timeoutMs, polling: 50 },
    );
    const log = await page.evaluate(() => window.progressLog);
    const steps = log.map((p) => p.step);
    const want = Array.from({ length: JOB_STEPS }, (_, i) => i + 1);
    expect(
      JSON.stringify(steps) === JSON.stringify(want),
      `steps arrived as ${JSON.stringify(steps)}, want ${JSON.stringify(want)}`,
    );
    const at = log.map((p) => p.at);
    for (let i = 1; i < at.length; i++) {
      expect(at[i] >= at[i - 1], `arrival times go backwards: ${JSON.stringify(at)}`);
    }
    const distinct = new Set(at).size;
    const span = at[at.length - 1] - at[0];
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(
      distinct >= MIN_DISTINCT_ARRIVALS,
      `only ${distinct} distinct arrival times (want >= ${MIN_DISTINCT_ARRIVALS}): gaps ${JSON.stringify(gaps)} ms`,
    );
    expect(
      span >= MIN_SPAN_MS,
      `steps arrived within ${span} ms (want >= ${MIN_SPAN_MS} ms): gaps ${JSON.stringify(gaps)} ms`,
    );
    // What the user sees: a full bar and the last step.
    const bar = await page.evaluate(() => ({
      value: document.getElementById("progress").value,
      max: document.getElementById("progress").max,
    }));
    expect(bar.value === JOB_STEPS && bar.max === JOB_STEPS, `progress bar is ${JSON.stringify(bar)}`);
    expect((await text(page, "step")) === String(JOB_STEPS), "#step does not show the last step");
    return {
      distinct,
      span_ms: span,
      gaps_ms: gaps,
      first_after_click_ms: at[0] - jobClicked,
    };
  });

  await check("job-private", async () => {
    // Give a stray broadcast time to land before looking.
    await pages.b.waitForTimeout(300);
    const b = await pages.b.evaluate(() => ({
      log: window.progressLog,
      value: document.getElementById("progress").value,
      step: document.getElementById("step").textContent,
    }));
    expect(b.log.length === 0, `page b received progress: ${JSON.stringify(b.log)}`);
    expect(b.value === 0 && b.step === "0", `page b's progress shows ${b.value} (step ${b.step})`);
  });

  await check("transport-after", async () => {
    // Nothing downgraded or dropped during the run.
    const seen = {};
    for (const [name, page] of Object.entries(pages)) {
      seen[name] = await text(page, "transport");
      expect(seen[name] === wantTransport, `page ${name} ended on ${seen[name]}, want ${wantTransport}`);
    }
    return { seen };
  });

  await check("page-errors", async () => {
    expect(pageErrors.length === 0, `uncaught errors in the pages: ${pageErrors.join("; ")}`);
  });
} catch (error) {
  failure = plain(error instanceof CheckFailed ? error.message : String(error?.stack ?? error));
}

// Screenshots of whatever state the pages reached, pass or fail.
const screenshots = [];
if (Object.keys(pages).length > 0) {
  mkdirSync(opts.artifacts, { recursive: true });
  for (const [name, page] of Object.entries(pages)) {
    const path = join(opts.artifacts, `${opts.runtime}-${opts.transport}-${name}.png`);
    try {
      await page.screenshot({ path, fullPage: true, timeout: 10000 });
      screenshots.push(path);
    } catch (error) {
      emit({ check: `screenshot-${name}`, ok: false, error: String(error?.message ?? error) });
    }
  }
}
await browser?.close().catch(() => {});

emit({
  result: failure ? "fail" : "pass",
  ms: Date.now() - started,
  screenshots,
  ...(failure ? { error: failure } : {}),
});
if (failure) {
  console.error(`demo.mjs: ${opts.runtime}/${opts.transport}: FAILED: ${failure}`);
  process.exit(1);
}
