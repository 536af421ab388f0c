#!/usr/bin/env python3
"""Starter for "Copy the digit reader, blindfolded" (mnist-extraction-labels), attack track.

The victim answers with its predicted label only, and your budget is 3,000
images. This script shows the distillation recipe of the easy version on hard
labels and stops short (1,000 queries by default):

  1. logs in and downloads query_pool.npy (2,000 unlabeled MNIST digits, uint8);
  2. sends --queries of them to the victim, 100 per request, and keeps the
     label it answers for each (as a one-hot "probability");
  3. trains a small surrogate on those hard labels with plain numpy
     (a 784-H-10 ReLU MLP; --hidden 0 gives softmax regression), minimising the
     cross-entropy between the victim's probabilities and the surrogate's;
  4. writes the surrogate as an ONNX file with a tiny hand-written protobuf
     encoder (no onnx package needed) and submits it; the server measures how
     often it agrees with the victim on 1,000 hidden digits.

    pip install <server>/clients/riposte-client.zip                 # the Riposte client; it brings numpy
    python starter.py --username alice --password '...'             # 1,000 queries
    python starter.py --token "$RIPOSTE_TOKEN" --queries 3000       # pool + shifted copies
    python starter.py --username alice --password '...' --no-submit # only write the .onnx

Every query is paid from your team's budget (3,000 images for the victim),
even when you run this script again. Which images you spend them on is the
challenge: labels carry less than probabilities, so choose queries that
teach the most (near the victim's decision boundaries).
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

SLUG = "mnist-extraction-labels"
TARGET = "victim"
BATCH = 100


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ surrogate

def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(layers, x):
    """logits of the surrogate and the activations the backward pass needs."""
    h = x.reshape(len(x), -1)
    acts = [h]
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
        acts.append(h)
    return h, acts


def train_surrogate(x, probs, hidden=128, epochs=60, lr=2e-3, batch=64, seed=0, verbose=False):
    """Fit a 784-hidden-10 ReLU MLP (hidden=0: softmax regression) to the victim's
    probabilities by minimising the soft-label cross-entropy
        L = -mean_i sum_c probs[i, c] * log softmax(f(x_i))[c]
    with Adam. The gradient of L w.r.t. the logits is softmax(f(x)) - probs.
    Returns [(W1, b1), (W2, b2)] float32, W of shape [in, out]."""
    rng = np.random.default_rng(seed)
    x = x.reshape(len(x), -1).astype(np.float32)
    t = np.asarray(probs, np.float64)
    t = (t / t.sum(axis=1, keepdims=True)).astype(np.float32)   # rounding: rows sum to 1 +- 5e-4
    sizes = [784, hidden, 10] if hidden else [784, 10]
    layers = [((rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32), np.zeros(b, np.float32))
              for a, b in zip(sizes[:-1], sizes[1:])]
    params = [p for layer in layers for p in layer]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0
    n = len(x)
    for ep in range(epochs):
        rate = lr * (0.1 if ep >= int(epochs * 0.8) else 1.0)
        order = rng.permutation(n)
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            logits, acts = forward(layers, x[idx])
            q = softmax(logits)
            total += float(-(t[idx] * np.log(q + 1e-12)).sum())
            d = (q - t[idx]) / len(idx)
            grads = []
            for k in range(len(layers) - 1, -1, -1):
                if k < len(layers) - 1:
                    d = d * (acts[k + 1] > 0)
                grads = [acts[k].T @ d, d.sum(axis=0)] + grads
                d = d @ layers[k][0].T
            step += 1
            for j, g in enumerate(grads):   # Adam
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                upd = rate * (m[j] / (1 - 0.9 ** step)) / (np.sqrt(v[j] / (1 - 0.999 ** step)) + 1e-8)
                params[j] -= upd.astype(np.float32)
        if verbose and (ep + 1) % 10 == 0:
            print(f"  epoch {ep + 1}/{epochs}: soft cross-entropy {total / n:.4f}")
    return layers


def shifted_copies(x, count, seed=0, max_shift=2):
    """`count` extra query images: pool images moved by up to max_shift pixels."""
    rng = np.random.default_rng(seed)
    src = x[rng.integers(0, len(x), count), 0]
    p = max_shift
    padded = np.pad(src, ((0, 0), (p, p), (p, p)))
    dy = rng.integers(0, 2 * p + 1, count)
    dx = rng.integers(0, 2 * p + 1, count)
    out = np.stack([padded[i, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(count)])
    return out[:, None].astype(np.float32)


# ------------------------------------------------------------------ ONNX by hand
#
# An .onnx file is one protobuf message, ModelProto (onnx/onnx.proto). Protobuf
# is simple to write: every field is a key varint (field_number << 3 | wire_type)
# followed by a varint (wire type 0) or by a length varint and that many bytes
# (wire type 2: strings, bytes and nested messages).

def _varint(n):
    n &= (1 << 64) - 1                       # negative int64 -> two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field, value):
    return _varint(field << 3 | 0) + _varint(value)


def _bytes(field, data):
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str(field, text):
    return _bytes(field, text.encode("utf-8"))


def _tensor(name, array):
    """TensorProto: dims = 1, data_type = 2 (1 = FLOAT), name = 8, raw_data = 9 (little-endian)."""
    a = np.ascontiguousarray(array, dtype="<f4")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, 1) + _str(8, name) + _bytes(9, a.tobytes())


def _value_info(name, dims):
    """ValueInfoProto{name = 1, type = 2: TypeProto{tensor_type = 1: {elem_type = 1, shape = 2}}};
    a dimension is TensorShapeProto.Dimension{dim_value = 1 | dim_param = 2}."""
    shape = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, 1) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def _attr_int(name, value):
    """AttributeProto: name = 1, i = 3, type = 20 (2 = INT)."""
    return _str(1, name) + _int(3, value) + _int(20, 2)


def _node(op, inputs, outputs, name, attrs=()):
    """NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5."""
    return (b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
            + _str(3, name) + _str(4, op) + b"".join(_bytes(5, a) for a in attrs))


def onnx_bytes(layers):
    """The surrogate as ModelProto bytes: input "input" float [N,1,28,28] ->
    Flatten(axis=1) -> Gemm(W1, b1) [-> Relu -> Gemm(W2, b2)] -> "logits" [N,10]."""
    nodes = [_node("Flatten", ["input"], ["flat"], "flatten", [_attr_int("axis", 1)])]
    inits = []
    cur = "flat"
    for k, (W, b) in enumerate(layers, start=1):
        last = k == len(layers)
        out = "logits" if last else f"z{k}"
        nodes.append(_node("Gemm", [cur, f"W{k}", f"b{k}"], [out], f"gemm{k}", [_attr_int("transB", 0)]))
        inits += [_tensor(f"W{k}", W), _tensor(f"b{k}", b)]
        if not last:
            nodes.append(_node("Relu", [out], [f"h{k}"], f"relu{k}"))
            cur = f"h{k}"
    # GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12
    graph = (b"".join(_bytes(1, n) for n in nodes) + _str(2, "surrogate")
             + b"".join(_bytes(5, t) for t in inits)
             + _bytes(11, _value_info("input", ["N", 1, 28, 28]))
             + _bytes(12, _value_info("logits", ["N", 10])))
    # ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8 {domain = 1, version = 2}
    return (_int(1, 8) + _str(2, "riposte-starter") + _bytes(7, graph)
            + _bytes(8, _str(1, "") + _int(2, 13)))


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
    ap = argparse.ArgumentParser(description="label-only model-extraction starter for mnist-extraction-labels")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--out", default="surrogate.onnx", help="where to write the surrogate model")
    ap.add_argument("--queries", type=int, default=1000,
                    help="images to query; beyond the 2,000 of the pool, shifted copies of pool images")
    ap.add_argument("--hidden", type=int, default=128, help="hidden units of the surrogate (0 = softmax regression)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-submit", action="store_true", help="only write the .onnx, do not upload")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    if args.queries < 1:
        die("--queries must be at least 1")

    rp = connect(args)
    pool = rp.load(SLUG, "query_pool.npy")
    if pool.dtype != np.uint8 or pool.shape[1:] != (1, 28, 28):
        die(f"query_pool.npy: unexpected {pool.dtype} {pool.shape}")
    x = pool.astype(np.float32) / 255.0      # grey levels 0..255 -> [0, 1]
    print(f"query pool: {pool.shape} {pool.dtype}")
    if args.queries > len(x):
        x = np.concatenate([x, shifted_copies(x, args.queries - len(x), args.seed)])
    x = x[:args.queries]

    t0 = time.time()
    answer = rp.query(SLUG, x, target=TARGET, batch_size=BATCH)   # 100 images a request
    if answer.labels.shape != (len(x),):
        die(f"unexpected answer shape {answer.labels.shape}")
    probs = np.eye(10)[answer.labels]      # each label as a one-hot "probability"
    print(f"queried the victim with {len(x)} images ({time.time() - t0:.1f}s); "
          f"{answer.queries_remaining} queries left")

    t0 = time.time()
    layers = train_surrogate(x, probs, hidden=args.hidden, epochs=args.epochs, seed=args.seed, verbose=True)
    agree = (forward(layers, x)[0].argmax(1) == probs.argmax(1)).mean()
    kind = f"784-{args.hidden}-10 MLP" if args.hidden else "softmax regression"
    print(f"surrogate ({kind}) trained in {time.time() - t0:.1f}s; "
          f"agrees with the victim on {agree:.3f} of the queried images")

    data = onnx_bytes(layers)
    with open(args.out, "wb") as f:
        f.write(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    if args.no_submit:
        return
    sub = rp.submit(SLUG, args.out, track="attack", filename="surrogate.onnx")
    print(f"submitted: id {sub.id}; waiting for the evaluator ...")
    report(sub.wait(timeout=120))


if __name__ == "__main__":
    try:
        main()
    except riposte.RiposteError as e:   # refused by the server: its reason, no traceback
        die(e)
