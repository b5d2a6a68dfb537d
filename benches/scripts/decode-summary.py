#!/usr/bin/env python3
"""Summarises the last `cargo bench -p switchboard-bench --bench decode` run
from criterion's estimates: throughput (median) of each contender and its
ratio to memcpy and to the peers measured in the same run.

Usage: python3 benches/scripts/decode-summary.py [target/criterion]
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
CONTENDERS = ["memcpy", "switchboard", "tungstenite", "fastwebsockets"]
groups = sorted(d for d in os.listdir(root) if d.startswith("decode_"))
print(f"{'case':<14} {'contender':<15} {'median':>12} {'GiB/s':>8} {'vs memcpy':>9} {'vs tungst':>9} {'vs fastws':>9}")
for group in groups:
    case = group[len("decode_"):]
    gib = {}
    median_ns = {}
    for name in CONTENDERS:
        base = os.path.join(root, group, name, "new")
        try:
            est = json.load(open(os.path.join(base, "estimates.json")))
            bench = json.load(open(os.path.join(base, "benchmark.json")))
        except FileNotFoundError:
            continue
        ns = est["median"]["point_estimate"]
        nbytes = bench["throughput"]["Bytes"]
        median_ns[name] = ns
        gib[name] = nbytes / (ns * 1e-9) / (1 << 30)
    for name in CONTENDERS:
        if name not in gib:
            continue
        def ratio(peer):
            return f"{gib[name] / gib[peer]:.2f}x" if peer in gib else "-"
        t = median_ns[name]
        t_s = f"{t / 1000:.2f} us" if t >= 1000 else f"{t:.0f} ns"
        print(f"{case:<14} {name:<15} {t_s:>12} {gib[name]:>8.2f} {ratio('memcpy'):>9} {ratio('tungstenite'):>9} {ratio('fastwebsockets'):>9}")
