#!/usr/bin/env python3
"""Starter for "Members by their labels" (mnist-membership-labels), attack track.

The target answers with its predicted label only, so there is no confidence to
threshold. This script shows the two classic label-only attacks on a small
budget and stops short of a strong score:

  1. the gap attack (Yeom et al. 2018): a candidate the target labels
     correctly is called a member; one query each. The target is right on
     most non-members too, so this scores ~0 at a 10% false-positive rate;
  2. noise robustness (Choquette-Choo et al., "Label-Only Membership
     Inference Attacks", ICML 2021): query COPIES noisy copies of each
     candidate (Gaussian, std SIGMA) and score it by how many the target
     still labels correctly. Training members sit farther from the decision
     boundary, so they survive more noise.

    pip install <server>/clients/riposte-client.zip               # the Riposte client; it brings numpy
    python starter.py --username alice --password '...'           # 4 copies
    python starter.py --token "$RIPOSTE_TOKEN" --copies 10 --sigma 0.3 --no-submit

Your budget is 20,000 queries (20 per candidate): choose the copies, the
noise (Gaussian? shifts? flips?) and the score with care.
"""
import argparse
import os
import sys
import time

import numpy as np

try:
    import riposte
except ImportError:
    sys.exit("this starter needs the Riposte client: pip install riposte-client from this server (see its API page: pip install <server>/clients/riposte-client.zip) or from the repository: pip install ./clients/python")

SLUG = "mnist-membership-labels"
TARGET = "target"
BATCH = 100


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ the attack

def robustness_scores(correct_counts, copies):
    """Share of the noisy copies (plus the clean one) the target still labels
    correctly. Higher = more likely a member."""
    return (np.asarray(correct_counts, dtype=np.float64) / (copies + 1)).astype(np.float32)


def write_scores(path, scores):
    if path.endswith(".csv"):
        with open(path, "w") as f:
            f.write("score\n")
            f.writelines(f"{float(s):.6g}\n" for s in scores)
    else:
        with open(path, "wb") as f:   # np.save would append .npy to other names
            np.save(f, np.ascontiguousarray(scores, dtype="<f4"))


# ------------------------------------------------------------------ server

def connect(args):
    """A client with --token, or logged in with --username and --password
    (its token is named "starter": each run replaces the previous run's)."""
    if args.token:
        return riposte.Client(args.url, token=args.token)
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password "
            "(or RIPOSTE_USERNAME / RIPOSTE_PASSWORD)")
    return riposte.Client(args.url).login(args.username, args.password, name="starter")


def report(sub):
    """What the evaluator measured."""
    print(f"submission {sub['id']} scored ({sub.get('split', '?')} split):")
    fmt = lambda d: "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"  # noqa: E731
                              for k, v in d.items() if k not in ("target", "kind"))
    results = sub.get("results") or []
    for res in results:
        print(f"  {res.get('target', '?'):>20}  {res.get('kind', ''):>8}  {fmt(res)}")
    if isinstance(sub.get("metrics"), dict):
        print(f"  {fmt(sub['metrics'])}")
    if sub.get("queries_used") is not None:
        print(f"  queries used: {sub['queries_used']}")
    if not results and not sub.get("metrics"):
        print("  (no results in the answer)", sub)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description="label-only membership starter for mnist-membership-labels")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--copies", type=int, default=4, help="noisy copies per candidate (0: gap attack only)")
    ap.add_argument("--sigma", type=float, default=0.2, help="std of the Gaussian noise")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="scores.npy", help="where to write the scores (.npy, or .csv)")
    ap.add_argument("--no-submit", action="store_true", help="only write the scores, do not upload")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    if not 0 <= args.copies <= 19:
        die("--copies must be 0 to 19 (the budget is 20 queries per candidate)")

    rp = connect(args)
    x = rp.load(SLUG, "candidates_x.npy").astype(np.float32)
    y = rp.load(SLUG, "candidates_y.npy").astype(np.int64)
    print(f"candidates: {x.shape} {x.dtype}, labels {y.shape}")
    rng = np.random.default_rng(args.seed)
    correct = np.zeros(len(x), dtype=np.int64)
    t0 = time.time()
    for copy in range(args.copies + 1):
        noisy = x if copy == 0 else np.clip(x + rng.normal(0, args.sigma, x.shape), 0, 1).astype(np.float32)
        labels = rp.query(SLUG, noisy, target=TARGET, batch_size=BATCH).labels   # 100 a request
        if labels.shape != (len(x),):
            die(f"unexpected answer shape {labels.shape}")
        correct += labels == y
        if copy == 0:
            print(f"gap attack: the target labels {(correct == 1).mean():.1%} of the candidates correctly")
    print(f"queried {len(x) * (args.copies + 1)} times ({time.time() - t0:.1f}s); {rp.budget_left} queries left")
    scores = robustness_scores(correct, args.copies)
    print(f"scores: {np.unique(scores).size} distinct values from {scores.min():.2f} to {scores.max():.2f}")
    write_scores(args.out, scores)
    print(f"wrote {args.out}")
    if args.no_submit:
        return
    name = "scores.csv" if args.out.endswith(".csv") else "scores.npy"
    sub = rp.submit(SLUG, args.out, track="attack", filename=name)
    print(f"submitted: id {sub.id}; waiting for the evaluator ...")
    report(sub.wait(timeout=120))


if __name__ == "__main__":
    try:
        main()
    except riposte.RiposteError as e:   # refused by the server: its reason, no traceback
        die(e)
