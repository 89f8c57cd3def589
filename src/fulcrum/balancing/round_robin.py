# Round robin: each available backend in turn, ignoring weight.
# Invariant: ``_next`` is the index to try first; a pick looks at most one full lap.
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy


class RoundRobin(Strategy):
    """Hands requests to available backends in list order, one each.

    Unavailable backends are skipped without losing the rotation, so the
    remaining ones still share traffic evenly. Weight is ignored; use
    ``weighted_round_robin`` to honour it.
    """

    __slots__ = ("_next",)
    name = "round_robin"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next = 0

    def pick(self, request: RequestInfo) -> Backend | None:
        backends = self.backends
        n = len(backends)
        i = self._next
        for _ in range(n):
            b = backends[i]
            i += 1
            if i == n:
                i = 0
            if b.available:
                self._next = i
                return b
        return None
