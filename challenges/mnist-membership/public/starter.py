#!/usr/bin/env python3
"""Starter for "Was this digit in the training set?" (mnist-membership), attack track.

The target is a digit classifier you can only query. Half of the 1,000
candidate digits were in its training set. This script runs the classic
loss-threshold attack (Yeom et al. 2018):

  1. logs in and downloads candidates_x.npy / candidates_y.npy;
  2. queries the target with every candidate, 100 per request (1,000 of your
     5,000 queries), and gets back 10 probabilities per digit (4 decimals);
  3. scores each candidate by the probability the target gives its true label:
     models are more confident on what they were trained on, so a higher score
     means "more likely a member";
  4. writes the 1,000 scores (float32 .npy, or CSV when --out ends in .csv),
     submits them and prints the result (TPR at FPR <= 10%, AUC).

    pip install <server>/clients/riposte-client.zip   # the Riposte client; it brings numpy
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --out scores.csv
    python starter.py --username alice --password '...' --no-submit
"""
import argparse
import os
import sys
import time

import numpy as np

try:
    import riposte
except ImportError:
    if __name__ == "__main__":
        sys.exit("this starter needs the Riposte client: pip install riposte-client from this server (see its API page: pip install <server>/clients/riposte-client.zip) or from the repository: pip install ./clients/python")
    riposte = None   # imported by build/build.py for the attack alone: no server, no client

SLUG = "mnist-membership"
TARGET = "target"
BATCH = 100


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ the attack

def membership_scores(probs, labels):
    """Loss attack: the probability of the true label (= exp(-cross-entropy)).
    Higher = more likely a member."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs[np.arange(len(labels)), labels].astype(np.float32)


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
    ap = argparse.ArgumentParser(description="loss-attack starter for the mnist-membership challenge")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--out", default="scores.npy", help="where to write the scores (.npy, or .csv)")
    ap.add_argument("--no-submit", action="store_true", help="only write the scores, do not upload")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")

    rp = connect(args)
    x = rp.load(SLUG, "candidates_x.npy").astype(np.float32)
    y = rp.load(SLUG, "candidates_y.npy").astype(np.int64)
    if x.shape[1:] != (1, 28, 28) or len(y) != len(x):
        die(f"unexpected candidate files: {x.shape}, {y.shape}")
    print(f"candidates: {x.shape} {x.dtype}, labels {y.shape}")

    t0 = time.time()
    answer = rp.query(SLUG, x, target=TARGET, batch_size=BATCH)   # 100 candidates a request
    probs = answer.probabilities
    if probs is None or probs.shape != (len(x), 10):
        die(f"unexpected answer: probabilities {None if probs is None else probs.shape}")
    print(f"queried the target with {len(x)} candidates ({time.time() - t0:.1f}s); "
          f"{answer.queries_remaining} queries left")
    print(f"target accuracy on the candidates: {(probs.argmax(1) == y).mean():.3f}")

    scores = membership_scores(probs, y)
    print(f"scores: min {scores.min():.4f}, median {np.median(scores):.4f}, max {scores.max():.4f}; "
          f"{int((scores >= 0.9999).sum())} candidates at >= 0.9999")
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
