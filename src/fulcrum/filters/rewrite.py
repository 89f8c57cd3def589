"""The built-in rewrites, composed once per route at provisioning: ``strip_prefix`` and
``rewrite`` of the target and ``request_headers`` (``on_upstream_request``), and
``response_headers`` (``on_response``).

Invariant: what a rewrite sends is origin-form. The config check refuses a replacement that
does not start with '/'; at run time a result that still does not (or that starts with '//',
which a backend could read as another host) is made to start with exactly one '/', and an
empty one is '/'. Header values are templates pre-split at provisioning: rendering one is a
join of bytes and a few attribute reads, and a value without placeholders is one constant.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from fulcrum.config.rewrites import HEADER_FIELDS, HeaderRules, RewriteConfig, split_template
from fulcrum.filters.base import Filter, ResponseHead

# What each header placeholder reads from the exchange. A rejection the client connection
# answers itself (a malformed head) has no Host: ``{host}`` is empty there.
_FIELDS: dict[str, Callable[[object], bytes]] = {
    "client_ip": lambda exchange: exchange.client_ip.encode(),
    "request_id": lambda exchange: exchange.request_id,
    "host": lambda exchange: getattr(exchange, "host", b""),
    "scheme": lambda exchange: b"https" if exchange.secure else b"http",
}
assert tuple(_FIELDS) == HEADER_FIELDS


class HeaderValue:
    """A header value template, split once: ``constant`` when it has no placeholder, else
    ``parts`` (bytes literals at even places, field readers at odd ones)."""

    __slots__ = ("constant", "parts")

    def __init__(self, text: str) -> None:
        split = split_template(text, HEADER_FIELDS)
        self.parts = [_FIELDS[part] if i % 2 else part.encode() for i, part in enumerate(split)]
        self.constant = self.parts[0] if len(self.parts) == 1 else None

    def render(self, exchange) -> bytes:
        if self.constant is not None:
            return self.constant
        parts = self.parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(parts[i](exchange))
            out.append(parts[i + 1])
        return b"".join(out)


REMOVE, SET, ADD = range(3)


def header_edits(rules: Sequence[HeaderRules]) -> list[tuple[int, bytes, HeaderValue | None]]:
    """``(op, name, value)`` in the order they apply: each rules' remove, set, then add."""
    edits: list[tuple[int, bytes, HeaderValue | None]] = []
    for rule in rules:
        edits += [(REMOVE, name.lower().encode(), None) for name in rule.remove]
        edits += [(SET, name.encode(), HeaderValue(value)) for name, value in rule.set.items()]
        edits += [(ADD, name.encode(), HeaderValue(value)) for name, value in rule.add.items()]
    return edits


def origin_form(target: bytes) -> bytes:
    """``target`` starting with exactly one '/' (``b""`` → ``b"/"``, ``b"?q"`` → ``b"/?q"``,
    ``b"//evil/x"`` → ``b"/evil/x"``, ``b"http://evil/"`` → ``b"/http://evil/"``)."""
    if target[:1] != b"/":
        return b"/" + target
    if target[1:2] == b"/":
        return b"/" + target.lstrip(b"/")
    return target


class TargetRewrite(Filter):
    """``strip_prefix`` then ``rewrite``, on the target sent to the backend.

    ``strip``: the route's path prefix without its trailing '/' (``/api``): ``/api/users?x=1``
    becomes ``/users?x=1``, ``/api`` and ``/api?x`` become ``/`` and ``/?x`` (the query is
    kept). ``rewrite``: its pattern's first match in the whole target (path and query) is
    replaced; the result is made origin-form (``origin_form``).
    """

    name = "rewrite"

    def __init__(self, strip: str | None, rewrite: RewriteConfig | None) -> None:
        super().__init__(None, None)
        self.strip = strip.rstrip("/").encode() if strip else None
        self.pattern = re.compile(rewrite.pattern.encode()) if rewrite is not None else None
        self.replacement = rewrite.replacement.encode() if rewrite is not None else b""

    def rewritten(self, target: bytes) -> bytes:
        """The target to send for ``target`` (as received)."""
        if target[:1] != b"/":
            return target  # "*" (OPTIONS): no path to rewrite
        strip = self.strip
        if strip and target.startswith(strip) and target[len(strip):len(strip) + 1] in (b"", b"/", b"?"):
            target = origin_form(target[len(strip):])
        if self.pattern is not None:
            target = origin_form(self.pattern.sub(self.replacement, target, 1))
        return target

    def on_upstream_request(self, exchange, request) -> None:
        target = self.rewritten(request.target)
        if target != request.target:
            request.target = target


class RequestHeaders(Filter):
    """The ``request_headers`` edits, global ones first, on the request sent to the backend."""

    name = "request_headers"

    def __init__(self, rules: Sequence[HeaderRules]) -> None:
        super().__init__(None, None)
        self.edits = header_edits(rules)

    def on_upstream_request(self, exchange, request) -> None:
        _apply(self.edits, request.headers, exchange)


class ResponseHeaders(Filter):
    """The ``response_headers`` edits, global ones first, on every response of the route
    (proxied or Fulcrum's own). Placed first among a route's filters, it runs last on the
    way out, so it has the last word over the headers other filters add."""

    name = "response_headers"

    def __init__(self, rules: Sequence[HeaderRules]) -> None:
        super().__init__(None, None)
        self.edits = header_edits(rules)

    def on_response(self, exchange, head: ResponseHead) -> None:
        _apply(self.edits, head, exchange)


def _apply(edits, headers, exchange) -> None:
    """Header edits on anything with remove/set/add (UpstreamHeaders, ResponseHead)."""
    for op, name, value in edits:
        if op == REMOVE:
            headers.remove(name)
        elif op == SET:
            headers.set(name, value.render(exchange))
        else:
            headers.add(name, value.render(exchange))
