"""Byte-level steps of the wire format that every request takes: joining a head's fields,
making a header line, telling what a header name is, and spelling a request id.

This file is the readable reference and the pure-Python core's code. ``wire.pyx`` beside it
is the compiled core's twin, written in Cython's own syntax: these steps are a handful of C
loops there (no lower-cased copy, no hash, no buffer protocol per field), which plain Python
cannot spell. tests/http/test_wire.py checks the two agree.
"""
from __future__ import annotations

from fulcrum.http.headers import REQUEST_HEADERS, RESPONSE_HEADERS

# What ``request_kind`` and ``response_kind`` return for a name their table does not list.
PASSED = -1

# Connection values that name no header, as most peers spell them (plain_connection).
_PLAIN_SPELLINGS = frozenset({b"close", b"keep-alive", b"Close", b"Keep-Alive"})


def join(parts: list) -> bytes:
    """The bytes of ``parts`` (a list of bytes) one after another."""
    return b"".join(parts)


def header_line(prefix: bytes, value: bytes) -> bytes:
    """``prefix + value + b"\r\n"``: a header line from its name and colon (``prefix``) and
    its value (one allocation in the compiled core, where ``+`` makes two)."""
    return prefix + value + b"\r\n"


def request_kind(name: bytes) -> int:
    """What the proxy does with a request header (http/headers.py ``REQUEST_HEADERS``), by
    its name in any case; ``PASSED`` when the name is not listed."""
    return REQUEST_HEADERS.get(name.lower(), PASSED)


def response_kind(name: bytes) -> int:
    """As ``request_kind``, for a response header (``RESPONSE_HEADERS``)."""
    return RESPONSE_HEADERS.get(name.lower(), PASSED)


def plain_connection(value: bytes) -> bool:
    """A Connection value that names no header: ``close`` or ``keep-alive``, in any case
    (the usual value; anything else goes to headers.named_by_connection)."""
    return value in _PLAIN_SPELLINGS or value.lower() in _PLAIN_SPELLINGS


def request_id(prefix: bytes, count: int) -> bytes:
    """``prefix-0000002a``: the count in at least 8 lower-case hex digits."""
    return b"%s-%08x" % (prefix, count)
