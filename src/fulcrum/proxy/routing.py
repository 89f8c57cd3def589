"""Routes: host (exact or ``*.suffix``), path prefix (whole segments) and header
matches pick a pool.

Compiled once at provisioning; ``match`` is a plain loop, first match wins.
With one pool and no routes every request goes to that pool.
"""
from __future__ import annotations

from typing import Callable, Generic, Sequence, TypeVar

P = TypeVar("P")


class Route(Generic[P]):
    """One compiled route: all of its conditions must hold."""

    __slots__ = ("host", "wildcard", "path_prefix", "headers", "target")

    def __init__(self, target: P, host: str | None = None, path_prefix: str = "/",
                 headers: dict[str, str] | None = None) -> None:
        self.target = target
        host = host.lower() if host else None
        self.wildcard = bool(host and host.startswith("*."))
        # "*.example.com" matches any name ending in ".example.com", not the apex.
        self.host = host[1:] if self.wildcard else host
        self.path_prefix = path_prefix.encode()
        self.headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    def matches(self, host: str, path: bytes, header: Callable[[bytes], bytes | None]) -> bool:
        if self.host is not None:
            if self.wildcard:
                if not host.endswith(self.host):
                    return False
            elif host != self.host:
                return False
        if not _prefix_matches(self.path_prefix, path):
            return False
        for name, value in self.headers:
            if header(name) != value:
                return False
        return True


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

    def match(self, host: str, path: bytes, header: Callable[[bytes], bytes | None]) -> P | None:
        for route in self.routes:
            if route.matches(host, path, header):
                return route.target
        return self.default
