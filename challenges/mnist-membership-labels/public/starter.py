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

    pip install numpy requests
    python starter.py --username alice --password '...'           # 4 copies
    python starter.py --token "$RIPOSTE_TOKEN" --copies 10 --sigma 0.3 --no-submit

Your budget is 20,000 queries (20 per candidate): choose the copies, the
noise (Gaussian? shifts? flips?) and the score with care.
"""
import argparse
import io
import os
import sys
import time

import numpy as np

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

def api(args):
    try:
        import requests
    except ImportError:
        die("this needs the 'requests' package: pip install requests")
    return requests


def get_token(args):
    if args.token:
        return args.token
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password "
            "(or RIPOSTE_USERNAME / RIPOSTE_PASSWORD)")
    requests = api(args)
    r = requests.post(f"{args.url}/api/v1/auth/token",
                      json={"username": args.username, "password": args.password,
                            "name": "starter"},  # replaces the previous run's token
                      timeout=30)
    if r.status_code != 200:
        die(f"login failed: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()["token"]


def fetch(args, name, token):
    requests = api(args)
    r = requests.get(f"{args.url}/api/v1/challenges/{SLUG}/files/{name}",
                     headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if r.status_code != 200:
        die(f"download of {name} failed: HTTP {r.status_code}: {r.text[:300]}")
    return r.content


def query(args, token, batch):
    """Predicted labels [n] for a float32 batch [n,1,28,28]; waits when rate-limited."""
    requests = api(args)
    body = {"inputs": batch.reshape(len(batch), -1).astype(np.float64).tolist(), "target": TARGET}
    for _ in range(10):
        r = requests.post(f"{args.url}/api/v1/challenges/{SLUG}/query", json=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=120)
        if r.status_code == 429 and "budget" not in r.text:
            time.sleep(float(r.headers.get("Retry-After", "1")))
            continue
        break
    if r.status_code != 200:
        die(f"query failed: HTTP {r.status_code}: {r.text[:300]}")
    answer = r.json()
    labels = np.asarray(answer["labels"], dtype=np.int64)
    if labels.shape != (len(batch),):
        die(f"unexpected answer shape {labels.shape}")
    return labels, answer.get("queries_remaining")


def submit(args, token, path):
    requests = api(args)
    headers = {"Authorization": f"Bearer {token}"}
    name = "scores.csv" if path.endswith(".csv") else "scores.npy"
    with open(path, "rb") as f:
        r = requests.post(f"{args.url}/api/v1/challenges/{SLUG}/submissions", headers=headers,
                          data={"track": "attack"},
                          files={"file": (name, f, "application/octet-stream")},
                          timeout=120)
    if r.status_code not in (200, 201, 202):
        die(f"upload failed: HTTP {r.status_code}: {r.text[:500]}")
    sid = r.json()["id"]
    print(f"submitted: id {sid}; waiting for the evaluator ...")
    deadline = time.time() + 120
    while True:
        r = requests.get(f"{args.url}/api/v1/submissions/{sid}", headers=headers, timeout=30)
        if r.status_code != 200:
            die(f"status check failed: HTTP {r.status_code}: {r.text[:300]}")
        sub = r.json()
        status = sub.get("status")
        if status in ("scored", "rejected", "failed"):
            break
        if time.time() > deadline:
            die(f"submission {sid} still '{status}' after 120 s; check it later on the website")
        time.sleep(1)
    if status != "scored":
        reason = sub.get("reason") or sub.get("error") or sub.get("message") or sub
        die(f"submission {sid} {status}: {reason}")
    print(f"submission {sid} scored ({sub.get('split', '?')} split):")
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

    token = get_token(args)
    x = np.load(io.BytesIO(fetch(args, "candidates_x.npy", token))).astype(np.float32)
    y = np.load(io.BytesIO(fetch(args, "candidates_y.npy", token))).astype(np.int64)
    print(f"candidates: {x.shape} {x.dtype}, labels {y.shape}")
    rng = np.random.default_rng(args.seed)
    correct = np.zeros(len(x), dtype=np.int64)
    remaining = None
    t0 = time.time()
    for copy in range(args.copies + 1):
        noisy = x if copy == 0 else np.clip(x + rng.normal(0, args.sigma, x.shape), 0, 1).astype(np.float32)
        for i in range(0, len(x), BATCH):
            labels, remaining = query(args, token, noisy[i:i + BATCH])
            correct[i:i + BATCH] += labels == y[i:i + BATCH]
        if copy == 0:
            print(f"gap attack: the target labels {(correct == 1).mean():.1%} of the candidates correctly")
    print(f"queried {len(x) * (args.copies + 1)} times ({time.time() - t0:.1f}s); {remaining} queries left")
    scores = robustness_scores(correct, args.copies)
    print(f"scores: {np.unique(scores).size} distinct values from {scores.min():.2f} to {scores.max():.2f}")
    write_scores(args.out, scores)
    print(f"wrote {args.out}")
    if args.no_submit:
        return
    submit(args, token, args.out)


if __name__ == "__main__":
    main()
