# Weighted random: each eligible backend with probability weight / total weight.
# Two passes over the list per pick (sum, then find); no allocation.
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy


class RandomChoice(Strategy):
    """Picks an available backend at random, in proportion to its weight.

    Stateless between picks, so it needs no coordination across workers.
    Randomness comes from the injected ``rng``. Weight < 1 takes no requests.
    """

    __slots__ = ()
    name = "random"

    def pick(self, request: RequestInfo) -> Backend | None:
        backends = self.backends
        total = 0
        for b in backends:
            if b.available and b.weight >= 1:
                total += b.weight
        if total == 0:
            return None
        r = self.rng.random() * total
        last = None
        for b in backends:
            if b.available and b.weight >= 1:
                r -= b.weight
                if r < 0:
                    return b
                last = b
        return last  # only reached through float rounding at the top end
