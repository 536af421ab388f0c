#!/usr/bin/env python3
"""Reference logits for the Rust evaluator's tests (cross-check tract vs onnxruntime).

Runs onnxruntime (CPU) on the first 64 images of public/eval_x.npy through
public/{mlp,cnn,baseline_defense}.onnx and writes
backend/eval/tests/fixtures/mnist_first64_logits_{name}.npy (float32 [64,10]).
It also checks that the plain-numpy forward passes of build/nets.py (for the MLP:
public/mlp_weights.npz, as in starter.py) agree with onnxruntime within 1e-5.

    /tmp/mnist-venv/bin/python challenges/mnist-evasion/build/ort_reference.py
"""
import os
import sys

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(BUNDLE))
FIXTURES = os.path.join(REPO, "backend", "eval", "tests", "fixtures")
NAMES = ("mlp", "cnn", "baseline_defense")


def run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"], sess.get_inputs()
    assert [o.name for o in sess.get_outputs()] == ["logits"], sess.get_outputs()
    return sess.run(["logits"], {"input": x})[0]


def numpy_mlp(x):
    z = np.load(os.path.join(BUNDLE, "public", "mlp_weights.npz"))
    h = x.reshape(len(x), -1)
    n = sum(1 for k in z.files if k.startswith("W"))
    for i in range(1, n + 1):
        h = h @ z[f"W{i}"] + z[f"b{i}"]
        if i < n:
            h = np.maximum(h, 0)
    return h


def numpy_onnx_graph(path, x):
    """Independent numpy interpreter for the few ops our graphs use."""
    import onnx
    from numpy.lib.stride_tricks import sliding_window_view
    from onnx import numpy_helper
    m = onnx.load(path)
    env = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    env["input"] = x
    for n in m.graph.node:
        a = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
        ins = [env[i] for i in n.input]
        if n.op_type == "Flatten":
            out = ins[0].reshape(ins[0].shape[0], -1)
        elif n.op_type == "Relu":
            out = np.maximum(ins[0], 0)
        elif n.op_type == "Gemm":
            B = ins[1].T if a.get("transB", 0) else ins[1]
            out = ins[0] @ B + ins[2]
        elif n.op_type == "MaxPool":
            N, C, H, W = ins[0].shape
            out = ins[0].reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))
        elif n.op_type == "Conv":
            w, b = ins[1], ins[2]
            xp = np.pad(ins[0], ((0, 0), (0, 0), (1, 1), (1, 1)))
            win = sliding_window_view(xp, (3, 3), axis=(2, 3))  # N,C,H,W,3,3
            out = np.einsum("nchwij,fcij->nfhw", win, w, optimize=True) + b[None, :, None, None]
        else:
            raise SystemExit(f"unexpected op {n.op_type}")
        env[n.output[0]] = out.astype(np.float32)
    return env["logits"]


def main():
    x = np.load(os.path.join(BUNDLE, "public", "eval_x.npy"))[:64]
    assert x.shape == (64, 1, 28, 28) and x.dtype == np.float32
    os.makedirs(FIXTURES, exist_ok=True)
    ok = True
    for name in NAMES:
        path = os.path.join(BUNDLE, "public", f"{name}.onnx")
        logits = run(path, x).astype(np.float32)
        assert logits.shape == (64, 10)
        ref = numpy_mlp(x) if name == "mlp" else numpy_onnx_graph(path, x)
        diff = float(np.abs(ref - logits).max())
        good = np.allclose(ref, logits, rtol=1e-5, atol=1e-5)
        ok &= good
        out = os.path.join(FIXTURES, f"mnist_first64_logits_{name}.npy")
        np.save(out, logits)
        print(f"{name}: wrote {os.path.relpath(out, REPO)}  numpy-vs-ort max|diff| {diff:.2e} "
              f"{'OK' if good else 'MISMATCH'}  argmax {logits.argmax(1)[:12].tolist()}...")
    if not ok:
        sys.exit("numpy and onnxruntime disagree by more than 1e-5")


if __name__ == "__main__":
    main()
