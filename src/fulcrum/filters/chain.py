"""A composed filter chain: per phase, the bound methods of just the filters that hook it.

Built once per route at provisioning. A phase no filter hooks is an empty tuple, so an
exchange pays one truth test for it and nothing more.
"""
from __future__ import annotations

from typing import Sequence

from fulcrum.filters.base import Filter, ResponseHead


def _hooks(filters: Sequence[Filter], phase: str) -> tuple:
    default = getattr(Filter, phase)
    return tuple(getattr(f, phase) for f in filters if getattr(type(f), phase) is not default)


class Chain:
    """The filters of one route, in order; ``request``, ``upstream_request``, ``response`` and
    ``log`` are the phases."""

    __slots__ = ("filters", "request", "upstream_request", "response", "log")

    def __init__(self, filters: Sequence[Filter] = ()) -> None:
        self.filters = tuple(filters)
        self.request = _hooks(self.filters, "on_request")
        # In filter order: the builder puts the built-in rewrites first, then the global
        # filters, then the route's. Empty: the core builds the upstream head as it parsed it.
        self.upstream_request = _hooks(self.filters, "on_upstream_request")
        # Every response passes every response hook (proxied or local: a 429 gets its CORS
        # and security headers too), innermost first, as a response travels back out.
        self.response = tuple(reversed(_hooks(self.filters, "on_response")))
        self.log = _hooks(self.filters, "on_log")

    def respond(self, exchange, status: int, lines: list[bytes]) -> list[bytes]:
        """Run the response hooks over ``lines`` (a response head being built); may raise."""
        head = ResponseHead(status, lines)
        for hook in self.response:
            hook(exchange, head)
        return head.lines

    def rewrite(self, exchange, request) -> None:
        """Run the upstream-request hooks over ``request`` (an UpstreamRequest); may raise."""
        for hook in self.upstream_request:
            hook(exchange, request)

    @property
    def names(self) -> list[str]:
        return [f.name or type(f).__qualname__ for f in self.filters]

    def __repr__(self) -> str:
        return f"Chain({self.names})"


EMPTY = Chain()
