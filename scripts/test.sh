#!/usr/bin/env bash
# Runs every test Switchboard has, installing what they need first (pinned
# Node and Python peers, Autobahn|Testsuite in a private Python 2.7).
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

step "installing interop peers (npm ws/engine.io/socket.io, python websockets/socketio)"
scripts/install-peers.sh
if [ "$AUTOBAHN" != "off" ]; then
  step "installing Autobahn|Testsuite"
  scripts/autobahn/install.sh
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "unit, conformance and interop tests on every runtime"
cargo nextest run --workspace --no-fail-fast

step "doctests"
cargo test --workspace --doc

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
echo "all tests passed"
