# Weighted least connections: the backend whose load after taking this request,
# (in_flight + 1) / weight, is lowest. Ties rotate, starting after the last pick.
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy


class LeastConnections(Strategy):
    """Sends each request to the least busy backend relative to its weight.

    Load is compared as ``(in_flight + 1) / weight`` (as HAProxy's leastconn and
    Envoy's least_request do): the ``+ 1`` counts the request being placed, so
    among idle backends the heavier one is preferred. Comparisons are
    cross-multiplied, so no division and no float rounding. Among equal loads
    the scan starts just after the previous pick, which spreads ties round
    robin. Backends with weight < 1 take no new requests.
    """

    __slots__ = ("_next",)
    name = "least_connections"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next = 0

    def pick(self, request: RequestInfo) -> Backend | None:
        backends = self.backends
        n = len(backends)
        i = self._next
        best = None
        best_i = 0
        best_load = 0  # in_flight + 1 of best
        best_w = 1
        for _ in range(n):
            b = backends[i]
            w = b.weight
            if b.available and w >= 1:
                load = b.in_flight + 1
                if best is None or load * best_w < best_load * w:
                    best, best_i, best_load, best_w = b, i, load, w
            i += 1
            if i == n:
                i = 0
        if best is not None:
            self._next = best_i + 1 if best_i + 1 < n else 0
        return best
