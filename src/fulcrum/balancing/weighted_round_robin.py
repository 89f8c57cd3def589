# Smooth weighted round robin, as nginx does it (ngx_http_upstream_get_peer):
# per pick every eligible backend's current weight grows by its weight, the largest
# wins and gives back the total. Over sum(weights) picks each gets exactly its weight.
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy


class WeightedRoundRobin(Strategy):
    """Deterministic weighted rotation that interleaves instead of bursting.

    Weights 5:1:1 give ``a a b a c a a``, not ``a a a a a b c``: a heavy backend
    is never handed a run much longer than its share implies. Weights and
    availability are read on every pick; a backend with weight < 1 takes no
    new requests. Current weights of skipped backends are left alone, as in
    nginx, so a backend coming back resumes its place in the rotation.
    """

    __slots__ = ("_current",)
    name = "weighted_round_robin"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._current = [0] * len(self.backends)

    def pick(self, request: RequestInfo) -> Backend | None:
        current = self._current
        total = 0
        best = -1
        best_cw = 0
        for i, b in enumerate(self.backends):
            w = b.weight
            if w < 1 or not b.available:
                continue
            cw = current[i] + w
            current[i] = cw
            total += w
            if best < 0 or cw > best_cw:
                best, best_cw = i, cw
        if best < 0:
            return None
        current[best] = best_cw - total
        return self.backends[best]
