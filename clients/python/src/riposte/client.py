"""The Riposte REST API (``/api/v1``) from Python: one :class:`Client`."""
from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote

import numpy as np
import requests

from .errors import (
    BudgetExhausted,
    RateLimited,
    RiposteError,
    SubmissionFailed,
    WaitTimeout,
    error_from_response,
)

DEFAULT_URL = "http://127.0.0.1:8080"
#: Statuses after which a submission never changes (``queued`` and ``running`` come first).
FINAL_STATUSES = frozenset({"scored", "rejected", "failed"})
#: Seconds to connect, seconds to wait for each read.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 120.0)
_CHUNK = 1 << 20
#: A query refused as too frequent is retried this often, when the wait is short.
_RATE_RETRIES = 5
_MAX_RATE_WAIT = 5.0
_BUDGET_SENTENCE = re.compile(r"has (\d+) of its \d+ left")

Timeout = Union[float, Tuple[float, float]]
#: What :meth:`Client.submit` uploads: an array (.npy), arrays by name (.npz),
#: raw bytes, or the path of a file sent as it is.
Upload = Union[np.ndarray, Mapping[str, Any], bytes, str, "os.PathLike[str]"]


def npy_bytes(array: Any) -> bytes:
    """``array`` as the bytes ``np.save`` writes (object arrays are refused)."""
    a = np.asarray(array)
    buffer = io.BytesIO()
    np.save(buffer, a, allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """The arrays as an uncompressed ``.npz`` (``np.savez``), keyed by name."""
    named = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in named.items():
        if a.dtype.hasobject:
            raise ValueError(f"array {name!r} holds Python objects: only numeric arrays upload")
    buffer = io.BytesIO()
    np.savez(buffer, **named)  # type: ignore[arg-type]  # numpy's stub types the names as flags
    return buffer.getvalue()


def parse_array_file(data: bytes, name: str) -> Union[np.ndarray, Dict[str, np.ndarray], bytes]:
    """Bytes of a file named ``name``: an array for ``.npy``, a dict of arrays for
    ``.npz``, otherwise the bytes themselves."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".npy":
        array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
        return array
    if suffix == ".npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    return data


def _check_sha256(expected: Optional[str], actual: str, what: str) -> None:
    if expected and expected.lower() != actual:
        raise RiposteError(
            None, "corrupt_download", f"{what}: sha256 {actual} but the server announced {expected}"
        )


@dataclass(frozen=True)
class QueryAnswer:
    """A black-box model's answer to a batch, in the challenge's output mode.

    ``labels`` always; ``probabilities`` ([n, classes]) or ``confidences`` ([n])
    when the challenge answers them; the queries spent and left on this target
    after the (last) request; ``raw`` the JSON answer(s) as sent.
    """

    labels: np.ndarray
    probabilities: Optional[np.ndarray]
    confidences: Optional[np.ndarray]
    queries_used: Optional[int]
    queries_remaining: Optional[int]
    raw: List[Dict[str, Any]]

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def merge(cls, answers: List[Dict[str, Any]], remaining: Optional[int]) -> "QueryAnswer":
        """One answer from the JSON answers of consecutive batches."""

        def joined(key: str, dtype: Any) -> Optional[np.ndarray]:
            if not all(key in a for a in answers):
                return None
            return np.concatenate([np.asarray(a[key], dtype=dtype) for a in answers])

        labels = joined("labels", np.int64)
        last = answers[-1]
        return cls(
            labels=labels if labels is not None else np.zeros(0, np.int64),
            probabilities=joined("probabilities", np.float64),
            confidences=joined("confidences", np.float64),
            queries_used=last.get("queries_used"),
            queries_remaining=remaining,
            raw=answers,
        )


class Submission:
    """An upload the server accepted: its ``id``, the last ``info`` dict seen,
    and :meth:`wait` to follow it until it is scored."""

    def __init__(self, client: "Client", id: int, info: Dict[str, Any]) -> None:
        self.client = client
        self.id = id
        self.info = info

    @property
    def status(self) -> Optional[str]:
        """The status last seen: ``queued``, ``running``, ``scored``, ``rejected`` or ``failed``."""
        return self.info.get("status")

    def refresh(self) -> Dict[str, Any]:
        """Fetch the submission again (``GET /api/v1/submissions/{id}``)."""
        self.info = self.client.submission(self.id)
        return self.info

    def wait(self, timeout: float = 600.0, *, check: bool = True) -> Dict[str, Any]:
        """Poll until the submission is final and return it; see :meth:`Client.wait`."""
        self.info = self.client.wait(self.id, timeout, check=check)
        return self.info

    def __repr__(self) -> str:
        return f"Submission(id={self.id}, status={self.status!r})"


class Client:
    """A session with one Riposte server.

    ``url`` defaults to ``$RIPOSTE_URL`` (else ``http://127.0.0.1:8080``) and
    ``token`` to ``$RIPOSTE_TOKEN``; without a token, call :meth:`login`.
    ``timeout`` (seconds, or ``(connect, read)``) applies to every request.
    Every method raises :class:`riposte.RiposteError` (or a subclass) with the
    server's code and message when the server refuses.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session: Optional[requests.Session] = None,
    ) -> None:
        self.url = (url or os.environ.get("RIPOSTE_URL") or DEFAULT_URL).rstrip("/")
        self.token = token or os.environ.get("RIPOSTE_TOKEN") or None
        self.timeout = timeout
        self.session = session or requests.Session()
        #: Queries left on the target of the last query answered (``X-Queries-Remaining``).
        self.budget_left: Optional[int] = None
        self._budgets: Dict[Tuple[str, str], int] = {}

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self.session.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, token={'set' if self.token else None})"

    # ---------------------------------------------------------------- plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        kwargs.setdefault("timeout", self.timeout)
        response = self.session.request(method, self.url + path, headers=headers, **kwargs)
        if response.status_code >= 400:
            try:
                raise error_from_response(response)
            finally:
                response.close()
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Dict[str, Any]:
        answer: Dict[str, Any] = self._request(method, path, **kwargs).json()
        return answer

    def _retrying(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request that waits out short ``rate_limited`` refusals (never budget ones)."""
        for attempt in range(_RATE_RETRIES + 1):
            try:
                return self._request(method, path, **kwargs)
            except RateLimited as e:
                wait = e.retry_after if e.retry_after is not None else 1.0
                if isinstance(e, BudgetExhausted) or attempt == _RATE_RETRIES or wait > _MAX_RATE_WAIT:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _challenge_path(slug: str, *rest: str) -> str:
        return "/".join(["/api/v1/challenges", quote(slug, safe=""), *rest])

    def _file_path(self, slug: str, name: str) -> str:
        return self._challenge_path(slug, "files", quote(name, safe="/"))

    # ---------------------------------------------------------------- account

    def login(self, username: str, password: str, *, name: str = "riposte-client") -> "Client":
        """Exchange a username and password for an API token and use it from now on.

        ``name`` labels the token on the account page; asking again with the
        same name replaces that token. Returns the client, so
        ``Client(url).login(user, pw)`` reads as one line.
        """
        body = {"username": username, "password": password, "name": name}
        self.token = str(self._json("POST", "/api/v1/auth/token", json=body)["token"])
        return self

    def me(self) -> Dict[str, Any]:
        """The signed-in account: ``id``, ``username``, ``role`` and ``team`` (``{"id", "name"}``)."""
        return self._json("GET", "/api/v1/me")

    # ---------------------------------------------------------------- challenges

    def challenges(self) -> List[Dict[str, Any]]:
        """Every challenge you may see (``GET /api/v1/challenges``), each a dict
        with ``slug``, ``title``, ``kind``, ``task``, ``threat``, ``targets``,
        ``tracks`` and ``files`` (``name``, ``size``, ``sha256``, ``url``)."""
        return list(self._json("GET", "/api/v1/challenges")["challenges"])

    def challenge(self, slug: str) -> Dict[str, Any]:
        """One challenge, with its ``description`` (the README) and ``hints``."""
        return self._json("GET", self._challenge_path(slug))

    def download(self, slug: str, name: str, dest: Union[str, "os.PathLike[str]"] = ".") -> Path:
        """Save a public file of a challenge and return its path.

        ``dest`` is a folder (the file keeps its name) or a file path. The body
        is streamed to a temporary file beside the destination, checked against
        the sha256 the server announces, then renamed into place: an interrupted
        or corrupt download never leaves a half-written file.
        """
        dest = Path(dest)
        path = dest / PurePosixPath(name).name if dest.is_dir() else dest
        with self._request("GET", self._file_path(slug, name), stream=True) as response:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            try:
                digest = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_content(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                _check_sha256(response.headers.get("X-Content-Sha256"), digest.hexdigest(), name)
                os.chmod(part, 0o644)
                os.replace(part, path)
            except BaseException:
                Path(part).unlink(missing_ok=True)
                raise
        return path

    def load(self, slug: str, name: str) -> Union[np.ndarray, Dict[str, np.ndarray], bytes]:
        """A public file of a challenge, in memory: a numpy array for ``.npy``, a
        dict of arrays for ``.npz``, the bytes of anything else (sha256-checked)."""
        response = self._request("GET", self._file_path(slug, name))
        data = response.content
        _check_sha256(
            response.headers.get("X-Content-Sha256"), hashlib.sha256(data).hexdigest(), name
        )
        return parse_array_file(data, name)

    # ---------------------------------------------------------------- submissions

    def submit(
        self,
        slug: str,
        data: Upload,
        track: str = "attack",
        *,
        filename: Optional[str] = None,
    ) -> Submission:
        """Upload a submission to a challenge's ``attack`` or ``defense`` track.

        ``data`` is a numpy array (saved with ``np.save`` in memory and sent as
        ``submission.npy``), a mapping of arrays (sent as ``submission.npz``,
        e.g. ``{"x": x, "y": y}`` for poisoning), raw ``bytes``, or the path of a
        file (an ``.onnx`` defense or surrogate, a ``.csv``...) sent as it is.
        Returns the queued :class:`Submission`; call ``.wait()`` for its score.
        """
        with ExitStack() as stack:
            name: str
            body: Union[bytes, BinaryIO]
            if isinstance(data, np.ndarray):
                name, body = "submission.npy", npy_bytes(data)
            elif isinstance(data, Mapping):
                name, body = "submission.npz", npz_bytes(data)
            elif isinstance(data, (bytes, bytearray, memoryview)):
                name, body = "submission.bin", bytes(data)
            else:
                path = Path(data)
                name, body = path.name, stack.enter_context(path.open("rb"))
            info = self._json(
                "POST",
                self._challenge_path(slug, "submissions"),
                data={"track": track},
                files={"file": (filename or name, body, "application/octet-stream")},
            )
        return Submission(self, int(info["id"]), info)

    def submission(self, submission_id: Union[int, Submission]) -> Dict[str, Any]:
        """A submission of your team (``GET /api/v1/submissions/{id}``): ``status``,
        ``message``, and once scored ``results`` (per opponent) and ``metrics``."""
        sid = submission_id.id if isinstance(submission_id, Submission) else int(submission_id)
        return self._json("GET", f"/api/v1/submissions/{sid}")

    def wait(
        self,
        submission_id: Union[int, Submission],
        timeout: float = 600.0,
        *,
        check: bool = True,
        poll: float = 0.5,
        max_poll: float = 5.0,
    ) -> Dict[str, Any]:
        """Poll a submission, backing off from ``poll`` to ``max_poll`` seconds,
        until its status is final (``scored``, ``rejected`` or ``failed``) and
        return it.

        With ``check`` (the default) a rejected or failed submission raises
        :class:`riposte.SubmissionFailed` with the server's reason; past
        ``timeout`` seconds :class:`riposte.WaitTimeout` is raised.
        """
        deadline = time.monotonic() + timeout
        delay = poll
        while True:
            info = self.submission(submission_id)
            if info.get("status") in FINAL_STATUSES:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(info, timeout)
            time.sleep(min(delay, left))
            delay = min(delay * 1.5, max_poll)
        if check and info["status"] != "scored":
            raise SubmissionFailed(info)
        return info

    def leaderboard(self, slug: str, track: str = "attack") -> Dict[str, Any]:
        """A challenge's leaderboard on one track: ``{"track", "split", "rows",
        "frozen_at"}``, each row ``rank``, ``team``, ``submission``, ``score``,
        ``opponents``, ``queries_used`` and ``reached_at``."""
        return self._json(
            "GET", self._challenge_path(slug, "leaderboard"), params={"track": track}
        )

    # ---------------------------------------------------------------- queries

    def budget(self, slug: str, target: Optional[str] = None) -> Optional[int]:
        """Queries your team has left on ``target`` of ``slug`` as of the last
        answer this client saw (``None`` before the first query: the API tells
        the budget only in its answers)."""
        return self._budgets.get((slug, target or ""))

    def _spend_check(self, slug: str, target: Optional[str], n: int) -> None:
        known = self.budget(slug, target)
        if known is not None and n > known:
            raise BudgetExhausted(
                None,
                "budget_exhausted",
                f"this batch needs {n} queries but your team has {known} left on "
                f"{target or 'the default target'} of {slug!r}; nothing was sent",
            )

    def _note_budget(self, slug: str, target: Optional[str], remaining: Optional[int]) -> None:
        if remaining is not None:
            self._budgets[(slug, target or "")] = remaining
            self.budget_left = remaining

    def _answered(self, slug: str, target: Optional[str], response: requests.Response) -> Dict[str, Any]:
        answer: Dict[str, Any] = response.json()
        header = response.headers.get("X-Queries-Remaining")
        remaining = int(header) if header is not None else answer.get("queries_remaining")
        self._note_budget(slug, target, remaining)
        return answer

    def _query_request(self, slug: str, target: Optional[str], **kwargs: Any) -> requests.Response:
        try:
            return self._retrying("POST", self._challenge_path(slug, "query"), **kwargs)
        except BudgetExhausted as e:
            left = _BUDGET_SENTENCE.search(e.message)
            if left:
                self._note_budget(slug, target, int(left.group(1)))
            raise

    def query(
        self,
        slug: str,
        inputs: Any,
        target: Optional[str] = None,
        *,
        batch_size: Optional[int] = None,
    ) -> QueryAnswer:
        """Ask a black-box model about a batch of inputs ([n, *input_shape]).

        The batch is sent as an ``application/x-npy`` body; ``target`` is an
        organizer target (``"mlp"``) or ``"defense:<id>"`` (default: the
        challenge's first). Each example costs one query from your team's
        budget; ``budget_left`` then holds ``X-Queries-Remaining``. A batch
        larger than the budget last seen is refused before sending, and a
        server refusal raises :class:`riposte.BudgetExhausted` too. With
        ``batch_size``, the inputs go in requests of at most that many examples
        (the server takes at most the challenge's ``max_batch``, often 100).
        """
        x = np.asarray(inputs)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError("inputs must hold at least one example: shape [n, *input_shape]")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._spend_check(slug, target, len(x))
        step = batch_size or len(x)
        params = {"target": target} if target else None
        answers = []
        for start in range(0, len(x), step):
            response = self._query_request(
                slug,
                target,
                params=params,
                data=npy_bytes(x[start : start + step]),
                headers={"Content-Type": "application/x-npy"},
            )
            answers.append(self._answered(slug, target, response))
        return QueryAnswer.merge(answers, self.budget(slug, target))

    def complete(
        self,
        slug: str,
        prompt: str,
        max_chars: Optional[int] = None,
        target: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Ask a text model (``autocomplete-leak``) to continue ``prompt``; one
        query per call. Returns ``{"prompt", "completion", "queries_used",
        "queries_remaining"}``."""
        self._spend_check(slug, target, 1)
        body: Dict[str, Any] = {"prompt": prompt}
        if max_chars is not None:
            body["max_chars"] = max_chars
        if target:
            body["target"] = target
        return self._answered(slug, target, self._query_request(slug, target, json=body))

    # ---------------------------------------------------------------- flags

    def submit_flag(self, slug: str, flag: str) -> Dict[str, Any]:
        """Try a flag on a secret challenge: ``{"correct", "points",
        "first_blood", "solves"}`` (a wrong flag is ``correct: false``, not an error)."""
        return self._json("POST", self._challenge_path(slug, "flag"), json={"flag": flag})
