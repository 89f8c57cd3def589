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
        cost_a = _load(a, now) * b.weight
        cost_b = _load(b, now) * a.weight
        return a if cost_a <= cost_b else b


def _load(backend: Backend, now: float) -> float:
    """Latency × (in-flight + 1). A backend never measured costs nothing while idle,
    so it is tried and measured at once (Finagle's rule), and its default RTT
    while requests are pending, so it is not swamped before its first answer."""
    latency = backend.latency
    if not latency.observed:
        return latency.default_rtt * backend.in_flight * (backend.in_flight + 1)
    return latency.cost(now) * (backend.in_flight + 1)
