#!/usr/bin/env python3
"""Starter for "Fool the digit reader" (mnist-evasion), attack track.

Downloads the white-box MLP weights and the 1,000 eval images, runs FGSM
(or PGD with --steps N) against the MLP with plain numpy, checks the result
stays inside the threat model (L-inf <= 0.3 around each original, pixels in
[0,1]), saves adv.npy and submits it to the Riposte server, then waits for the
score.

    pip install <server>/clients/riposte-client.zip               # the Riposte client; it brings numpy
    python starter.py --username alice --password '...'          # FGSM, submit
    python starter.py --token "$RIPOSTE_TOKEN" --steps 40         # PGD-40, submit
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

SLUG = "mnist-evasion"
EPS = 0.3


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


def attack(layers, x, y, eps, steps, alpha, seed=0):
    """steps == 0: FGSM  x' = clip(x + eps * sign(grad), 0, 1).
    steps > 0: PGD from a random start, each step x' <- Proj(x' + alpha * sign(grad))."""
    if steps == 0:
        g, _ = loss_grad(layers, x, y)
        return np.clip(x + eps * np.sign(g), 0.0, 1.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    xa = np.clip(x + rng.uniform(-eps, eps, x.shape), 0.0, 1.0).astype(np.float32)
    for _ in range(steps):
        g, _ = loss_grad(layers, xa, y)
        xa = xa + alpha * np.sign(g)
        xa = np.clip(np.clip(xa, x - eps, x + eps), 0.0, 1.0).astype(np.float32)
    return xa


def project_strict(adv, x, eps):
    """Clip into the eps-ball and [0,1] so that the budget holds exactly: x - 0.3
    and x + 0.3 rounded to float32 can fall just outside the ball, so use the
    float32 bounds that lie inside it (exact even if the server computes
    |x_adv - x| in float64)."""
    x64 = x.astype(np.float64)
    lo = (x64 - eps).astype(np.float32)
    lo = np.where(lo.astype(np.float64) < x64 - eps, np.nextafter(lo, np.float32(np.inf)), lo)
    hi = (x64 + eps).astype(np.float32)
    hi = np.where(hi.astype(np.float64) > x64 + eps, np.nextafter(hi, np.float32(-np.inf)), hi)
    return np.clip(np.clip(adv, lo, hi), 0.0, 1.0).astype(np.float32)


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
    ap = argparse.ArgumentParser(description="FGSM/PGD starter for the mnist-evasion challenge")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--out", default="adv.npy", help="where to write the adversarial images")
    ap.add_argument("--eps", type=float, default=EPS, help="L-inf budget (the challenge allows 0.3)")
    ap.add_argument("--steps", type=int, default=0, help="0 = FGSM; N > 0 = PGD with N steps")
    ap.add_argument("--alpha", type=float, default=0.01, help="PGD step size")
    ap.add_argument("--local-dir", help="read mlp_weights.npz, eval_x.npy, eval_y.npy from this folder")
    ap.add_argument("--no-submit", action="store_true", help="only write the .npy, do not upload")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    if args.eps > EPS + 1e-9:
        die(f"--eps {args.eps} exceeds the challenge budget {EPS}; the evaluator would reject it")

    need_server = not args.local_dir or not args.no_submit
    rp = connect(args) if need_server else None

    layers = load_mlp(fetch(rp, args, "mlp_weights.npz"))
    x = fetch(rp, args, "eval_x.npy").astype(np.float32)
    y = fetch(rp, args, "eval_y.npy").astype(np.int64)
    print(f"eval set: {x.shape} {x.dtype}, labels {y.shape}")

    clean = forward(layers, x)[0].argmax(1)
    print(f"MLP clean accuracy: {(clean == y).mean():.3f}")

    t0 = time.time()
    adv = attack(layers, x, y, args.eps, args.steps, args.alpha)
    adv = project_strict(adv, x, args.eps)
    name = "FGSM" if args.steps == 0 else f"PGD-{args.steps}"

    # the evaluator checks these; so do we
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert np.isfinite(adv).all() and adv.min() >= 0.0 and adv.max() <= 1.0
    linf = float(np.abs(adv.astype(np.float64) - x.astype(np.float64)).max())
    assert linf <= args.eps, linf

    pred = forward(layers, adv)[0].argmax(1)
    print(f"{name} eps {args.eps}: L-inf {linf:.4f}, local fool rate on the MLP "
          f"{(pred != y).mean():.3f} ({time.time() - t0:.1f}s)")
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
