"""Errors raised by the Riposte client.

The server answers every API error as ``{"error": {"code": "...", "message": "..."}}``;
:func:`error_from_response` turns such an answer into the matching exception.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import requests


class RiposteError(Exception):
    """An error answered by the Riposte server (or refused by this client).

    ``status`` is the HTTP status (``None`` when the client refused before
    sending anything), ``code`` the server's machine-readable code (for example
    ``invalid_input``, ``not_found``, ``daily_limit``) and ``message`` its
    human-readable sentence.
    """

    def __init__(self, status: Optional[int], code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        if self.status is None:
            return f"{self.message} ({self.code})"
        return f"{self.message} (HTTP {self.status}, {self.code})"


class AuthError(RiposteError):
    """401 or 403: no or a wrong token or password, a banned account, or an
    action this account may not take (a closed track, a locked challenge)."""


class NotFound(RiposteError):
    """404: no such challenge, file, submission or target (or not visible to you)."""


class RateLimited(RiposteError):
    """429: too many requests, logins or uploads; ``retry_after`` holds the
    server's ``Retry-After`` in seconds when it sent one."""

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after


class BudgetExhausted(RateLimited):
    """The team's query budget for a target cannot pay for a batch: refused by
    the server (429, ``budget_exhausted``) or by the client before sending."""


class SubmissionFailed(RiposteError):
    """A submission ended ``rejected`` or ``failed``; ``submission`` is the
    final submission dict and ``message`` the server's reason."""

    def __init__(self, submission: Dict[str, Any]) -> None:
        status = str(submission.get("status", "failed"))
        reason = submission.get("message") or f"submission {submission.get('id')} {status}"
        super().__init__(None, status, str(reason))
        self.submission = submission


class WaitTimeout(RiposteError):
    """A submission was not scored within the time :meth:`Client.wait` was given;
    ``submission`` is the last dict seen."""

    def __init__(self, submission: Dict[str, Any], seconds: float) -> None:
        super().__init__(
            None,
            "timeout",
            f"submission {submission.get('id')} is still {submission.get('status')!r} "
            f"after {seconds:g} s",
        )
        self.submission = submission


def _retry_after(response: requests.Response) -> Optional[float]:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def error_from_response(response: requests.Response) -> RiposteError:
    """The exception for a non-2xx answer, with the server's code and message.

    A body that is not the API's JSON error (a proxy's HTML page, say) keeps its
    first 300 characters as the message and ``http_<status>`` as the code.
    """
    status = response.status_code
    code, message = f"http_{status}", (response.text or response.reason or "").strip()[:300]
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        pass
    if status in (401, 403):
        return AuthError(status, code, message)
    if status == 404:
        return NotFound(status, code, message)
    if status == 429:
        kind = BudgetExhausted if code == "budget_exhausted" else RateLimited
        return kind(status, code, message, _retry_after(response))
    return RiposteError(status, code, message)
