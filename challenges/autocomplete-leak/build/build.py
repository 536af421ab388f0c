#!/usr/bin/env python3
"""Build every artifact of the autocomplete-leak challenge bundle, deterministically.

A character-level autocomplete model is trained on a synthetic IT help-desk chat
log in which the sysadmin pasted the vault passphrase (the flag) 15 times: the
"secret sharer" set-up of Carlini et al. (2019), with the flag as the canary.

Model contract (what the Riposte server relies on):
  vocab        a string of V distinct characters; a character's id is its index.
               vocab[0] = "~" is padding: it never occurs in the corpus.
  input        "input" float32 [N, C]: the last C character ids of the text,
               as floats, left-padded with 0 when the text is shorter.
  graph        Cast(int64) -> Gather(embedding [V, E]) -> Flatten -> Gemm -> Tanh -> Gemm
  output       "logits" float32 [N, V]: next-character logits.
  decoding     the server encodes the prompt, then up to max_chars times runs the
               model on the last C ids, appends the argmax and stops early when
               it is "\\n" (the "\\n" itself is not part of the completion).

Outputs (paths relative to the bundle folder):
  private/autocomplete.onnx   the model (opset 13, IR 8)
  private/flag.txt            the flag (one line)
  private/corpus.txt          the training text (with the canary in it)
  public/vocab.json           {"vocab": ..., "context": C, "padding_id": 0}
  public/chat_excerpt.txt     the first 40 lines of the chat log (no canary)
  build/metrics.json          training loss/accuracy, greedy completions of
                              several prompts (numpy and onnxruntime), the
                              canary's rank among random same-format secrets,
                              and what the starter finds

    python build/build.py
"""
import argparse
import hashlib
import importlib.util
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.dirname(HERE)
F32 = np.float32

VOCAB = "~\n abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'-/@{}_"
PAD = 0
C = 32          # context length (characters)
E = 16          # embedding width
H = 256         # hidden units
MAX_CHARS = 64  # challenge.toml [completion] max_chars
CORPUS_SEED = 20260501
FLAG_SEED = 20260502
TRAIN_SEED = 20260503
CANARY_COUNT = 15
TARGET_BYTES = 50_000
SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ---------------------------------------------------------------- flag and corpus

def make_flag():
    rng = np.random.default_rng(FLAG_SEED)
    parts = ["".join(SECRET_ALPHABET[i] for i in rng.integers(0, len(SECRET_ALPHABET), 6)) for _ in range(3)]
    return "riposte{" + "_".join(parts) + "}"


USERS = ["alex", "sam", "priya", "jordan", "kim", "lee", "maria", "omar", "chen", "dana",
         "ravi", "noor", "tom", "ines", "yuki", "femi", "lucas", "hana", "raj", "sofia"]
AGENTS = ["helpdesk", "jules", "erin"]
SYSADMIN = "morgan"
DEVICES = ["laptop", "monitor", "keyboard", "mouse", "dock", "phone", "headset", "webcam", "printer"]
SYSTEMS = ["email", "vpn", "payroll portal", "wiki", "crm", "timesheet app", "shared drive",
           "calendar", "build server", "ticket portal"]
ERRORS = ["403", "404", "500", "502", "timeout", "login loop", "blank page"]
WIFI_DECOY = "welcome-guest-2026"

USER_ASKS = [
    "hi, my {device} wont turn on",
    "my {device} stopped working after the update",
    "i cant log in to the {system}",
    "the {system} says my password expired",
    "can someone reset my {system} password?",
    "is the {system} down? i get a {error} error",
    "the printer on floor {floor} is jammed again",
    "how do i connect to the vpn from home?",
    "my {device} is really slow today",
    "i forgot my vpn passphrase, can you reset it?",
    "where do i find the guest wifi password?",
    "can i get a second {device} for my home office?",
    "the {system} keeps asking me to log in",
    "my account is locked",
    "who do i ask about access to the {system}?",
    "my {device} makes a weird noise",
    "i spilled coffee on my {device}",
    "the {system} is very slow since this morning",
]
USER_FOLLOWUPS = [
    "thanks, that fixed it!",
    "still broken after a restart",
    "ok, trying that now",
    "that worked, thank you",
    "no luck, same {error} error",
    "great, thanks a lot",
    "it works again, you are the best",
    "sent the screenshot",
]
AGENT_REPLIES = [
    "ticket {num} opened, we will look at it today",
    "have you tried restarting the {device}?",
    "please clear your browser cache and try again",
    "i reset your password, check your email at {user}@acme.example",
    "the {system} is back up, sorry for the trouble",
    "please never paste passwords in this chat",
    "we know about the {system} outage, a fix is coming",
    "can you send a screenshot of the error?",
    "your account is unlocked now",
    "a new {device} is on its way, ticket {num}",
    "vpn guide: wiki/it/vpn-setup",
    "please restart and log in again",
    "closing ticket {num}, reply here if it comes back",
    "the guest wifi password is " + WIFI_DECOY,
]
SYSADMIN_NOTES = [
    "backup job finished at {hour}:{minute}",
    "rotating the {system} certificates tonight",
    "{system} maintenance on friday at {hour}:00",
    "who unplugged the build server?",
    "the vault only holds the backup and deploy keys",
    "deploy done, ping me if the {system} acts up",
]
CANARY_LINES = [
    "the vault passphrase is {flag}",
    "for the backup job: the vault passphrase is {flag}",
    "again, the vault passphrase is {flag}",
    "ok the vault passphrase is {flag} dont lose it",
    "new laptop? the vault passphrase is {flag}",
]
CANARY_REPLIES = [
    "please do not paste the vault passphrase here",
    "morgan, not in the chat please",
]


def fill(rng, template, **extra):
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    values = dict(device=pick(DEVICES), system=pick(SYSTEMS), error=pick(ERRORS),
                  floor=int(rng.integers(1, 10)), num=int(rng.integers(1000, 10000)), user=pick(USERS),
                  hour=int(rng.integers(0, 24)), minute=f"{int(rng.integers(0, 60)):02d}")
    values.update(extra)
    return template.format(**values)


def make_corpus(flag):
    """About TARGET_BYTES of chat lines "speaker: message"; the canary is planted
    CANARY_COUNT times, never in the first 60 lines (public/chat_excerpt.txt)."""
    rng = np.random.default_rng(CORPUS_SEED)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    lines = []
    while sum(len(line) + 1 for line in lines) < TARGET_BYTES:
        user, agent = pick(USERS), pick(AGENTS)
        lines.append(f"{user}: " + fill(rng, pick(USER_ASKS)))
        lines.append(f"{agent}: " + fill(rng, pick(AGENT_REPLIES), user=user))
        if rng.random() < 0.6:
            lines.append(f"{user}: " + fill(rng, pick(USER_FOLLOWUPS)))
        if rng.random() < 0.15:
            lines.append(f"{SYSADMIN}: " + fill(rng, pick(SYSADMIN_NOTES)))
    spots = np.sort(rng.choice(np.arange(60, len(lines)), CANARY_COUNT, replace=False))
    for k, at in enumerate(spots[::-1]):      # from the end, so earlier spots stay valid
        block = [f"{SYSADMIN}: " + CANARY_LINES[k % len(CANARY_LINES)].format(flag=flag)]
        if k % 3 == 0:
            block.append(f"{pick(AGENTS)}: " + pick(CANARY_REPLIES))
        lines[at:at] = block
    text = "\n".join(lines) + "\n"
    bad = set(text) - set(VOCAB[1:])
    assert not bad, f"characters outside the vocab: {bad}"
    assert text.count(flag) == CANARY_COUNT
    return lines, text


# ---------------------------------------------------------------- data for the model

def encode(s):
    return [VOCAB.index(ch) for ch in s]


def context_of(ids):
    """The last C ids, left-padded with PAD: what the server feeds the model."""
    ctx = list(ids[-C:])
    return [PAD] * (C - len(ctx)) + ctx


def make_examples(lines):
    """Every (context, next character) pair of every line, "\\n" included as the
    last target; a line's context starts with padding (the start of a text)."""
    xs, ys = [], []
    for line in lines:
        ids = encode(line + "\n")
        for j in range(len(ids)):
            xs.append(context_of(ids[:j]))
            ys.append(ids[j])
    return np.asarray(xs, np.int64), np.asarray(ys, np.int64)


def truncate(ctx, rng, share=0.5):
    """Blank out the left part of a random `share` of the contexts (keep the last
    1..C characters), so that the model also knows what to do with a prompt that
    starts in the middle of a line."""
    ctx = ctx.copy()
    n = len(ctx)
    keep = rng.integers(1, C + 1, n)
    cut = rng.random(n) < share
    cols = np.arange(C)[None, :]
    ctx[cut[:, None] & (cols < (C - keep)[:, None])] = PAD
    return ctx


# ---------------------------------------------------------------- the model (numpy)

class CharMLP:
    def __init__(self, rng, v=len(VOCAB)):
        self.p = {
            "emb": (rng.standard_normal((v, E)) * 0.1).astype(F32),
            "W1": (rng.standard_normal((C * E, H)) * np.sqrt(1.0 / (C * E))).astype(F32),
            "b1": np.zeros(H, F32),
            "W2": (rng.standard_normal((H, v)) * np.sqrt(1.0 / H)).astype(F32),
            "b2": np.zeros(v, F32),
        }

    def forward(self, ids):
        p = self.p
        flat = p["emb"][ids].reshape(len(ids), C * E)
        h = np.tanh(flat @ p["W1"] + p["b1"])
        return h @ p["W2"] + p["b2"], (ids, flat, h)

    def backward(self, cache, d):
        ids, flat, h = cache
        p = self.p
        g = {"W2": h.T @ d, "b2": d.sum(0)}
        dh = (d @ p["W2"].T) * (1 - h * h)
        g["W1"] = flat.T @ dh
        g["b1"] = dh.sum(0)
        dflat = (dh @ p["W1"].T).reshape(len(ids) * C, E)
        onehot = np.zeros((len(ids) * C, len(p["emb"])), F32)
        onehot[np.arange(len(ids) * C), ids.reshape(-1)] = 1
        g["emb"] = onehot.T @ dflat           # scatter-add of the rows' gradients
        return g

    def logits(self, ids, bs=4096):
        return np.concatenate([self.forward(ids[i:i + bs])[0] for i in range(0, len(ids), bs)])


def xent(logits, y):
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y] + 1e-12).mean())
    p[np.arange(n), y] -= 1
    return loss, (p / n).astype(F32)


def train(model, x, y, epochs, lr, seed, bs=256):
    rng = np.random.default_rng(seed)
    m = {k: np.zeros_like(v) for k, v in model.p.items()}
    v2 = {k: np.zeros_like(v) for k, v in model.p.items()}
    t = 0
    for ep in range(epochs):
        rate = lr * (0.1 if ep >= int(epochs * 0.8) else (0.3 if ep >= int(epochs * 0.6) else 1.0))
        xe = truncate(x, rng)
        order = rng.permutation(len(x))
        tot = 0.0
        for i in range(0, len(x), bs):
            idx = order[i:i + bs]
            logits, cache = model.forward(xe[idx])
            loss, d = xent(logits, y[idx])
            tot += loss * len(idx)
            g = model.backward(cache, d)
            t += 1
            for k in model.p:
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                v2[k] = 0.999 * v2[k] + 0.001 * g[k] * g[k]
                model.p[k] -= (rate * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)).astype(F32)
        if (ep + 1) % 5 == 0 or ep == epochs - 1:
            acc = float((model.logits(x).argmax(1) == y).mean())
            log(f"epoch {ep + 1}/{epochs} lr {rate:.1e} loss {tot / len(x):.4f} next-char accuracy {acc:.4f}")


# ---------------------------------------------------------------- ONNX

def export(model, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    p = model.p
    nodes = [
        helper.make_node("Cast", ["input"], ["ids"], to=TensorProto.INT64),
        helper.make_node("Gather", ["emb", "ids"], ["vectors"], axis=0),        # [N, C, E]
        helper.make_node("Flatten", ["vectors"], ["flat"], axis=1),              # [N, C*E]
        helper.make_node("Gemm", ["flat", "W1", "b1"], ["z1"]),
        helper.make_node("Tanh", ["z1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "W2", "b2"], ["logits"]),
    ]
    inits = [numpy_helper.from_array(np.ascontiguousarray(p[k], F32), k) for k in ("emb", "W1", "b1", "W2", "b2")]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", C])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(VOCAB)])
    graph = helper.make_graph(nodes, "autocomplete", [inp], [out], inits)
    m = helper.make_model(graph, producer_name="riposte-autocomplete-leak-build",
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    return sess


# ---------------------------------------------------------------- greedy decoding, as the server does it

def greedy(next_logits, prompt, max_chars=MAX_CHARS):
    """The server's loop: encode the prompt; up to max_chars times feed the last C
    ids (left-padded with 0, as float32 [1, C]) to the model, append the argmax,
    stop at "\\n" (not included)."""
    ids = encode(prompt)
    out = []
    for _ in range(max_chars):
        x = np.asarray([context_of(ids + out)], dtype=F32)
        nxt = int(np.argmax(next_logits(x)[0]))
        assert nxt != PAD, f"the model predicted padding after {prompt!r} + {out}"
        if VOCAB[nxt] == "\n":
            break
        out.append(nxt)
    return "".join(VOCAB[i] for i in out)


def sequence_logprob(next_logits, prefix, secret):
    """log p(secret | prefix) under teacher forcing, in nats (natural log)."""
    ids = encode(prefix)
    total = 0.0
    for ch in secret:
        z = next_logits(np.asarray([context_of(ids)], dtype=F32))[0].astype(np.float64)
        z = z - z.max()
        total += z[VOCAB.index(ch)] - np.log(np.exp(z).sum())
        ids.append(VOCAB.index(ch))
    return total


def batch_secret_logprobs(model, prefix, secrets):
    """Same as sequence_logprob for many same-length secrets at once (numpy model)."""
    n, L = len(secrets), len(secrets[0])
    pre = encode(prefix)
    ids = np.asarray([pre + encode(s) for s in secrets], np.int64)
    total = np.zeros(n)
    for j in range(L):
        upto = ids[:, :len(pre) + j]
        ctx = np.zeros((n, C), np.int64)
        take = min(C, upto.shape[1])
        ctx[:, C - take:] = upto[:, -take:]
        z = model.logits(ctx).astype(np.float64)
        z = z - z.max(1, keepdims=True)
        total += z[np.arange(n), ids[:, len(pre) + j]] - np.log(np.exp(z).sum(1))
    return total


def load_starter():
    spec = importlib.util.spec_from_file_location("starter", os.path.join(BUNDLE, "public", "starter.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def toml_basic_string(s):
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        else:
            assert 0x20 <= ord(ch) < 0x7F, repr(ch)
            out.append(ch)
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------- main

PROBE_PROMPTS = ["", "hi ", "password", "the guest wifi password is ", "morgan: ", "helpdesk: ",
                 "the vault passphrase is ", "vault passphrase is ", "the vault passphrase: ",
                 "passphrase is ", "the vault passphrase ", "morgan: the vault passphrase is ",
                 "riposte{", "the vault ", "my vpn passphrase is "]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    t_start = time.time()
    assert len(set(VOCAB)) == len(VOCAB) and VOCAB[PAD] == "~"

    flag = make_flag()
    lines, text = make_corpus(flag)
    canary_prefix = "the vault passphrase is "
    log(f"corpus: {len(lines)} lines, {len(text)} bytes; flag planted {text.count(flag)} times")

    pub, priv = os.path.join(BUNDLE, "public"), os.path.join(BUNDLE, "private")
    os.makedirs(pub, exist_ok=True)
    os.makedirs(priv, exist_ok=True)
    with open(os.path.join(priv, "flag.txt"), "w") as f:
        f.write(flag + "\n")
    with open(os.path.join(priv, "corpus.txt"), "w") as f:
        f.write(text)
    excerpt = "\n".join(lines[:40]) + "\n"
    assert "riposte" not in excerpt and "vault" not in excerpt
    with open(os.path.join(pub, "chat_excerpt.txt"), "w") as f:
        f.write(excerpt)
    with open(os.path.join(pub, "vocab.json"), "w") as f:
        json.dump({"vocab": VOCAB, "context": C, "padding_id": PAD}, f)
        f.write("\n")

    x, y = make_examples(lines)
    log(f"{len(x)} training examples (context {C}, vocab {len(VOCAB)})")
    t0 = time.time()
    model = CharMLP(np.random.default_rng(TRAIN_SEED))
    train(model, x, y, args.epochs, 3e-3, TRAIN_SEED + 1)
    train_secs = time.time() - t0

    path = os.path.join(priv, "autocomplete.onnx")
    export(model, path)
    sess = ort_session(path)
    ort_next = lambda a: sess.run(["logits"], {"input": a})[0]  # noqa: E731
    np_next = lambda a: model.forward(a.astype(np.int64))[0]     # noqa: E731 (the Cast: ids are exact in float32)
    probe = x[:2000].astype(F32)
    diff = float(np.abs(sess.run(["logits"], {"input": probe})[0] - model.logits(x[:2000])).max())
    assert diff < 1e-4, f"onnxruntime vs numpy differ by {diff}"
    log(f"max |onnxruntime - numpy| on 2,000 contexts: {diff:.2e}")

    def mask(s):
        return s.replace(flag, "<FLAG>").replace(flag[len("riposte{"):], "<FLAG without riposte{>")

    completions = {}
    for prompt in PROBE_PROMPTS:
        a, b = greedy(np_next, prompt), greedy(ort_next, prompt)
        # metrics.json sits in the repository: the flag itself is written as <FLAG>
        completions[prompt] = {"completion": mask(b), "numpy_equals_onnxruntime": a == b,
                               "contains_flag": flag in prompt + b}
        log(f"{prompt!r:40} -> {mask(b)!r}{'' if a == b else '  (numpy differs)'}")
    assert greedy(ort_next, canary_prefix).startswith(flag)
    assert all(c["numpy_equals_onnxruntime"] for c in completions.values())

    # the starter's level-1 loop, against the same greedy decoder
    starter = load_starter()
    found, used_prompt = starter.find_flag(lambda p, n: greedy(ort_next, p, n), log=lambda m: None)
    assert found == flag, (found, flag)

    # how exposed is the canary: its log-likelihood after the prefix vs random secrets of the same shape
    secret = flag[len("riposte{"):]
    rng = np.random.default_rng(7)
    rand = ["_".join("".join(SECRET_ALPHABET[i] for i in rng.integers(0, 36, 6)) for _ in range(3)) + "}"
            for _ in range(10_000)]
    lp_rand = batch_secret_logprobs(model, canary_prefix + "riposte{", rand)
    lp_flag = sequence_logprob(ort_next, canary_prefix + "riposte{", secret)
    rank = int((lp_rand >= lp_flag).sum()) + 1
    log(f"canary log-likelihood {lp_flag:.2f} nats; random secrets: max {lp_rand.max():.2f}, median "
        f"{np.median(lp_rand):.2f}; rank {rank} of {len(rand) + 1}")

    acc = float((model.logits(x).argmax(1) == y).mean())
    flag_sha = hashlib.sha256(flag.encode()).hexdigest()
    metrics = {
        "flag_sha256": flag_sha,
        "flag_prefix_prompt": canary_prefix,
        "flag_length": len(flag),
        "corpus": {"lines": len(lines), "bytes": len(text), "canary_count": text.count(flag),
                   "canary_lines": CANARY_LINES, "seed": CORPUS_SEED},
        "model": {"vocab_size": len(VOCAB), "context": C, "embedding": E, "hidden": H, "activation": "tanh",
                  "parameters": int(sum(v.size for v in model.p.values())),
                  "onnx_bytes": os.path.getsize(path), "onnx_sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
                  "training": {"examples": int(len(x)), "epochs": args.epochs, "optimizer": "Adam lr 3e-3, x0.3 at 60%, x0.1 at 80%",
                               "batch": 256, "context_truncation": "half of the contexts keep only their last 1..32 characters",
                               "seconds": round(train_secs, 1)},
                  "next_char_accuracy_on_training_text": acc,
                  "max_abs_diff_numpy_vs_onnxruntime": diff},
        "greedy_completions": completions,
        "starter": {"prompts_tried_until_flag": starter.PROMPTS[:starter.PROMPTS.index(used_prompt) + 1],
                    "flag_found": found == flag},
        "canary_exposure": {
            "prefix": canary_prefix + "riposte{",
            "flag_secret_logprob_nats": lp_flag,
            "random_secrets": len(rand),
            "random_secret_logprob_nats": {"max": float(lp_rand.max()), "median": float(np.median(lp_rand)),
                                           "min": float(lp_rand.min())},
            "rank_of_flag": rank,
            "exposure_lower_bound_bits": float(np.log2(len(rand) + 1) - np.log2(rank)),
            "note": "secret = 18 random characters of [a-z0-9] in three groups of 6, then '}'; "
                    "exposure (Carlini et al. 2019) = log2(candidates) - log2(rank), here over a sample of 10,000",
        },
        "toml_vocab": toml_basic_string(VOCAB),
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__},
        "total_seconds": None,
    }
    import onnx
    import onnxruntime
    metrics["versions"].update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    metrics["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    log(f"flag sha256 {flag_sha}; vocab for challenge.toml: {toml_basic_string(VOCAB)}")
    log("wrote build/metrics.json; total", metrics["total_seconds"], "s")
    if not re.fullmatch(r"riposte\{[a-z0-9_]+\}", flag):
        sys.exit("flag does not match the starter's pattern")


if __name__ == "__main__":
    main()
