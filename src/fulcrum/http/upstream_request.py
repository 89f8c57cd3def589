"""The request a backend is about to be sent, as filters may change it (``on_upstream_request``):
method, target and the passed-on header fields. Pure: no I/O, no configuration.

Invariants kept whatever a filter does: the target stays origin-form and the method a token;
no name or value holds CR, LF or NUL (no header injection, no request smuggling); and the
names Fulcrum owns (hop-by-hop, Host, the framing and forwarding headers, X-Request-ID:
``fulcrum.http.headers.NEVER_NOMINATED``) can be neither set, added nor removed. Each
refusal is a ValueError naming the header or the value, which the exchange turns into a 500.
"""
from __future__ import annotations

import re

from fulcrum.http.headers import HOP_BY_HOP, NEVER_NOMINATED, PEER, REQUEST_HEADERS

# A header name or a method: an RFC 9110 §5.6.2 token.
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# What a header value may not hold: CR and LF end the line, NUL ends it for some readers.
_INJECTION = re.compile(rb"[\r\n\x00]")
# A request target passed on: origin-form, visible ASCII (and obs-text) only: no space, no control.
_ORIGIN_FORM = re.compile(rb"/[\x21-\x7e\x80-\xff]*")


def ownership(lower: bytes) -> str:
    """Why a header Fulcrum keeps to itself (``lower``: its lower-cased name) cannot be
    changed: the end of a refusal message, shared with ``fulcrum check``."""
    if lower in HOP_BY_HOP:
        return "a hop-by-hop header describes one connection; it cannot be set or removed"
    if REQUEST_HEADERS.get(lower) == PEER:
        return "passed on only by the forwarded_headers policy; it cannot be set or removed"
    return "Fulcrum writes this header itself; it cannot be set or removed"


def refused_name(name: bytes) -> str | None:
    """Why a filter may not touch request header ``name``, or None when it may."""
    if not isinstance(name, bytes) or not _TOKEN.fullmatch(name):
        return f"not a valid header name (got {name!r})"
    lower = name.lower()
    if lower in NEVER_NOMINATED:
        return f"{name.decode('latin-1')}: {ownership(lower)}"
    return None


def _checked_name(name: bytes) -> bytes:
    problem = refused_name(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def _checked_value(name: bytes, value: bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError(f"{name.decode('latin-1')}: header values are bytes (got {type(value).__name__})")
    if _INJECTION.search(value):
        raise ValueError(f"{name.decode('latin-1')}: a header value may not hold CR, LF or NUL (got {value!r})")
    return value


class UpstreamHeaders:
    """The header fields passed on to the backend, as ``(name, value)`` byte pairs in order,
    names in their original case. Names are compared case-insensitively."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self._pairs = pairs  # trusted: built by the exchange from the parsed, stripped head

    def get(self, name: bytes) -> bytes | None:
        """The first value of ``name``, or None."""
        lower = name.lower()
        for key, value in self._pairs:
            if key.lower() == lower:
                return value
        return None

    def get_all(self, name: bytes) -> list[bytes]:
        """Every value of ``name``, in order."""
        lower = name.lower()
        return [value for key, value in self._pairs if key.lower() == lower]

    def has(self, name: bytes) -> bool:
        return self.get(name) is not None

    def set(self, name: bytes, value: bytes) -> None:
        """Replace every ``name`` field by one with ``value`` (where the first one was),
        or append it when there was none."""
        value = _checked_value(_checked_name(name), value)
        lower = name.lower()
        pairs = self._pairs
        for i, (key, _) in enumerate(pairs):
            if key.lower() == lower:
                pairs[i] = (name, value)
                pairs[i + 1:] = [pair for pair in pairs[i + 1:] if pair[0].lower() != lower]
                return
        pairs.append((name, value))

    def add(self, name: bytes, value: bytes) -> None:
        """Append a ``name`` field, after any already there."""
        self._pairs.append((name, _checked_value(_checked_name(name), value)))

    def remove(self, name: bytes) -> None:
        """Drop every ``name`` field (none there is fine)."""
        lower = _checked_name(name).lower()
        self._pairs[:] = [pair for pair in self._pairs if pair[0].lower() != lower]

    def items(self) -> list[tuple[bytes, bytes]]:
        """The pairs to serialise, in order (the list itself: read it, do not keep it)."""
        return self._pairs

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"UpstreamHeaders({self._pairs!r})"


class UpstreamRequest:
    """Method, target and headers of the request to the backend; ``method`` and ``target``
    are assignable bytes, checked on assignment."""

    __slots__ = ("_method", "_target", "headers")

    def __init__(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self._method = method   # as parsed: already a token
        self._target = target   # as planned: origin-form, or "*" for OPTIONS
        self.headers = UpstreamHeaders(headers)

    @property
    def method(self) -> bytes:
        return self._method

    @method.setter
    def method(self, value: bytes) -> None:
        if not isinstance(value, bytes) or not _TOKEN.fullmatch(value):
            raise ValueError(f"method must be a token such as b'GET' (got {value!r})")
        self._method = value

    @property
    def target(self) -> bytes:
        return self._target

    @target.setter
    def target(self, value: bytes) -> None:
        if not isinstance(value, bytes) or not _ORIGIN_FORM.fullmatch(value) or value.startswith(b"//"):
            raise ValueError(f"target must be origin-form: '/' then a path and query without spaces or "
                             f"control characters, not '//' (got {value!r})")
        self._target = value

    def __repr__(self) -> str:
        return f"UpstreamRequest({self._method!r}, {self._target!r}, {self.headers!r})"
