"""The client against a live `riposte serve` (see conftest.py; skipped without RIPOSTE_BIN)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pytest

import riposte

from .conftest import PASSWORD, REPO, Server

EVASION = "mnist-evasion"
EXTRACTION = "mnist-extraction"
EPS = 0.3
WAIT = 600


# ------------------------------------------------------------------ helpers


def fgsm(weights: Dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """One FGSM step on the public MLP (relu(x W1 + b1) ... W3 + b3), backprop in numpy,
    kept inside the L-inf ball in float64 and in [0, 1]."""
    layers = [(weights[f"W{i}"], weights[f"b{i}"]) for i in (1, 2, 3)]
    acts = [x.reshape(len(x), -1).astype(np.float32)]
    for i, (w, b) in enumerate(layers):
        h = acts[-1] @ w + b
        acts.append(np.maximum(h, 0) if i < 2 else h)
    p = np.exp(acts[-1] - acts[-1].max(axis=1, keepdims=True))
    d = p / p.sum(axis=1, keepdims=True)
    d[np.arange(len(y)), y] -= 1.0
    for i in (2, 1, 0):
        if i < 2:
            d = d * (acts[i + 1] > 0)
        d = d @ layers[i][0].T
    adv = x + eps * np.sign(d.reshape(x.shape))
    x64 = x.astype(np.float64)
    lo = (x64 - eps).astype(np.float32)
    lo = np.where(lo < x64 - eps, np.nextafter(lo, np.float32(1)), lo)
    hi = (x64 + eps).astype(np.float32)
    hi = np.where(hi > x64 + eps, np.nextafter(hi, np.float32(0)), hi)
    return np.clip(np.clip(adv, lo, hi), 0.0, 1.0).astype(np.float32)


def rates(submission: Dict[str, Any]) -> Dict[str, float]:
    """Fooled rate per organizer target of a scored attack."""
    return {r["target"]: r["rate"] for r in submission["results"] if r["kind"] == "organizer"}


def find_flag(data: bytes) -> Optional[str]:
    """A riposte{...} flag in a file's bytes, as such or in a base64 run."""
    texts = [data]
    for run in re.findall(rb"[A-Za-z0-9+/]{16,}={0,2}", data):
        for part in (run[skip:] for skip in range(4)):
            if len(part) % 4 == 0:
                try:
                    texts.append(base64.b64decode(part, validate=True))
                except (binascii.Error, ValueError):
                    pass
    for text in texts:
        found = re.search(rb"riposte\{[A-Za-z0-9_]+\}", text)
        if found:
            return found.group(0).decode()
    return None


class RequestCounter:
    """Counts the HTTP answers a client receives."""

    def __init__(self, client: riposte.Client) -> None:
        self.count = 0
        client.session.hooks["response"].append(self._hook)

    def _hook(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.count += 1


@pytest.fixture(scope="module")
def evasion(alice: riposte.Client) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    x = alice.load(EVASION, "eval_x.npy")
    y = alice.load(EVASION, "eval_y.npy")
    weights = alice.load(EVASION, "mlp_weights.npz")
    return x, y.astype(np.int64), weights


@pytest.fixture(scope="module")
def scored(alice: riposte.Client, evasion: Any) -> Dict[str, Dict[str, Any]]:
    """A copy of the clean inputs and an FGSM attack, both submitted and scored."""
    x, y, weights = evasion
    clean = alice.submit(EVASION, x.copy(), track="attack")
    attack = alice.submit(EVASION, fgsm(weights, x, y, EPS), track="attack")
    assert isinstance(clean, riposte.Submission)
    assert clean.status in riposte.FINAL_STATUSES | {"queued", "running"}
    return {"clean": clean.wait(timeout=WAIT), "fgsm": alice.wait(attack.id, timeout=WAIT)}


# ------------------------------------------------------------------ accounts


def test_the_first_run_prints_a_working_admin_password(server: Server) -> None:
    admin = server.login("admin", server.admin_password)
    assert admin.me()["role"] == "admin"


def test_login_gives_a_token_that_works_on_its_own(server: Server, alice: riposte.Client) -> None:
    me = alice.me()
    assert me["username"] == "alice" and me["role"] == "competitor"
    assert me["team"]["name"]
    assert alice.token and riposte.Client(server.url, token=alice.token).me()["id"] == me["id"]


def test_bad_credentials_raise_auth_errors(server: Server, alice: riposte.Client) -> None:
    with pytest.raises(riposte.AuthError) as wrong:
        riposte.Client(server.url).login("alice", PASSWORD + "!")
    assert (wrong.value.status, wrong.value.code) == (401, "unauthorized")
    assert wrong.value.message == "wrong username or password"
    with pytest.raises(riposte.AuthError, match="unknown or revoked API token"):
        riposte.Client(server.url, token="not-a-token").challenges()
    anonymous = riposte.Client(server.url)
    anonymous.token = None
    with pytest.raises(riposte.AuthError, match="authentication required"):
        anonymous.challenges()


# ------------------------------------------------------------------ challenges and files


def test_challenges_lists_the_bundles(alice: riposte.Client) -> None:
    listed = {c["slug"]: c for c in alice.challenges()}
    assert {EVASION, EXTRACTION, "fine-print"} <= set(listed)
    one = alice.challenge(EVASION)
    assert one["slug"] == EVASION and one["threat"]["epsilon"] == pytest.approx(EPS)
    assert one["description"] and "description" not in listed[EVASION]
    assert {"eval_x.npy", "eval_y.npy", "mlp_weights.npz"} <= {f["name"] for f in one["files"]}
    with pytest.raises(riposte.NotFound, match="not found") as missing:
        alice.challenge("no-such-challenge")
    assert missing.value.status == 404


def test_download_matches_the_listed_hash(alice: riposte.Client, tmp_path: Path) -> None:
    listed = {f["name"]: f for f in alice.challenge(EVASION)["files"]}["eval_x.npy"]
    first = alice.download(EVASION, "eval_x.npy", dest=tmp_path)
    second = alice.download(EVASION, "eval_x.npy", dest=tmp_path / "again.npy")
    assert first == tmp_path / "eval_x.npy" and second == tmp_path / "again.npy"
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert hashlib.sha256(data).hexdigest() == listed["sha256"] and len(data) == listed["size"]
    bundled = REPO / "challenges" / EVASION / "public" / "eval_x.npy"
    if bundled.is_file():
        assert data == bundled.read_bytes()
    with pytest.raises(riposte.NotFound, match="no-such.npy"):
        alice.download(EVASION, "no-such.npy", dest=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.npy", "eval_x.npy"]


def test_load_reads_arrays(alice: riposte.Client, evasion: Any) -> None:
    x, y, weights = evasion
    assert isinstance(x, np.ndarray) and x.shape == (1000, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (1000,) and set(np.unique(y)) <= set(range(10))
    assert weights["W1"].shape == (784, 512) and weights["W3"].shape == (256, 10)
    starter = alice.load(EVASION, "starter.py")
    assert isinstance(starter, bytes) and starter.startswith(b"#!")


# ------------------------------------------------------------------ submissions


def test_a_clean_copy_scores_low(scored: Dict[str, Dict[str, Any]]) -> None:
    clean = scored["clean"]
    assert clean["status"] == "scored" and clean["challenge"] == EVASION and clean["track"] == "attack"
    assert clean["filename"] == "submission.npy"
    assert {"mlp", "cnn"} <= set(rates(clean))
    assert all(rate < 0.2 for rate in rates(clean).values()), clean["results"]


def test_fgsm_fools_the_mlp_more_than_a_clean_copy(scored: Dict[str, Dict[str, Any]]) -> None:
    clean, attack = rates(scored["clean"]), rates(scored["fgsm"])
    assert scored["fgsm"]["status"] == "scored"
    assert attack["mlp"] > 0.5 and attack["mlp"] > clean["mlp"] + 0.3, (attack, clean)
    assert sum(attack.values()) > sum(clean.values())


def test_the_leaderboard_shows_the_team(alice: riposte.Client, scored: Dict[str, Dict[str, Any]]) -> None:
    board = alice.leaderboard(EVASION, track="attack")
    assert board["track"] == "attack" and board["split"] == scored["fgsm"]["split"]
    team = alice.me()["team"]["name"]
    mine = [row for row in board["rows"] if row["team"] == team]
    assert len(mine) == 1, board
    best = scored["fgsm"]
    assert mine[0]["submission"] == best["id"]
    assert mine[0]["score"] == pytest.approx(sum(r["rate"] for r in best["results"]), abs=1e-6)
    with pytest.raises(riposte.RiposteError, match="unknown") as bad:
        alice.leaderboard(EVASION, track="sideways")
    assert (bad.value.status, bad.value.code) == (400, "invalid_input")


def test_bad_files_raise_with_the_servers_message(alice: riposte.Client, evasion: Any) -> None:
    with pytest.raises(riposte.RiposteError) as empty:
        alice.submit(EVASION, b"", track="attack")
    assert (empty.value.status, empty.value.code) == (400, "invalid_input")
    assert empty.value.message == "the file is empty"
    with pytest.raises(riposte.RiposteError, match='track "sideways" is unknown') as track:
        alice.submit(EVASION, evasion[0][:1], track="sideways")
    assert track.value.status == 400

    wrong_shape = alice.submit(EVASION, np.zeros((3, 5), np.float32))
    with pytest.raises(riposte.SubmissionFailed) as rejected:
        wrong_shape.wait(timeout=WAIT)
    final = alice.submission(wrong_shape.id)
    assert final["status"] == "rejected" == rejected.value.code
    assert final["message"] and rejected.value.message == final["message"]
    assert final["message"] in str(rejected.value)
    assert alice.wait(wrong_shape, check=False)["status"] == "rejected"


# ------------------------------------------------------------------ queries


def test_queries_spend_exactly_the_batch(alice: riposte.Client) -> None:
    pool = alice.load(EXTRACTION, "query_pool.npy").astype(np.float32) / 255.0
    out = alice.query(EXTRACTION, pool[:7], target="victim")
    assert out.labels.shape == (7,) and out.probabilities.shape == (7, 10)
    np.testing.assert_allclose(out.probabilities.sum(axis=1), 1.0, atol=0.01)
    assert (out.labels == out.probabilities.argmax(axis=1)).all()
    first = out.queries_remaining
    assert first == alice.budget_left == alice.budget(EXTRACTION, "victim")
    assert out.queries_used == 7 and first > 300

    assert alice.query(EXTRACTION, pool[7:12], target="victim").queries_remaining == first - 5
    chunked = alice.query(EXTRACTION, pool[:250], target="victim", batch_size=100)
    assert len(chunked) == 250 and len(chunked.raw) == 3
    assert chunked.queries_remaining == alice.budget_left == first - 5 - 250
    np.testing.assert_array_equal(chunked.labels[:7], out.labels)

    counter = RequestCounter(alice)
    left = alice.budget_left
    too_many = np.zeros((left + 1, 1, 28, 28), np.float32)
    with pytest.raises(riposte.BudgetExhausted, match="nothing was sent") as refused:
        alice.query(EXTRACTION, too_many, target="victim")
    assert refused.value.status is None and counter.count == 0 and alice.budget_left == left
    assert alice.query(EXTRACTION, pool[:1], target="victim").queries_remaining == left - 1

    with pytest.raises(riposte.NotFound, match="victim"):
        alice.query(EXTRACTION, pool[:1], target="nobody")
    with pytest.raises(riposte.RiposteError, match="shape") as shape:
        alice.query(EXTRACTION, np.zeros((2, 5), np.float32), target="victim")
    assert shape.value.status == 400


def test_a_completion_costs_one_query(alice: riposte.Client) -> None:
    first = alice.complete("autocomplete-leak", "the ", max_chars=5)
    assert isinstance(first["completion"], str) and len(first["completion"]) <= 5
    second = alice.complete("autocomplete-leak", "the ", max_chars=5)
    assert second["completion"] == first["completion"]
    assert second["queries_remaining"] == first["queries_remaining"] - 1 == alice.budget("autocomplete-leak")
    with pytest.raises(riposte.RiposteError, match="max_chars") as too_long:
        alice.complete("autocomplete-leak", "the ", max_chars=100_000)
    assert too_long.value.status == 400


# ------------------------------------------------------------------ flags


def test_flags_answer_correct_or_not(alice: riposte.Client) -> None:
    wrong = alice.submit_flag("fine-print", "riposte{not_the_flag}")
    assert wrong["correct"] is False
    flag = find_flag(alice.load("fine-print", "digit_reader.onnx"))
    assert flag, "no flag found in digit_reader.onnx"
    right = alice.submit_flag("fine-print", flag)
    assert right["correct"] is True and right["first_blood"] is True and right["points"] == 100
