#!/usr/bin/env python3
"""The background battery never holds up scoring, measured: attack latency
(upload to scored, through a real `riposte serve` on SQLite with one in-process
worker) with the defenses' batteries off, and with them on and running when the
attacks arrive.

Each run: three teams enter `baseline_defense.onnx` (made distinct by an appended
doc string, as real entries are), which queues three batteries; then attacks
are uploaded one after another while the batteries wait or run, and each
attack's latency is taken. With batteries on, the worker is inside a battery
when an attack arrives: the battery stops at its next check (at most a second)
and the attack is scored; the battery's record says it was cut short.

    python bench/battery_queue.py --bin target/release/riposte --attacks 10

Needs the Python client (pip install ./clients/python).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import riposte

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_out import Fleet, ROOT, PASSWORD, SLUG, wait_listening  # noqa: E402


def distinct(model_bytes, k):
    """The same ONNX model with a different doc_string (field 6 of ModelProto)."""
    text = f"bench entry {k}".encode()
    return model_bytes + bytes([0x32, len(text)]) + text


def one_run(args, tmp, battery_max):
    fleet = Fleet(tmp)
    run = Path(tempfile.mkdtemp(dir=tmp))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIPOSTE__")}
    env.update({
        "RIPOSTE__WORKERS": "1",
        "RIPOSTE__CHALLENGES_DIR": str(ROOT / "challenges"),
        "RIPOSTE__AUTH_ATTEMPTS_PER_IP_PER_MINUTE": "1000",
        "RIPOSTE__REFERENCE_ATTACK_EXAMPLES": "10",
        "RIPOSTE__REFERENCE_ATTACK_QUERIES": "10",
        "RIPOSTE__BATTERY_MAX_QUERIES": str(battery_max),
        "RUST_LOG": "warn",
    })
    try:
        fleet.start("web", [args.bin, "serve", "--bind", "127.0.0.1:0", "--data-dir", str(run)], env)
        base = wait_listening(fleet, "web")
        users = [f"team{i}" for i in range(4)]
        for user in users:
            subprocess.run([args.bin, "admin", "create-user", user, "--data-dir", str(run)],
                           env={**env, "RIPOSTE_PASSWORD": PASSWORD}, check=True, capture_output=True)
        clients = [riposte.Client(base).login(u, PASSWORD) for u in users]
        model = (ROOT / "challenges/mnist-evasion/public/baseline_defense.onnx").read_bytes()
        for k, c in enumerate(clients[:3]):
            c.submit(SLUG, distinct(model, k), filename="defense.onnx", track="defense").wait(timeout=600)
        clean = clients[3].load(SLUG, "eval_x.npy")
        rng = np.random.default_rng(0)
        latencies = []
        for _ in range(args.attacks):
            adv = np.clip(clean + rng.uniform(-0.1, 0.1, clean.shape), 0, 1).astype(np.float32)
            start = time.time()
            clients[3].submit(SLUG, riposte.npy_bytes(adv), filename="adv.npy").wait(timeout=600)
            latencies.append(time.time() - start)
            time.sleep(args.gap)
        return latencies
    finally:
        fleet.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=str(ROOT / "target/release/riposte"))
    p.add_argument("--attacks", type=int, default=3, help="attacks in a row (each cuts one waiting battery short)")
    p.add_argument("--gap", type=float, default=2.0, help="seconds between attacks (the next battery starts)")
    p.add_argument("--battery", type=int, default=1000, help="battery queries per example when on")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, cap in [("batteries off", 0), (f"batteries on ({args.battery} queries)", args.battery)]:
            lat = one_run(args, tmp, cap)
            rows.append((label, statistics.median(lat), max(lat)))
        print("| setup | attacks | median s | max s |")
        print("| --- | ---: | ---: | ---: |")
        for label, med, worst in rows:
            print(f"| {label} | {args.attacks} | {med:.2f} | {worst:.2f} |")
        print(f"ratio of medians (on / off): {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
