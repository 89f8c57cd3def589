# Health-check verdicts, sans-IO: whether one check's outcome (a status and body, or an error)
# counts as a success, with the reason worded for logs and status pages. No sockets, no clock.
from __future__ import annotations

import re

StatusRange = tuple[int, int]
DEFAULT_EXPECT_STATUS: StatusRange = (200, 399)

# Where a check was when it failed: opening its connection, or sending and reading the response.
CONNECT = "connect"
RESPONSE = "response"

_STATUS_RANGE = re.compile(r"(\d{3})(?:-(\d{3}))?\Z")


class CheckFailed(Exception):
    """A check failed for a reason already worded for people, e.g. ``"invalid response: …"``."""


def parse_status_range(text: str | int) -> StatusRange:
    """``"200-399"`` → ``(200, 399)``; a single code ``"204"`` → ``(204, 204)``."""
    raw = str(text).strip()
    m = _STATUS_RANGE.match(raw)
    if m is None:
        raise ValueError(f"expected status must be a code like 200 or a range like 200-399 (got {text!r})")
    low = int(m.group(1))
    high = int(m.group(2) or low)
    check_status_range((low, high))
    return low, high


def check_status_range(expect: StatusRange) -> None:
    """Raise ValueError unless ``expect`` is ``(low, high)`` with 100 <= low <= high <= 599."""
    low, high = expect
    if not (100 <= low <= 599 and 100 <= high <= 599):
        raise ValueError(f"expected status codes must be within 100-599 (got {format_status_range(expect)})")
    if low > high:
        raise ValueError(f"expected status range must go from low to high (got {low}-{high})")


def format_status_range(expect: StatusRange) -> str:
    low, high = expect
    return str(low) if low == high else f"{low}-{high}"


def evaluate(status: int | None, body: bytes | None, error: str | None,
             expect_status: StatusRange = DEFAULT_EXPECT_STATUS,
             expect_body: bytes | None = None) -> tuple[bool, str]:
    """``(ok, reason)`` for one check: an error fails it, then the status must fall in
    ``expect_status`` (inclusive), then the body must contain ``expect_body`` if given."""
    if error is not None:
        return False, error
    if status is None:
        return False, "no response"
    low, high = expect_status
    if not low <= status <= high:
        return False, f"status {status} not in {format_status_range(expect_status)}"
    if expect_body is not None and expect_body not in (body or b""):
        shown = expect_body.decode("utf-8", "replace")
        return False, f"body does not contain {shown!r}"
    return True, f"status {status}"


def describe_error(exc: BaseException, *, phase: str, timeout: float) -> str:
    """The reason a check that raised ``exc`` during ``phase`` (CONNECT or RESPONSE) failed."""
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, TimeoutError):
        prefix = "connect timeout" if phase == CONNECT else "timeout"
        return f"{prefix} after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connect refused"
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        if phase == CONNECT:
            return f"connect failed: {what}"
        if isinstance(exc, ConnectionResetError):
            return "connection reset"
        return f"connection error: {what}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
