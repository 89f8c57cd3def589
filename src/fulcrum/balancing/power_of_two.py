# Power of two random choices: sample two distinct eligible backends, keep the less
# loaded. Also home of ``two_choices``, the sampling step peak_ewma shares.
from __future__ import annotations

from typing import Callable, Sequence

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy


def two_choices(
    backends: Sequence[Backend], random: Callable[[], float]
) -> tuple[Backend | None, Backend | None]:
    """Two distinct random eligible backends: ``(a, b)``, ``(a, None)`` when only
    one is eligible, ``(None, None)`` when none is.

    Eligible means available with weight >= 1. The common case (both draws
    eligible) allocates nothing; otherwise the eligible ones are listed and
    drawn from, which keeps every eligible pair equally likely.
    """
    n = len(backends)
    if n >= 2:
        i = int(random() * n)
        j = int(random() * (n - 1))
        if j >= i:
            j += 1
        a = backends[i]
        b = backends[j]
        if a.available and b.available and a.weight >= 1 and b.weight >= 1:
            return a, b
    pool = [x for x in backends if x.available and x.weight >= 1]
    m = len(pool)
    if m < 2:
        return (pool[0] if pool else None), None
    i = int(random() * m)
    j = int(random() * (m - 1))
    if j >= i:
        j += 1
    return pool[i], pool[j]


class PowerOfTwo(Strategy):
    """Least-loaded of two random backends ("power of two choices").

    Nearly as good as scanning for the least loaded, at constant cost, and it
    avoids the herd effect of every worker picking the same global minimum.
    Load is ``(in_flight + 1) / weight``, compared by cross-multiplying; on a
    tie the first draw wins, which is itself random.
    """

    __slots__ = ()
    name = "power_of_two"

    def pick(self, request: RequestInfo) -> Backend | None:
        a, b = two_choices(self.backends, self.rng.random)
        if b is None:
            return a
        if (a.in_flight + 1) * b.weight <= (b.in_flight + 1) * a.weight:
            return a
        return b
