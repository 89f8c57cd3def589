# Weighted least connections, as nginx's least_conn: the lowest in_flight / weight wins;
# the backends tied at that load share it by smooth weighted round robin, so idle backends
# take traffic in proportion to their weights.
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy


class LeastConnections(Strategy):
    """Sends each request to the least busy backend relative to its weight.

    Load is ``in_flight / weight`` (cross-multiplied: no division, no float
    rounding). Under load the least loaded relative to its weight wins. The
    backends tied at the lowest load take turns by smooth weighted round robin
    (``weighted_round_robin.py``): each tied backend's current weight grows by
    its weight, the largest wins and gives back the tied total. So at low
    concurrency, when every backend is idle at each pick, weights 4:1 split the
    traffic 4:1 and equal weights rotate evenly; a ``(in_flight + 1) / weight``
    rule would send every such request to the heaviest backend.

    Current weights of backends outside the tie are left alone (as nginx does
    with skipped peers), so a backend rejoining the tie resumes its place.
    Backends with weight < 1 take no new requests.
    """

    __slots__ = ("_current",)
    name = "least_connections"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._current = [0] * len(self.backends)

    def pick(self, request: RequestInfo) -> Backend | None:
        backends = self.backends
        best = None
        best_load = 0  # in_flight of best
        best_w = 1
        tied = 0
        for b in backends:
            w = b.weight
            if not b.available or w < 1:
                continue
            load = b.in_flight
            if best is None or load * best_w < best_load * w:
                best, best_load, best_w, tied = b, load, w, 1
            elif load * best_w == best_load * w:
                tied += 1
        if tied < 2:
            return best  # None, or alone at the lowest load: its current weight would not move
        # Second pass, over the tie only: smooth weighted round robin.
        current = self._current
        total = 0
        win = -1
        win_cw = 0
        for i, b in enumerate(backends):
            w = b.weight
            if not b.available or w < 1 or b.in_flight * best_w != best_load * w:
                continue
            cw = current[i] + w
            current[i] = cw
            total += w
            if win < 0 or cw > win_cw:
                win, win_cw = i, cw
        current[win] = win_cw - total
        return backends[win]
