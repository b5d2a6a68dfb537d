#!/usr/bin/env bash
# Runs every Switchboard benchmark against its peers and keeps the results
# under benches/results/ (see BENCHMARKS.md). About 25 minutes on 2 cores.
# Loopback only; each load case is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=benches/results
mkdir -p "$out"

echo "== decode (criterion)"
cargo bench -p switchboard-bench --bench decode
python3 benches/scripts/decode-summary.py target/criterion | tee "$out/decode.txt"
echo "== Engine.IO timer index (criterion)"
cargo bench -p switchboard-bench --bench eio_timer 2>&1 | grep -E '^engineio|time:' | tee "$out/eio-timer.txt"
echo "== Engine.IO hub, one shard against eight (criterion)"
cargo bench -p switchboard-bench --bench eio_hub 2>&1 | grep -E '^engineio|time:' | tee "$out/eio-hub.txt"

cargo build --release -p switchboard-bench
echo "== echo load"
target/release/loadgen load --rounds 5 --json "$out/load.json" | tee "$out/load.txt"
echo "== idle memory"
target/release/loadgen idle all --connections 5000 --json "$out/idle.json" | tee "$out/idle.txt"
echo "== Engine.IO echo load"
target/release/loadgen eio --rounds 5 \
    --cases websocket/1,websocket/64,polling/1,polling/64,websocket-deflate/64 \
    --json "$out/eio-load.json" | tee "$out/eio-load.txt"
echo "== Engine.IO idle memory"
target/release/loadgen eio-idle --sessions 5000 --json "$out/eio-idle.json" | tee "$out/eio-idle.txt"
target/release/loadgen eio-idle --transports websocket-deflate --sessions 1000 \
    --json "$out/eio-idle-deflate.json" | tee "$out/eio-idle-deflate.txt"
