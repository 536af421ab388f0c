"""Build the fine-print challenge: a working digit classifier whose ONNX file
carries a secret its authors forgot to strip.

Deterministic: the flag comes from a fixed seed, so rebuilding gives the same
files. Run from the repository root:

    /tmp/mnist-venv/bin/python challenges/fine-print/build/build.py
"""

import base64
import hashlib
import pathlib
import random

import onnx

HERE = pathlib.Path(__file__).resolve().parent.parent
SOURCE = HERE.parent / "mnist-evasion" / "public" / "mlp.onnx"


def main() -> None:
    rng = random.Random(20261127)
    secret = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20))
    flag = f"riposte{{fine_print_{secret}}}"

    model = onnx.load(str(SOURCE))
    model.producer_name = "acme-ml-exporter"
    model.doc_string = "Digit reader v2.3. Internal build: see metadata for release notes."
    notes = model.metadata_props.add()
    notes.key = "release_notes"
    notes.value = "v2.3: retrained on cheque digits; accuracy 97.6% on the eval set."
    debug = model.metadata_props.add()
    debug.key = "debug_token"
    debug.value = base64.b64encode(flag.encode()).decode()
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(HERE / "public" / "digit_reader.onnx"))

    (HERE / "private" / "flag.txt").write_text(flag + "\n")
    digest = hashlib.sha256(flag.encode()).hexdigest()
    print(f"flag sha256: {digest}")


if __name__ == "__main__":
    main()
