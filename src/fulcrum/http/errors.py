"""Protocol errors that carry the HTTP status they suggest (h11-style).

Raised from parser callbacks and request checks; the client connection turns
them into a short response and closes, because after a framing error nothing
that follows on the connection can be trusted.
"""
from __future__ import annotations


class HttpError(Exception):
    """A request we refuse: ``status`` is what we answer, ``reason`` says why; ``headers``
    are extra response header lines (``Allow: …\r\n`` for a 405)."""

    def __init__(self, status: int, reason: str, headers: bytes = b"") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class BadRequest(HttpError):
    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)
