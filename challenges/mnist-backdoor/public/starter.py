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

    pip install <server>/clients/riposte-client.zip   # the Riposte client; it brings numpy
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --stamped 25 --no-submit
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

def connect(args):
    """A client with --token, or logged in with --username and --password
    (its token is named "starter": each run replaces the previous run's)."""
    if args.token:
        return riposte.Client(args.url, token=args.token)
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password")
    return riposte.Client(args.url).login(args.username, args.password, name="starter")


def report(sub):
    """What the evaluator measured."""
    print(f"submission {sub['id']} scored ({sub.get('split', '?')} split): {sub.get('message', '')}")
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

    rp = connect(args)
    trigger = rp.load(SLUG, "trigger.npy")
    base = rp.load(SLUG, "base_x.npy")
    train_x, train_y = rp.load(SLUG, "train_x.npy"), rp.load(SLUG, "train_y.npy")
    eval_x, eval_y = rp.load(SLUG, "eval_x.npy"), rp.load(SLUG, "eval_y.npy")
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
        sub = rp.submit(SLUG, args.out, track="attack", filename="poison.npz")
        print(f"submitted: id {sub.id}; waiting for the evaluator ...")
        report(sub.wait(timeout=240))


if __name__ == "__main__":
    try:
        main()
    except riposte.RiposteError as e:   # refused by the server: its reason, no traceback
        die(e)
