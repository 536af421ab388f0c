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

    pip install numpy requests
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --out scores.csv
    python starter.py --username alice --password '...' --no-submit
"""
import argparse
import io
import os
import sys
import time

import numpy as np

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
    """Probabilities [n,10] for a float32 batch [n,1,28,28]; waits when rate-limited."""
    requests = api(args)
    # float32 -> float64 -> JSON is exact: the server reads back the same float32 pixels
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
    probs = np.asarray(answer["probabilities"], dtype=np.float64)
    if probs.shape != (len(batch), 10):
        die(f"unexpected answer shape {probs.shape}")
    return probs, answer.get("queries_remaining")


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
    ap = argparse.ArgumentParser(description="loss-attack starter for the mnist-membership challenge")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--out", default="scores.npy", help="where to write the scores (.npy, or .csv)")
    ap.add_argument("--no-submit", action="store_true", help="only write the scores, do not upload")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")

    token = get_token(args)
    x = np.load(io.BytesIO(fetch(args, "candidates_x.npy", token))).astype(np.float32)
    y = np.load(io.BytesIO(fetch(args, "candidates_y.npy", token))).astype(np.int64)
    if x.shape[1:] != (1, 28, 28) or len(y) != len(x):
        die(f"unexpected candidate files: {x.shape}, {y.shape}")
    print(f"candidates: {x.shape} {x.dtype}, labels {y.shape}")

    t0 = time.time()
    probs = np.zeros((len(x), 10))
    remaining = None
    for i in range(0, len(x), BATCH):
        probs[i:i + BATCH], remaining = query(args, token, x[i:i + BATCH])
    print(f"queried the target with {len(x)} candidates ({time.time() - t0:.1f}s); {remaining} queries left")
    print(f"target accuracy on the candidates: {(probs.argmax(1) == y).mean():.3f}")

    scores = membership_scores(probs, y)
    print(f"scores: min {scores.min():.4f}, median {np.median(scores):.4f}, max {scores.max():.4f}; "
          f"{int((scores >= 0.9999).sum())} candidates at >= 0.9999")
    write_scores(args.out, scores)
    print(f"wrote {args.out}")
    if args.no_submit:
        return
    submit(args, token, args.out)


if __name__ == "__main__":
    main()
