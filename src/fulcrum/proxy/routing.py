"""Routes: host (exact or ``*.suffix``), path prefix (whole segments), method, header and
query-parameter matches pick a pool.

Compiled once at provisioning; ``match`` is a plain loop, first match wins, cheapest
conditions first. The query string is parsed at most once per request, and only when a
route that has query conditions gets that far. With one pool and no routes every request
goes to that pool.
"""
from __future__ import annotations

from typing import Callable, Generic, Sequence, TypeVar
from urllib.parse import parse_qsl

P = TypeVar("P")


class Route(Generic[P]):
    """One compiled route: all of its conditions must hold."""

    __slots__ = ("host", "wildcard", "path_prefix", "methods", "headers", "query", "target")

    def __init__(self, target: P, host: str | None = None, path_prefix: str = "/",
                 headers: dict[str, str] | None = None, methods: Sequence[str] = (),
                 query: dict[str, str] | None = None) -> None:
        self.target = target
        host = host.lower() if host else None
        self.wildcard = bool(host and host.startswith("*."))
        # "*.example.com" matches any name ending in ".example.com", not the apex.
        self.host = host[1:] if self.wildcard else host
        self.path_prefix = path_prefix.encode()
        # None: any method. Methods are case-sensitive (RFC 9110 §9.1); config upper-cases them.
        self.methods = frozenset(m.encode() for m in methods) or None
        self.headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.query = list((query or {}).items())

    def matches(self, host: str, path: bytes, header: Callable[[bytes], bytes | None],
                method: bytes = b"GET", params: dict[str, str] | None = None) -> bool:
        """All conditions hold for this request; ``params``: its query parameters
        (``query_params(path)``), parsed here when a query condition needs them and none are given."""
        if not self.matches_head(host, path, header, method):
            return False
        if self.query:
            return self.matches_query(query_params(path) if params is None else params)
        return True

    def matches_head(self, host: str, path: bytes, header: Callable[[bytes], bytes | None],
                     method: bytes) -> bool:
        """Every condition but the query parameters holds."""
        if self.host is not None:
            if self.wildcard:
                if not host.endswith(self.host):
                    return False
            elif host != self.host:
                return False
        if not _prefix_matches(self.path_prefix, path):
            return False
        if self.methods is not None and method not in self.methods:
            return False
        for name, value in self.headers:
            if header(name) != value:
                return False
        return True

    def matches_query(self, params: dict[str, str]) -> bool:
        for name, value in self.query:
            if params.get(name) != value:
                return False
        return True


def query_params(target: bytes) -> dict[str, str]:
    """The first value of each query parameter of ``target``, percent-decoded as UTF-8 (``+``
    is a space; ``?flag`` is ``flag`` with an empty value). Bytes that are not UTF-8 become
    U+FFFD, which matches no configured value: a client's bytes never raise here."""
    _, sep, query = target.partition(b"?")
    if not sep:
        return {}
    params: dict[str, str] = {}
    text = query.decode("utf-8", "replace")
    for name, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"):
        params.setdefault(name, value)
    return params


def _prefix_matches(prefix: bytes, target: bytes) -> bool:
    """Segment-aware: ``/api`` matches ``/api``, ``/api/x`` and ``/api?q`` but not ``/apiary``."""
    if not target.startswith(prefix):
        return False
    if len(target) == len(prefix) or prefix.endswith(b"/"):
        return True
    return target[len(prefix)] in b"/?"


class Router(Generic[P]):
    """Finds the target of the first matching route, or ``default`` when none."""

    __slots__ = ("routes", "default")

    def __init__(self, routes: Sequence[Route[P]], default: P | None = None) -> None:
        self.routes = list(routes)
        self.default = default

    def match(self, host: str, path: bytes, header: Callable[[bytes], bytes | None],
              method: bytes = b"GET") -> P | None:
        params = None
        for route in self.routes:
            if route.matches_head(host, path, header, method):
                if route.query:
                    if params is None:
                        params = query_params(path)
                    if not route.matches_query(params):
                        continue
                return route.target
        return self.default
