"""Tests that need no server: serialisation, error parsing, and the client's
behaviour against canned HTTP answers."""
from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest
import requests
from requests.structures import CaseInsensitiveDict

import riposte

URL = "http://riposte.test"

Answer = Tuple[int, Any, Dict[str, str]]


class FakeServer(requests.adapters.BaseAdapter):
    """A transport answering from `handler(request) -> (status, body, headers)`;
    dict bodies are sent as JSON. Records every request it is given."""

    def __init__(self, handler: Callable[[requests.PreparedRequest], Answer]) -> None:
        super().__init__()
        self.handler = handler
        self.calls: List[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        assert kwargs.get("timeout") is not None, "every request needs a timeout"
        self.calls.append(request)
        status, body, headers = self.handler(request)
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response._content_consumed = True
        response.headers = CaseInsensitiveDict(headers)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def client_with(handler: Callable[[requests.PreparedRequest], Answer]) -> Tuple[riposte.Client, FakeServer]:
    fake = FakeServer(handler)
    session = requests.Session()
    session.mount("http://", fake)
    return riposte.Client(URL, token="tok", session=session), fake


def error(status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None) -> Answer:
    return status, {"error": {"code": code, "message": message}}, headers or {}


def fake_response(answer: Answer) -> requests.Response:
    status, body, headers = answer
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers = CaseInsensitiveDict(headers)
    return response


# ------------------------------------------------------------------ serialisation


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32),
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        np.array([1.5, -2.0, np.inf]),
        np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    ],
)
def test_npy_round_trip(array: np.ndarray) -> None:
    data = riposte.npy_bytes(array)
    assert data.startswith(b"\x93NUMPY")
    back = riposte.parse_array_file(data, "x.npy")
    assert isinstance(back, np.ndarray)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_npz_round_trip_and_other_files() -> None:
    x, y = np.ones((2, 1, 28, 28), np.float32), np.array([3, 8])
    back = riposte.parse_array_file(riposte.npz_bytes({"x": x, "y": y}), "poison.NPZ")
    assert set(back) == {"x", "y"}
    np.testing.assert_array_equal(back["x"], x)
    np.testing.assert_array_equal(back["y"], y)
    assert riposte.parse_array_file(b"hello", "notes.txt") == b"hello"


def test_object_arrays_are_refused() -> None:
    with pytest.raises(ValueError):
        riposte.npy_bytes(np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        riposte.npz_bytes({"x": np.array([None], dtype=object)})


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "status, code, kind",
    [
        (400, "invalid_input", riposte.RiposteError),
        (401, "unauthorized", riposte.AuthError),
        (403, "closed", riposte.AuthError),
        (404, "not_found", riposte.NotFound),
        (409, "duplicate", riposte.RiposteError),
        (429, "daily_limit", riposte.RateLimited),
        (429, "budget_exhausted", riposte.BudgetExhausted),
    ],
)
def test_errors_carry_the_servers_code_and_message(status: int, code: str, kind: type) -> None:
    e = riposte.error_from_response(fake_response(error(status, code, f"it said {code}")))
    assert type(e) is kind
    assert (e.status, e.code, e.message) == (status, code, f"it said {code}")
    assert f"it said {code}" in str(e) and str(status) in str(e)


def test_rate_limits_keep_retry_after() -> None:
    answer = error(429, "rate_limited", "slow down", {"Retry-After": "3"})
    e = riposte.error_from_response(fake_response(answer))
    assert isinstance(e, riposte.RateLimited) and not isinstance(e, riposte.BudgetExhausted)
    assert e.retry_after == 3.0


def test_a_body_that_is_not_the_api_error_is_kept() -> None:
    e = riposte.error_from_response(fake_response((502, b"<html>Bad Gateway</html>", {})))
    assert type(e) is riposte.RiposteError
    assert (e.status, e.code, e.message) == (502, "http_502", "<html>Bad Gateway</html>")


# ------------------------------------------------------------------ client against canned answers


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIPOSTE_URL", "http://example.org:9000/")
    monkeypatch.setenv("RIPOSTE_TOKEN", "from-env")
    rp = riposte.Client()
    assert (rp.url, rp.token) == ("http://example.org:9000", "from-env")
    rp = riposte.Client("http://other/", token="given")
    assert (rp.url, rp.token) == ("http://other", "given")
    monkeypatch.delenv("RIPOSTE_URL")
    monkeypatch.delenv("RIPOSTE_TOKEN")
    assert (riposte.Client().url, riposte.Client().token) == (riposte.DEFAULT_URL, None)


def test_login_uses_the_token_it_got() -> None:
    def handler(r: requests.PreparedRequest) -> Answer:
        if r.path_url == "/api/v1/auth/token":
            body = json.loads(r.body)
            assert body == {"username": "alice", "password": "pw", "name": "riposte-client"}
            return 200, {"token": "fresh"}, {}
        assert r.headers["Authorization"] == "Bearer fresh"
        return 200, {"challenges": [{"slug": "a"}, {"slug": "b"}]}, {}

    rp, fake = client_with(handler)
    assert rp.login("alice", "pw") is rp and rp.token == "fresh"
    assert [c["slug"] for c in rp.challenges()] == ["a", "b"]


def test_query_sends_npy_and_tracks_the_budget() -> None:
    remaining = [30]

    def handler(r: requests.PreparedRequest) -> Answer:
        assert r.headers["Content-Type"] == "application/x-npy"
        assert r.path_url == "/api/v1/challenges/mnist-extraction/query?target=victim"
        x = np.load(io.BytesIO(r.body))
        remaining[0] -= len(x)
        probs = np.full((len(x), 10), 0.1)
        body = {"labels": [0] * len(x), "probabilities": probs.tolist(),
                "queries_used": 30 - remaining[0], "queries_remaining": remaining[0]}
        return 200, body, {"X-Queries-Remaining": str(remaining[0])}

    rp, fake = client_with(handler)
    assert rp.budget("mnist-extraction", "victim") is None
    out = rp.query("mnist-extraction", np.zeros((4, 1, 28, 28), np.float32), target="victim")
    assert out.labels.shape == (4,) and out.probabilities.shape == (4, 10)
    assert out.queries_remaining == rp.budget_left == rp.budget("mnist-extraction", "victim") == 26
    out = rp.query("mnist-extraction", np.zeros((25, 1, 28, 28), np.float32), target="victim", batch_size=10)
    assert len(out) == 25 and len(fake.calls) == 4 and rp.budget_left == 1
    with pytest.raises(riposte.BudgetExhausted) as refused:
        rp.query("mnist-extraction", np.zeros((2, 1, 28, 28), np.float32), target="victim")
    assert refused.value.status is None and "nothing was sent" in refused.value.message
    assert len(fake.calls) == 4


def test_a_budget_refusal_raises_and_updates_the_budget() -> None:
    rp, fake = client_with(lambda r: error(
        429, "budget_exhausted",
        "this request needs 5 queries but your team has 3 of its 100 left for this target"))
    with pytest.raises(riposte.BudgetExhausted, match="has 3 of its 100"):
        rp.query("s", np.zeros((5, 2), np.float32))
    assert rp.budget("s") == 3 and len(fake.calls) == 1
    with pytest.raises(riposte.BudgetExhausted):
        rp.query("s", np.zeros((4, 2), np.float32))
    assert len(fake.calls) == 1


def test_short_rate_limits_are_waited_out() -> None:
    answers = [error(429, "rate_limited", "too many queries per second", {"Retry-After": "0"}),
               (200, {"prompt": "p", "completion": "q", "queries_used": 1, "queries_remaining": 9},
                {"X-Queries-Remaining": "9"})]
    rp, fake = client_with(lambda r: answers.pop(0))
    assert rp.complete("autocomplete-leak", "p", max_chars=5)["completion"] == "q"
    assert len(fake.calls) == 2 and rp.budget("autocomplete-leak") == 9
    assert json.loads(fake.calls[1].body) == {"prompt": "p", "max_chars": 5}


def test_wait_polls_until_final() -> None:
    statuses = ["queued", "running", "scored"]
    rp, fake = client_with(lambda r: (200, {"id": 7, "status": statuses.pop(0)}, {}))
    assert rp.wait(7, poll=0.001)["status"] == "scored"
    assert [c.path_url for c in fake.calls] == ["/api/v1/submissions/7"] * 3


def test_wait_raises_the_reason_of_a_rejection() -> None:
    rejected = {"id": 8, "status": "rejected", "message": "shape (3, 5): expected (1000, 1, 28, 28)"}
    rp, _ = client_with(lambda r: (200, rejected, {}))
    with pytest.raises(riposte.SubmissionFailed, match=r"shape \(3, 5\)") as failed:
        rp.wait(8)
    assert failed.value.submission == rejected and failed.value.code == "rejected"
    assert rp.wait(8, check=False) == rejected


def test_wait_gives_up_after_its_timeout() -> None:
    rp, _ = client_with(lambda r: (200, {"id": 9, "status": "queued"}, {}))
    with pytest.raises(riposte.WaitTimeout, match="still 'queued'"):
        rp.wait(9, timeout=0.05, poll=0.01)


def test_submit_sends_the_fields_the_server_reads(tmp_path: Any) -> None:
    seen: List[bytes] = []

    def handler(r: requests.PreparedRequest) -> Answer:
        assert r.path_url == "/api/v1/challenges/mnist-evasion/submissions"
        assert r.headers["Authorization"] == "Bearer tok"
        seen.append(r.body)
        return 201, {"id": len(seen), "status": "queued"}, {}

    rp, _ = client_with(handler)
    adv = np.zeros((2, 1, 28, 28), np.float32)
    sub = rp.submit("mnist-evasion", adv)
    assert (sub.id, sub.status) == (1, "queued")
    assert b'name="track"\r\n\r\nattack' in seen[0]
    assert b'name="file"; filename="submission.npy"' in seen[0]
    assert riposte.npy_bytes(adv) in seen[0]
    model = tmp_path / "defense.onnx"
    model.write_bytes(b"ONNX-BYTES")
    rp.submit("mnist-evasion", model, track="defense")
    assert b'filename="defense.onnx"' in seen[1] and b"ONNX-BYTES" in seen[1]
    assert b'name="track"\r\n\r\ndefense' in seen[1]


def test_download_is_checked_and_atomic(tmp_path: Any) -> None:
    content = b"\x93NUMPY fake bytes"
    good = hashlib.sha256(content).hexdigest()
    announced = [good]

    def handler(r: requests.PreparedRequest) -> Answer:
        if r.path_url.endswith("/missing.npy"):
            return error(404, "not_found", 'file "missing.npy" of challenge "c" not found')
        return 200, content, {"X-Content-Sha256": announced[0]}

    rp, _ = client_with(handler)
    path = rp.download("c", "eval_x.npy", dest=tmp_path)
    assert path == tmp_path / "eval_x.npy" and path.read_bytes() == content
    announced[0] = "0" * 64
    with pytest.raises(riposte.RiposteError, match="sha256") as corrupt:
        rp.download("c", "eval_x.npy", dest=tmp_path / "other.npy")
    assert corrupt.value.code == "corrupt_download"
    with pytest.raises(riposte.NotFound, match="missing.npy"):
        rp.download("c", "missing.npy", dest=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_x.npy"]
