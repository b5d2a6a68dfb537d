#!/usr/bin/env bash
# Runs the load benchmarks twice: with the guest's halt polling as the
# machine has it, then with Linux's default (guest_halt_poll_ns = 200000),
# and puts the setting back. It measures how much of each one-connection
# figure is a halted vCPU's wake-up rather than a server's work (see
# BENCHMARKS.md, "Halt polling"). Needs root on a KVM guest whose cpuidle
# governor is haltpoll; results in benches/results/haltpoll/. About 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
param=/sys/module/haltpoll/parameters/guest_halt_poll_ns
if [ ! -w "$param" ]; then
    echo "haltpoll.sh: $param is missing or not writable (root on a haltpoll guest needed)" >&2
    exit 1
fi
original=$(cat "$param")
trap 'echo "$original" > "$param"' EXIT
out=benches/results/haltpoll
mkdir -p "$out"
cargo build --release -p switchboard-bench --bins
scripts/install-peers.sh node

for ns in "$original" 200000; do
    echo "$ns" > "$param"
    echo "== guest_halt_poll_ns=$ns"
    target/release/loadgen load --rounds 3 --json "$out/load-$ns.json" | tee "$out/load-$ns.txt"
    target/release/loadgen eio --rounds 2 \
        --impls switchboard-tokio,switchboard-smol,engineioxide \
        --cases websocket/1,websocket/64,polling/1,polling/64 \
        --json "$out/eio-load-$ns.json" | tee "$out/eio-load-$ns.txt"
    target/release/sio-bench run --rounds 3 --secs 2 --cases ack,broadcast \
        --json "$out/sio-$ns.json" | tee "$out/sio-$ns.md"
done
