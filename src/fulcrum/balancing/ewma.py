# Peak-EWMA latency estimate for one backend (Finagle/Linkerd style), sans-IO:
# every method takes ``now`` in seconds from one monotonic clock; nothing here reads a clock.
from __future__ import annotations

import math

# exp(x) is written e ** x: with both sides doubles the compiled core makes it C's pow(), where
# math.exp would be a Python call (libm's exp cannot be cimported beside a Python import).
_E = math.e


class PeakEwma:
    """A peak-sensitive, exponentially weighted moving average of response times.

    ``observe(rtt, now)``: a sample above the estimate replaces it at once (react
    to a slowdown immediately); a lower one is blended in with weight
    ``1 - exp(-elapsed / tau)``, so the estimate recovers at a pace set by time,
    not by request rate.

    ``cost(now)``: the estimate decayed toward zero by ``exp(-idle / tau)`` since
    the last sample. A backend that gets no traffic (because it looked slow)
    thus looks cheaper and cheaper until it is tried again and re-measured.
    ``cost`` does not change the estimate, so status pages may call it freely.

    Before the first sample the estimate is ``default_rtt`` (30 ms, Linkerd's
    default). A new backend with no history must not look free (a cost of zero
    would win every comparison and swamp it before its first response returns),
    nor so slow that it is starved: 30 ms sits above a fast LAN service and
    below a slow one, and it decays like any idle estimate, counted from the
    first time the balancer asks for the cost. The first real sample replaces the
    default outright, whichever is larger.

    ``value`` is the estimate in seconds as of the last sample (for status pages).
    """

    __slots__ = ("tau", "default_rtt", "value", "stamp", "observed")

    def __init__(self, *, tau: float = 10.0, default_rtt: float = 0.030) -> None:
        if tau <= 0:
            raise ValueError(f"tau must be > 0 seconds (got {tau})")
        if default_rtt < 0:
            raise ValueError(f"default_rtt must be >= 0 seconds (got {default_rtt})")
        self.tau = tau
        self.default_rtt = default_rtt
        self.value = default_rtt
        self.stamp: float | None = None  # time of the last sample (or first cost read)
        self.observed = False

    def observe(self, rtt: float, now: float) -> None:
        """Fold in one response time ``rtt`` (seconds) measured at ``now``."""
        if rtt < 0:
            rtt = 0.0
        if not self.observed or rtt > self.value:
            self.value = rtt
        else:
            elapsed = 0.0
            stamp = self.stamp
            if stamp is not None:
                last = stamp
                elapsed = now - last
            w = _E ** (-elapsed / self.tau) if elapsed > 0 else 1.0
            self.value = self.value * w + rtt * (1.0 - w)
        self.observed = True
        self.stamp = now

    def cost(self, now: float) -> float:
        """The estimate decayed by the time since the last sample."""
        stamp = self.stamp
        if stamp is None:
            # Start the default's decay clock the first time anyone asks.
            self.stamp = now
            return self.value
        last = stamp
        elapsed = now - last
        if elapsed <= 0:
            return self.value
        w = _E ** (-elapsed / self.tau)
        return self.value * w

    def __repr__(self) -> str:
        return f"PeakEwma(value={self.value:.6f}, tau={self.tau})"
