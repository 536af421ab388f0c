#!/usr/bin/env python3
"""Starter for "Make it read what you want" (mnist-targeted), attack track.

Downloads the white-box MLP weights, the 1,000 eval images and their target
classes, and takes ONE targeted gradient step per image against the MLP (the
fast gradient method in L2: move by 2.0 along the normalized gradient that
raises the target class). That is a baseline, not an answer: it reaches the
target on few digits. --steps N turns it into targeted PGD in L2; making it
work on both models (the CNN too) is the challenge. The result is checked to
stay inside the threat model (L2 <= 2.0 around each original, pixels in
[0,1]), saved as adv.npy and submitted.

    pip install <server>/clients/riposte-client.zip               # the Riposte client; it brings numpy
    python starter.py --username alice --password '...'          # one step, submit
    python starter.py --token "$RIPOSTE_TOKEN" --steps 50         # PGD-L2-50
    python starter.py --local-dir . --no-submit                   # offline, files on disk

The MLP (public/mlp_weights.npz, float32):
    h1     = relu(x.reshape(N, 784) @ W1 + b1)      W1 [784,512]  b1 [512]
    h2     = relu(h1 @ W2 + b2)                     W2 [512,256]  b2 [256]
    logits = h2 @ W3 + b3                           W3 [256,10]   b3 [10]
It computes exactly what public/mlp.onnx computes.
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

SLUG = "mnist-targeted"
EPS = 2.0


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ model

def load_mlp(z):
    """The layers from mlp_weights.npz, as a dict of arrays."""
    n = sum(1 for k in z if k.startswith("W"))
    return [(z[f"W{i}"].astype(np.float32), z[f"b{i}"].astype(np.float32)) for i in range(1, n + 1)]


def forward(layers, x):
    """Returns logits and the activations needed for the backward pass."""
    h = x.reshape(len(x), -1)
    acts = [h]
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
        acts.append(h)
    return h, acts


def loss_grad(layers, x, y):
    """Gradient of the cross-entropy loss w.r.t. the input image (backprop by hand)."""
    logits, acts = forward(layers, x)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d = p
    d[np.arange(len(y)), y] -= 1.0          # dL/dlogits for softmax + cross-entropy
    for i in range(len(layers) - 1, -1, -1):
        if i < len(layers) - 1:
            d = d * (acts[i + 1] > 0)        # ReLU passes gradient only where it was active
        d = d @ layers[i][0].T               # through the linear layer
    return d.reshape(x.shape), logits


def l2_normalize(g):
    n = np.sqrt((g.reshape(len(g), -1).astype(np.float64) ** 2).sum(1)).reshape(-1, 1, 1, 1)
    return (g / np.maximum(n, 1e-12)).astype(np.float32)


def project(adv, x, eps):
    """Into the L2 ball of radius eps around each x (a hair inside, so float
    rounding never crosses it), then into [0, 1]: clipping moves every pixel
    toward the box that holds x, so it never leaves the ball."""
    d = (adv - x).reshape(len(x), -1).astype(np.float64)
    n = np.sqrt((d ** 2).sum(1))
    scale = np.minimum(1.0, eps * (1 - 1e-6) / np.maximum(n, 1e-12)).reshape(-1, 1)
    return np.clip(x + (d * scale).reshape(x.shape), 0.0, 1.0).astype(np.float32)


def attack(layers, x, target, eps, steps, alpha):
    """steps == 0: one step x' = x - eps * g / |g|_2 with g the gradient of the
    cross-entropy *to the target class* (descending it raises the target).
    steps > 0: targeted PGD in L2 from x, steps of alpha * g / |g|_2."""
    if steps == 0:
        g, _ = loss_grad(layers, x, target)
        return project(x - eps * l2_normalize(g), x, eps)
    xa = x.copy()
    for _ in range(steps):
        g, _ = loss_grad(layers, xa, target)
        xa = project(xa - alpha * l2_normalize(g), x, eps)
    return xa


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


def fetch(rp, args, name):
    """A public file of the challenge as an array (.npz: a dict of arrays),
    read from --local-dir when given, else downloaded."""
    if not args.local_dir:
        return rp.load(SLUG, name)
    path = os.path.join(args.local_dir, name)
    if not os.path.exists(path):
        die(f"{path} not found")
    with open(path, "rb") as f:
        return riposte.parse_array_file(f.read(), name)


def report(sub):
    """The evaluator's verdict on each target model."""
    print(f"submission {sub['id']} scored:")
    results = sub.get("results") or []
    for res in results:
        print(f"  {res.get('target', '?'):>20}  {res.get('kind', ''):>8}  "
              f"fooled {res.get('fooled')}/{res.get('total')}  rate {float(res.get('rate', 0)):.3f}")
    if not results:
        print("  (no per-target results in the answer)", sub)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description="targeted L2 starter for the mnist-targeted challenge")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--out", default="adv.npy", help="where to write the adversarial images")
    ap.add_argument("--eps", type=float, default=EPS, help="L2 budget (the challenge allows 2.0)")
    ap.add_argument("--steps", type=int, default=0, help="0 = one step; N > 0 = targeted PGD-L2 with N steps")
    ap.add_argument("--alpha", type=float, default=0.2, help="PGD step size (L2)")
    ap.add_argument("--local-dir", help="read mlp_weights.npz, eval_x.npy, eval_targets.npy from this folder")
    ap.add_argument("--no-submit", action="store_true", help="only write the .npy, do not upload")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    if args.eps > EPS + 1e-9:
        die(f"--eps {args.eps} exceeds the challenge budget {EPS}; the evaluator would count those digits clean")

    need_server = not args.local_dir or not args.no_submit
    rp = connect(args) if need_server else None

    layers = load_mlp(fetch(rp, args, "mlp_weights.npz"))
    x = fetch(rp, args, "eval_x.npy").astype(np.float32)
    target = fetch(rp, args, "eval_targets.npy").astype(np.int64)
    print(f"eval set: {x.shape} {x.dtype}, target classes {target.shape}")

    t0 = time.time()
    adv = attack(layers, x, target, args.eps, args.steps, args.alpha)
    name = "one step" if args.steps == 0 else f"PGD-L2-{args.steps}"

    # the evaluator checks these; so do we
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert np.isfinite(adv).all() and adv.min() >= 0.0 and adv.max() <= 1.0
    l2 = np.sqrt(((adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1) ** 2).sum(1)).max()
    assert l2 <= args.eps, l2

    pred = forward(layers, adv)[0].argmax(1)
    print(f"{name} eps {args.eps}: max L2 {l2:.4f}, local targeted success on the MLP "
          f"{(pred == target).mean():.3f} ({time.time() - t0:.1f}s)")
    np.save(args.out, adv)
    print(f"wrote {args.out}")
    if args.no_submit:
        return
    sub = rp.submit(SLUG, args.out, track="attack")
    print(f"submitted: id {sub.id}; waiting for the evaluator ...")
    report(sub.wait(timeout=120))


if __name__ == "__main__":
    try:
        main()
    except riposte.RiposteError as e:   # refused by the server: its reason, no traceback
        die(e)
