# Peak-EWMA with two random choices (as Finagle and Linkerd balance): of two random
# eligible backends keep the one with the lower latency.cost(now) * (in_flight + 1) / weight.
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy
from fulcrum.balancing.power_of_two import two_choices


class PeakEwmaP2C(Strategy):
    """Latency-aware balancing: expected wait = recent latency x queue length.

    Each backend's ``latency`` (a :class:`~fulcrum.balancing.ewma.PeakEwma`,
    fed by the proxy after every exchange) jumps up on a slow response and
    decays back over ``tau``, so traffic moves off a backend as soon as it slows
    down and returns gradually. ``now`` comes from the injected clock, read
    once per pick; on a tie the first draw wins.
    """

    __slots__ = ()
    name = "peak_ewma"

    def pick(self, request: RequestInfo) -> Backend | None:
        a, b = two_choices(self.backends, self.rng.random)
        if b is None:
            return a
        now = self.clock()
        cost_a = a.latency.cost(now) * (a.in_flight + 1) * b.weight
        cost_b = b.latency.cost(now) * (b.in_flight + 1) * a.weight
        return a if cost_a <= cost_b else b
