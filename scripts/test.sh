#!/usr/bin/env bash
# Runs every test Switchboard has, installing what they need first (pinned
# Node and Python peers, Debian's chromium, Autobahn|Testsuite in a private
# Python 2.7).
#
#   scripts/test.sh           everything (CI runs this)
#   AUTOBAHN=quick scripts/test.sh    Autobahn without the 12.*/13.* compression cases
#   AUTOBAHN=off scripts/test.sh      skip Autobahn (not allowed when CI=true)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

AUTOBAHN=${AUTOBAHN:-full}
if [ "${CI:-}" = "true" ] && [ "$AUTOBAHN" = "off" ]; then
  echo "AUTOBAHN=off is not allowed in CI" >&2
  exit 1
fi

step "installing interop peers (npm ws/engine.io/socket.io/playwright-core, python websockets/socketio, chromium)"
scripts/install-peers.sh
if [ "$AUTOBAHN" != "off" ]; then
  step "installing Autobahn|Testsuite"
  scripts/autobahn/install.sh
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "the demo: building it for the browser tests, and its first start (npm ci)"
# tests/tests/browser.rs drives this binary in Chromium on every runtime. A
# debug build: it shares most of its dependencies with the tests' build below
# (under a minute on 2 cores, where --release would add several).
cargo build --example demo --all-features
demo_bin=${CARGO_TARGET_DIR:-target}/debug/examples/demo
mkdir -p .cache
demo_log=.cache/demo-first-start.log
"$demo_bin" --listen 127.0.0.1:0 >"$demo_log" 2>&1 &
demo_pid=$!
trap 'kill "$demo_pid" 2>/dev/null || true' EXIT
# Up to three minutes: the first start installs the page's Socket.IO client.
demo_url=""
for _ in $(seq 1800); do
  demo_url=$(sed -n 's|^Switchboard demo on \(http://[^ ]*\) .*|\1|p' "$demo_log")
  [ -n "$demo_url" ] && break
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 0.1
done
# shellcheck disable=SC2016 # JavaScript, not shell
if [ -z "$demo_url" ] || ! node -e '
  const base = process.argv[1];
  (async () => {
    for (const [path, want] of [["", "<title>Switchboard demo"], ["vendor/socket.io.min.js", "Socket.IO"]]) {
      const res = await fetch(base + path);
      const body = await res.text();
      if (!res.ok || !body.includes(want)) throw new Error(`GET ${base}${path}: ${res.status}`);
    }
  })().catch((e) => { console.error(e.message); process.exit(1); });' "$demo_url"; then
  cat "$demo_log" >&2
  echo "the demo did not start and serve its page" >&2
  exit 1
fi
kill "$demo_pid"
wait "$demo_pid" 2>/dev/null || true
trap - EXIT
echo "the demo served its page on $demo_url"

step "unit, conformance, interop and browser tests on every runtime"
cargo nextest run --workspace --no-fail-fast

step "doctests"
cargo test --workspace --doc

step "API docs (broken or redundant links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

if [ "$AUTOBAHN" != "off" ]; then
  step "Autobahn|Testsuite"
  cargo build --release -p switchboard-conformance --bins
  status=0
  # The whole suite (permessage-deflate included) on tokio, both roles at
  # once (wstest is single-threaded and slow: about ten minutes per full
  # run); the cases without 12.*/13.* on the other runtimes.
  quick=""
  [ "$AUTOBAHN" = "full" ] || quick="--quick"
  logs=.cache/autobahn/logs
  mkdir -p "$logs"
  scripts/autobahn/run.sh server tokio $quick >"$logs/server-tokio.txt" 2>&1 &
  server_pid=$!
  scripts/autobahn/run.sh client tokio $quick >"$logs/client-tokio.txt" 2>&1 &
  client_pid=$!
  wait "$server_pid" || status=1
  wait "$client_pid" || status=1
  cat "$logs/server-tokio.txt" "$logs/client-tokio.txt"
  for runtime in smol async-std threads; do
    for mode in server client; do
      scripts/autobahn/run.sh "$mode" "$runtime" --quick || status=1
    done
  done
  [ "$status" = 0 ] || { echo "Autobahn|Testsuite: some runs failed" >&2; exit 1; }
fi
echo "browser screenshots: artifacts/browser/"
echo "all tests passed"
