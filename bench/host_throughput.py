#!/usr/bin/env python3
"""Model host throughput: images/s through riposte's sandboxed model host (IPC
included) next to onnxruntime on the same models, in one run.

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install -r bench/requirements.txt
    /tmp/bench-venv/bin/python bench/host_throughput.py [--seconds 3]

The Rust side is `cargo bench -p riposte-eval --bench host_throughput -- --json`;
this script runs it, measures onnxruntime on the same models and batch sizes just
before and just after it (counting the mean of the two), and prints a markdown
table (ratio = model host / onnxruntime with one thread) with the hosts' peak
resident memory and the load average before and after the run.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT / "challenges" / "mnist-evasion" / "public"
MODELS = ["mlp", "cnn"]
BATCHES = [1, 256]


def ort_rate(model: Path, x: np.ndarray, batch: int, threads: int, seconds: float) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feed = {name: np.ascontiguousarray(np.resize(x, (batch, 1, 28, 28)).astype(np.float32))}
    sess.run(None, feed)
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sess.run(None, feed)
        images += batch
    return images / (time.perf_counter() - start)


def ort_rates_all(x: np.ndarray, seconds: float) -> dict:
    return {
        (name, batch, threads): ort_rate(PUBLIC / f"{name}.onnx", x, batch, threads, seconds)
        for name in MODELS
        for batch in BATCHES
        for threads in (1, 0)
    }


def rust_rows(seconds: float) -> list[dict]:
    cmd = ["cargo", "bench", "-q", "-p", "riposte-eval", "--bench", "host_throughput", "--",
           "--json", "--seconds", str(seconds)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def tract_version() -> str:
    lock = (ROOT / "Cargo.lock").read_text()
    found = re.search(r'name = "tract-onnx"\nversion = "([^"]+)"', lock)
    return found.group(1) if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per row")
    args = parser.parse_args()

    # onnxruntime runs before and after the Rust side and counts as the mean of the
    # two, so a load that changes during the run weighs on both sides alike.
    x = np.load(PUBLIC / "eval_x.npy")
    load_before = os.getloadavg()
    before = ort_rates_all(x, args.seconds)
    rows = rust_rows(args.seconds)
    after = ort_rates_all(x, args.seconds)
    ort_rates = {key: (before[key] + after[key]) / 2 for key in before}

    load_after = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: tract-onnx {tract_version()}, onnxruntime {ort.__version__}, "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs, {args.seconds:g} s per row, "
          f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| model | batch | runner | hosts | images/s | load ms | host peak RSS MiB | vs onnxruntime (1 thread) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in MODELS:
        for batch in BATCHES:
            base = ort_rates[(name, batch, 1)]
            spread = f" ({before[(name, batch, 1)]:,.0f} before, {after[(name, batch, 1)]:,.0f} after)"
            print(f"| {name} | {batch} | onnxruntime, 1 thread{spread} | 1 | {base:,.0f} | | | 1.00 |")
            default = ort_rates[(name, batch, 0)]
            print(f"| {name} | {batch} | onnxruntime, default threads | 1 | {default:,.0f} | | | {default / base:.2f} |")
            for r in rows:
                if r["model"] == name and r["batch"] == batch:
                    rss = f"{r['peak_rss_mib']:.1f}" if r.get("peak_rss_mib") else ""
                    print(f"| {name} | {batch} | {r['runner']} | {r['hosts']} | {r['images_per_s']:,.0f} "
                          f"| {r['load_ms']:.0f} | {rss} | {r['images_per_s'] / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
