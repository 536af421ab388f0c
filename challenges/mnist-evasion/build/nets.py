"""Plain-numpy networks for the mnist-evasion bundle.

Everything is float32. Images are [N,1,28,28] in [0,1] at the interface; the
CNN works in NHWC internally (faster im2col) and permutes its last layer's rows
when it is exported to ONNX, whose Flatten sees NCHW (channel, row, column).
Each model has forward(x) -> (logits, cache) and backward(cache, dlogits,
need_dx) -> (grads, dx); params is a dict of named float32 arrays.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32


def he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32)


def softmax_xent(logits, y):
    """Mean cross-entropy and its gradient w.r.t. logits (of the mean)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    d = p
    d[np.arange(n), y] -= 1.0
    return float(loss), (d / n).astype(F32)


class MLP:
    """784 -> h1 -> h2 -> 10, ReLU.  logits = relu(relu(x@W1+b1)@W2+b2)@W3+b3,
    x = image flattened row-major ([N,784]); Wk has shape [in, out]."""

    def __init__(self, rng, sizes=(784, 256, 128, 10)):
        self.sizes = sizes
        self.params = {}
        for i in range(len(sizes) - 1):
            self.params[f"W{i+1}"] = he(rng, (sizes[i], sizes[i + 1]), sizes[i])
            self.params[f"b{i+1}"] = np.zeros(sizes[i + 1], F32)
        self.nlayers = len(sizes) - 1

    def forward(self, x):
        h = x.reshape(len(x), -1)
        acts = [h]
        for i in range(1, self.nlayers + 1):
            h = h @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.nlayers:
                h = np.maximum(h, 0)
            acts.append(h)
        return h, (x.shape, acts)

    def backward(self, cache, d, need_dx=False):
        shape, acts = cache
        g = {}
        for i in range(self.nlayers, 0, -1):
            if i < self.nlayers:
                d = d * (acts[i] > 0)
            g[f"W{i}"] = acts[i - 1].T @ d
            g[f"b{i}"] = d.sum(axis=0)
            if i > 1 or need_dx:
                d = d @ self.params[f"W{i}"].T
        return g, (d.reshape(shape) if need_dx else None)


def conv3x3_fwd(x, W, b):
    """x [N,H,W,C] NHWC, W [F,C,3,3] (ONNX layout), stride 1, pad 1."""
    n, h, w, c = x.shape
    f = W.shape[0]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = sliding_window_view(xp, (3, 3), axis=(1, 2)).reshape(n * h * w, c * 9)
    out = cols @ W.reshape(f, c * 9).T + b
    return out.reshape(n, h, w, f), cols


def conv3x3_bwd(dout, cols, W, xshape, need_dx):
    n, h, w, c = xshape
    f = W.shape[0]
    dm = dout.reshape(n * h * w, f)
    dW = (dm.T @ cols).reshape(W.shape)
    db = dm.sum(axis=0)
    dx = None
    if need_dx:
        dcols = (dm @ W.reshape(f, c * 9)).reshape(n, h, w, c, 3, 3)
        dxp = np.zeros((n, h + 2, w + 2, c), F32)
        for i in range(3):
            for j in range(3):
                dxp[:, i:i + h, j:j + w, :] += dcols[..., i, j]
        dx = dxp[:, 1:-1, 1:-1, :]
    return dW, db, dx


def pool_fwd(x):
    n, h, w, c = x.shape
    r = x.reshape(n, h // 2, 2, w // 2, 2, c)
    out = r.max(axis=(2, 4))
    mask = r == out[:, :, None, :, None, :]
    return out, mask


def pool_bwd(dout, mask):
    n, h2, _, w2, _, c = mask.shape
    return (mask * dout[:, :, None, :, None, :]).reshape(n, h2 * 2, w2 * 2, c)


class CNN:
    """Conv3x3(c1,pad1)-ReLU-MaxPool2 -> Conv3x3(c2,pad1)-ReLU-MaxPool2
    -> Flatten -> [Gemm(hidden)-ReLU] -> Gemm(10)."""

    def __init__(self, rng, c1=16, c2=32, hidden=0):
        self.c1, self.c2, self.hidden = c1, c2, hidden
        p = {}
        p["C1"] = he(rng, (c1, 1, 3, 3), 9)
        p["c1b"] = np.zeros(c1, F32)
        p["C2"] = he(rng, (c2, c1, 3, 3), 9 * c1)
        p["c2b"] = np.zeros(c2, F32)
        flat = 7 * 7 * c2
        if hidden:
            p["F1"] = he(rng, (flat, hidden), flat)  # rows in NHWC (h,w,c) order
            p["f1b"] = np.zeros(hidden, F32)
            p["F2"] = he(rng, (hidden, 10), hidden)
        else:
            p["F2"] = he(rng, (flat, 10), flat)
        p["f2b"] = np.zeros(10, F32)
        self.params = p

    def forward(self, x):
        p = self.params
        n = len(x)
        a0 = x.reshape(n, 28, 28, 1)  # C=1 so NCHW -> NHWC is a reshape
        z1, cols1 = conv3x3_fwd(a0, p["C1"], p["c1b"])
        r1 = np.maximum(z1, 0)
        q1, m1 = pool_fwd(r1)
        z2, cols2 = conv3x3_fwd(q1, p["C2"], p["c2b"])
        r2 = np.maximum(z2, 0)
        q2, m2 = pool_fwd(r2)
        flat = q2.reshape(n, -1)
        if self.hidden:
            h = np.maximum(flat @ p["F1"] + p["f1b"], 0)
        else:
            h = flat
        logits = h @ p["F2"] + p["f2b"]
        return logits, (x.shape, a0.shape, cols1, z1, m1, q1.shape, cols2, z2, m2, q2.shape, flat, h)

    def backward(self, cache, d, need_dx=False):
        p = self.params
        xshape, a0s, cols1, z1, m1, q1s, cols2, z2, m2, q2s, flat, h = cache
        g = {}
        g["F2"] = h.T @ d
        g["f2b"] = d.sum(axis=0)
        dh = d @ p["F2"].T
        if self.hidden:
            dh = dh * (h > 0)
            g["F1"] = flat.T @ dh
            g["f1b"] = dh.sum(axis=0)
            dh = dh @ p["F1"].T
        dq2 = dh.reshape(q2s)
        dr2 = pool_bwd(dq2, m2) * (z2 > 0)
        g["C2"], g["c2b"], dq1 = conv3x3_bwd(dr2, cols2, p["C2"], q1s, True)
        dr1 = pool_bwd(dq1, m1) * (z1 > 0)
        g["C1"], g["c1b"], dx = conv3x3_bwd(dr1, cols1, p["C1"], a0s, need_dx)
        return g, (dx.reshape(xshape) if need_dx else None)


class Adam:
    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
        self.p, self.lr, self.b1, self.b2, self.eps, self.wd = params, lr, b1, b2, eps, wd
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
            upd = self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)
            if self.wd and k[0] in "WCF":
                upd = upd + self.lr * self.wd * self.p[k]
            self.p[k] -= upd.astype(F32)


def predict(model, x, bs=500):
    out = []
    for i in range(0, len(x), bs):
        out.append(model.forward(x[i:i + bs])[0])
    return np.concatenate(out)


def accuracy(model, x, y):
    return float((predict(model, x).argmax(1) == y).mean())


def input_grad(model, x, y):
    """Gradient of the summed cross-entropy w.r.t. the input (sign is what matters)."""
    logits, cache = model.forward(x)
    _, d = softmax_xent(logits, y)
    _, dx = model.backward(cache, d * len(y), need_dx=True)
    return dx, logits


def fgsm(model, x, y, eps, bs=500):
    out = np.empty_like(x)
    for i in range(0, len(x), bs):
        xb, yb = x[i:i + bs], y[i:i + bs]
        g, _ = input_grad(model, xb, yb)
        out[i:i + bs] = np.clip(xb + eps * np.sign(g), 0, 1)
    return out


def pgd(model, x, y, eps, steps, alpha, rng, random_start=True, bs=500):
    """Untargeted L-inf PGD (Madry et al.): ascend the cross-entropy with signed
    steps, project back onto the eps-ball around x and onto [0,1]."""
    out = np.empty_like(x)
    for i in range(0, len(x), bs):
        xb, yb = x[i:i + bs], y[i:i + bs]
        if random_start:
            xa = np.clip(xb + rng.uniform(-eps, eps, xb.shape).astype(F32), 0, 1)
        else:
            xa = xb.copy()
        for _ in range(steps):
            g, _ = input_grad(model, xa, yb)
            xa = xa + alpha * np.sign(g)
            xa = np.clip(np.clip(xa, xb - eps, xb + eps), 0, 1).astype(F32)
        out[i:i + bs] = xa
    return out


def robust_accuracy(model, x, y, xadv):
    return float((predict(model, xadv).argmax(1) == y).mean())
