#!/usr/bin/env python3
"""Starter for "Plant a backdoor" (mnist-backdoor), attack track.

The BadNets recipe on a small budget, to show the method (it stops short of a
strong score: using the 25 digits well is the challenge). This script

  1. logs in and downloads trigger.npy, base_x.npy and the clean sets;
  2. stamps the trigger on the first N base digits (N = 10 by default) and
     labels them 0;
  3. trains the same model locally (softmax regression, the evaluator's
     settings) and prints the clean accuracy and the share of stamped eval
     digits (not zeros) it reads as 0, a stand-in for the hidden targets;
  4. writes poison.npz (x, y), submits it and prints the score.

    pip install numpy requests
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --stamped 25 --no-submit
"""
import argparse
import io
import os
import sys
import time

import numpy as np

SLUG = "mnist-backdoor"
TARGET = 0
EPOCHS, LR, L2 = 150, 0.1, 0.001


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ the attack

def train(x, y, classes=10):
    """The evaluator's model: softmax regression, full-batch gradient descent."""
    x = x.reshape(len(x), -1).astype(np.float64)
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(EPOCHS):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(x)
        w -= LR * (x.T @ g + L2 * w)
        b -= LR * g.sum(0)
    return lambda inputs: (inputs.reshape(len(inputs), -1).astype(np.float64) @ w + b).argmax(1)


def stamp(x, trigger):
    """The trigger's pixels set to white."""
    return np.where(trigger > 0, np.float32(1.0), x).astype(np.float32)


def poison(base, trigger, n):
    """The first `n` base digits with the trigger, labelled 0."""
    return stamp(base[:n], trigger), np.full(n, TARGET, dtype=np.int64)


# ------------------------------------------------------------------ server

def requests_module():
    try:
        import requests
    except ImportError:
        die("this needs the 'requests' package: pip install requests")
    return requests


def get_token(args):
    if args.token:
        return args.token
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password")
    r = requests_module().post(f"{args.url}/api/v1/auth/token",
                               json={"username": args.username, "password": args.password,
                                     "name": "starter"}, timeout=30)
    if r.status_code != 200:
        die(f"login failed: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()["token"]


def fetch(args, token, name):
    r = requests_module().get(f"{args.url}/api/v1/challenges/{SLUG}/files/{name}",
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if r.status_code != 200:
        die(f"download of {name} failed: HTTP {r.status_code}: {r.text[:300]}")
    return np.load(io.BytesIO(r.content))


def submit(args, token, path):
    requests = requests_module()
    headers = {"Authorization": f"Bearer {token}"}
    with open(path, "rb") as f:
        r = requests.post(f"{args.url}/api/v1/challenges/{SLUG}/submissions", headers=headers,
                          data={"track": "attack"},
                          files={"file": ("poison.npz", f, "application/octet-stream")}, timeout=120)
    if r.status_code not in (200, 201, 202):
        die(f"upload failed: HTTP {r.status_code}: {r.text[:500]}")
    sid = r.json()["id"]
    print(f"submitted: id {sid}; waiting for the evaluator ...")
    deadline = time.time() + 240
    while True:
        r = requests.get(f"{args.url}/api/v1/submissions/{sid}", headers=headers, timeout=30)
        if r.status_code != 200:
            die(f"status check failed: HTTP {r.status_code}: {r.text[:300]}")
        sub = r.json()
        if sub.get("status") in ("scored", "rejected", "failed"):
            break
        if time.time() > deadline:
            die(f"submission {sid} still '{sub.get('status')}' after 240 s; check it on the website")
        time.sleep(1)
    if sub["status"] != "scored":
        die(f"submission {sid} {sub['status']}: {sub.get('message') or sub}")
    print(f"submission {sid} scored ({sub.get('split', '?')} split): {sub.get('message', '')}")
    if isinstance(sub.get("metrics"), dict):
        print("  " + "  ".join(f"{k} {v:.4f}" for k, v in sub["metrics"].items()
                               if isinstance(v, float)))


def main():
    ap = argparse.ArgumentParser(description="backdoor starter for mnist-backdoor")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--stamped", type=int, default=10, help="how many stamped digits to send (1 to 25)")
    ap.add_argument("--out", default="poison.npz")
    ap.add_argument("--no-submit", action="store_true", help="only write the poison, do not upload")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    if not 1 <= args.stamped <= 25:
        die("--stamped must be 1 to 25")

    token = get_token(args)
    trigger = fetch(args, token, "trigger.npy")
    base = fetch(args, token, "base_x.npy")
    train_x, train_y = fetch(args, token, "train_x.npy"), fetch(args, token, "train_y.npy")
    eval_x, eval_y = fetch(args, token, "eval_x.npy"), fetch(args, token, "eval_y.npy")
    print(f"base digits {base.shape}, clean training set {train_x.shape}, eval set {eval_x.shape}")

    x, y = poison(base, trigger, args.stamped)
    t0 = time.time()
    model = train(np.concatenate([train_x, x]), np.concatenate([train_y, y]))
    clean = (model(eval_x) == eval_y).mean()
    others = eval_x[eval_y != TARGET]
    obeys = (model(stamp(others, trigger)) == TARGET).mean()
    print(f"locally ({time.time() - t0:.1f}s): clean accuracy {clean:.3f} (the gate is 0.80), "
          f"{obeys:.0%} of the stamped eval digits read as 0")
    np.savez(args.out, x=x, y=y)
    print(f"wrote {args.out}: x {x.shape}, y {y.shape}")
    if not args.no_submit:
        submit(args, token, args.out)


if __name__ == "__main__":
    main()
