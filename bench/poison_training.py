#!/usr/bin/env python3
"""Seconds to train the poisoning challenge's model: riposte's Rust trainer
(`cargo bench -p riposte-eval --bench poison_training`) next to the numpy
reference of challenges/mnist-poison-flip/build/poisoning.py on the same data
(1,000 clean digits + 60 flipped threes, 150 epochs), in the same run.

Usage: python bench/poison_training.py [--runs 5]   (numpy; see docs/BENCHMARKS.md)
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLE = os.path.join(ROOT, "challenges", "mnist-poison-flip")
sys.path.insert(0, os.path.join(BUNDLE, "build"))
import poisoning as P  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    load = lambda rel: np.load(os.path.join(BUNDLE, rel))  # noqa: E731
    tx, ty = load("public/train_x.npy"), load("public/train_y.npy")
    ex, ey = load("public/eval_x.npy"), load("public/eval_y.npy")
    base = load("public/base_x.npy")
    xs = np.concatenate([tx, base[:60]])
    ys = np.concatenate([ty, np.full(60, 8)])
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        model = P.train(xs, ys, 150, 0.1, 0.001)
        clean = float((P.predict(model, ex) == ey).mean())
        hit = int((P.predict(model, base) == 8).sum())
        times.append(time.perf_counter() - t0)
    numpy_s = sorted(times)[len(times) // 2]
    out = subprocess.run(["cargo", "bench", "--locked", "-p", "riposte-eval", "--bench", "poison_training",
                          "--", "--json", "--runs", str(args.runs)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rust = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    print("| runner | seconds | clean accuracy | base threes read as 8 | vs numpy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| numpy {np.__version__} (float64, BLAS) | {numpy_s:.3f} | {clean:.3f} | {hit} | 1.00 |")
    print(f"| {rust['runner']} | {rust['seconds']:.3f} | {rust['clean_accuracy']:.3f} | "
          f"{rust['base_threes_as_8']} | {numpy_s / rust['seconds']:.2f} |")


if __name__ == "__main__":
    main()
