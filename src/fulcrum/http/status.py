"""Reason phrases for the statuses Fulcrum itself produces."""
from __future__ import annotations

from http import HTTPStatus

REASONS: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


def reason(status: int) -> bytes:
    return REASONS.get(status, b"Unknown")
