#!/usr/bin/env bash
# Socket.IO benchmark: Switchboard (tokio, smol) against socketioxide and
# Node socket.io 4 (tests/interop/node_modules), in the same run. See the
# "Socket.IO" section of BENCHMARKS.md. Extra arguments go to `sio-bench run`
# (e.g. --rounds 5 --secs 3 --impls tokio,socketioxide --idle 5000).
set -euo pipefail
cd "$(dirname "$0")/../.."

busy() { pgrep -ax loadgen || pgrep -ax sio-bench || true; }
while [ -n "$(busy)" ]; do
    echo "waiting for another benchmark to finish:"; busy
    sleep 30
done
uptime
test -d tests/interop/node_modules/socket.io || {
    echo "tests/interop/node_modules/socket.io missing (npm ci in tests/interop)" >&2
    exit 1
}
cargo build --release -p switchboard-bench --bin sio-bench
mkdir -p benches/results
target/release/sio-bench run --rounds 3 --secs 2 --idle 5000 \
    --json benches/results/sio.json "$@" | tee benches/results/sio.md
