"""Attack mnist-evasion and submit, in three lines (plus FGSM on the public MLP).

    pip install ./clients/python
    RIPOSTE_URL=http://localhost:8080 RIPOSTE_TOKEN=... python evasion_three_lines.py
"""
import numpy as np

import riposte


def fgsm(w, x, y, eps=0.3):
    """One signed-gradient step on the white-box MLP (mlp_weights.npz), in numpy."""
    acts = [x.reshape(len(x), -1)]
    for i in (1, 2, 3):
        z = acts[-1] @ w[f"W{i}"] + w[f"b{i}"]
        acts.append(np.maximum(z, 0) if i < 3 else z)
    g = np.exp(acts[-1] - acts[-1].max(1, keepdims=True))
    g = g / g.sum(1, keepdims=True)
    g[np.arange(len(y)), y] -= 1                      # d loss / d logits
    for i in (3, 2, 1):
        g = g @ w[f"W{i}"].T * (acts[i - 1] > 0 if i > 1 else 1)
    # a hair under eps, so float32 rounding never takes a pixel past the budget
    return np.clip(x + (eps - 1e-6) * np.sign(g.reshape(x.shape)), 0, 1).astype(np.float32)


rp = riposte.Client()                                 # $RIPOSTE_URL, $RIPOSTE_TOKEN
x, y, w = (rp.load("mnist-evasion", f) for f in ("eval_x.npy", "eval_y.npy", "mlp_weights.npz"))
print(rp.submit("mnist-evasion", fgsm(w, x, y.astype(int)), track="attack").wait())
