"""Python client for Riposte, the attack-and-defend ML-security competition platform.

    import riposte
    rp = riposte.Client("http://localhost:8080", token="...")   # or .login(user, password)
    x = rp.load("mnist-evasion", "eval_x.npy")
    print(rp.submit("mnist-evasion", x, track="attack").wait())
"""
from .client import (
    DEFAULT_URL,
    FINAL_STATUSES,
    Client,
    QueryAnswer,
    Submission,
    npy_bytes,
    npz_bytes,
    parse_array_file,
)
from .errors import (
    AuthError,
    BudgetExhausted,
    NotFound,
    RateLimited,
    RiposteError,
    SubmissionFailed,
    WaitTimeout,
    error_from_response,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "FINAL_STATUSES",
    "AuthError",
    "BudgetExhausted",
    "Client",
    "NotFound",
    "QueryAnswer",
    "RateLimited",
    "RiposteError",
    "Submission",
    "SubmissionFailed",
    "WaitTimeout",
    "error_from_response",
    "npy_bytes",
    "npz_bytes",
    "parse_array_file",
]
