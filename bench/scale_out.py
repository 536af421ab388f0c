#!/usr/bin/env python3
"""Scaling out, measured: scored submissions per minute with 1, 2 and 4
`riposte worker` processes, and upload throughput into S3-compatible storage
(moto's server) against a local folder.

Everything real: one `riposte serve` (no in-process worker) on PostgreSQL, the
workers in their own processes and folders, attacks uploaded through the API
with the Python client (clients/python), scoring by the sandboxed model hosts.

    python bench/scale_out.py --bin target/release/riposte \\
        --s3 /var/cache/riposte-moto-venv/bin/moto_server --jobs 40 --workers 1 2 4

Needs PostgreSQL at --postgres (a server URL; a database per run is made and
dropped), psql, and the client (pip install ./clients/python).
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import riposte

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long bench password"
SLUG = "mnist-evasion"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """Processes started in their own groups, killed (with their model hosts) at the end."""

    def __init__(self, root):
        self.root = Path(root)
        self.children = []

    def start(self, name, args, env):
        log = open(self.root / f"{name}.log", "w")
        child = subprocess.Popen(args, env=env, stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.children.append(child)
        return child

    def log(self, name):
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop(self):
        for child in self.children:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
        self.children = []


def psql(url, sql):
    return subprocess.run(["psql", url, "-Atc", sql], check=True,
                          capture_output=True, text=True).stdout.strip()


def settings_env(database, blob_store, s3):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIPOSTE__")}
    env.update({
        "RIPOSTE__DATABASE_URL": database,
        "RIPOSTE__BLOB_STORE": blob_store,
        "RIPOSTE__WORKERS": "0",
        "RIPOSTE__CHALLENGES_DIR": str(ROOT / "challenges"),
        "RIPOSTE__AUTH_ATTEMPTS_PER_IP_PER_MINUTE": "1000",
        "RUST_LOG": "warn",
    })
    if s3:
        env.update({"AWS_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
                    "AWS_ALLOW_HTTP": "true"})
    return env


def wait_listening(fleet, name, timeout=300):
    start = time.time()
    while time.time() - start < timeout:
        for line in fleet.log(name).splitlines():
            if line.startswith("Riposte is listening on "):
                return line.split("on ", 1)[1].strip()
        time.sleep(0.1)
    sys.exit(f"{name} did not start:\n{fleet.log(name)}")


def one_run(args, tmp, fleet, s3, workers, blob_store, upload_only=False):
    """Returns (uploads MB/s, jobs, seconds to score them or None)."""
    name = f"riposte_bench_{workers}_{int(time.time() * 1000) % 10**8}"
    psql(args.postgres, f"CREATE DATABASE {name}")
    database = args.postgres.rsplit("/", 1)[0] + "/" + name
    try:
        run = Path(tempfile.mkdtemp(dir=tmp))
        env = settings_env(database, blob_store, s3)
        fleet.start("web", [args.bin, "serve", "--bind", "127.0.0.1:0",
                            "--data-dir", str(run / "web")], env)
        base = wait_listening(fleet, "web")
        users = [f"bench{i}" for i in range((args.jobs + 19) // 20)]
        for user in users:
            subprocess.run([args.bin, "admin", "create-user", user, "--data-dir", str(run / "cli")],
                           env={**env, "RIPOSTE_PASSWORD": PASSWORD}, check=True,
                           capture_output=True)
        clients = [riposte.Client(base).login(u, PASSWORD) for u in users]
        clean = clients[0].load(SLUG, "eval_x.npy")
        rng = np.random.default_rng(0)
        files = []
        for _ in range(args.jobs):
            adv = np.clip(clean + rng.uniform(-0.1, 0.1, clean.shape), 0, 1).astype(np.float32)
            files.append(riposte.npy_bytes(adv))
        start = time.time()
        for i, body in enumerate(files):
            clients[i // 20].submit(SLUG, body, filename="adv.npy")
        upload_seconds = time.time() - start
        mb = sum(len(b) for b in files) / 1e6
        if upload_only:
            return mb / upload_seconds, args.jobs, None
        start = time.time()
        for w in range(workers):
            fleet.start(f"worker{w}", [args.bin, "worker", "--workers", "1",
                                       "--data-dir", str(run / f"worker{w}")], env)
        while True:
            done = int(psql(database, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"))
            failed = int(psql(database, "SELECT COUNT(*) FROM jobs WHERE state = 'failed'"))
            if done + failed >= args.jobs:
                break
            if time.time() - start > 1800:
                sys.exit("scoring took more than 30 minutes")
            time.sleep(0.2)
        return mb / upload_seconds, done, time.time() - start
    finally:
        fleet.stop()
        psql(args.postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=str(ROOT / "target/release/riposte"))
    p.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/test")
    p.add_argument("--s3", help="an S3-compatible server program (moto_server)")
    p.add_argument("--jobs", type=int, default=40)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="riposte-bench-")
    fleet = Fleet(tmp)
    s3_proc, s3 = None, None
    try:
        if args.s3:
            port = free_port()
            s3_log = open(Path(tmp) / "s3.log", "w")
            s3_proc = subprocess.Popen([args.s3, "-H", "127.0.0.1", "-p", str(port)],
                                       stdout=s3_log, stderr=s3_log, start_new_session=True)
            s3 = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(urllib.request.Request(f"{s3}/bench", method="PUT"))
                    break
                except OSError:
                    time.sleep(0.2)
        print(f"{args.jobs} attack uploads of {SLUG} (3.1 MB each), one web process on PostgreSQL")
        print("| blob store | upload MB/s |")
        print("| --- | ---: |")
        for label, store in [("local folder", ""), ("S3 (moto server)", "s3://bench/uploads")]:
            if store.startswith("s3") and not s3:
                continue
            mbps, _, _ = one_run(args, tmp, fleet, s3, 0, store, upload_only=True)
            print(f"| {label} | {mbps:.1f} |", flush=True)
        store = "s3://bench/scoring" if s3 else ""
        print()
        print("| workers | jobs | seconds | scored per minute |")
        print("| ---: | ---: | ---: | ---: |")
        for n in args.workers:
            _, done, seconds = one_run(args, tmp, fleet, s3, n, store)
            print(f"| {n} | {done} | {seconds:.1f} | {done / seconds * 60:.0f} |", flush=True)
    finally:
        fleet.stop()
        if s3_proc:
            os.killpg(s3_proc.pid, signal.SIGKILL)
            s3_proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
