# A pool's retry budget (Linkerd/Envoy style): retries may be at most a share of recent
# requests plus a small floor. O(1) per call over fixed time buckets; ``now`` is passed in.
from __future__ import annotations

from fulcrum.resilience.window import RollingCounts

_REQUESTS, _RETRIES = 0, 1


class RetryBudget:
    """Caps retries so a failing backend cannot multiply the load on itself.

    A retry is allowed while, counting it, the retries over the last
    ``window`` seconds stay within::

        ratio * requests_in_window + min_per_second * window

    ``record_request`` counts original requests (call it once per client
    request, not per try); ``try_acquire`` asks for a retry and counts it
    when granted. The ``min_per_second * window`` floor (30 retries per 10 s
    by default) lets a quiet service still retry a few requests, where a
    ratio of almost nothing would be nothing; under real traffic the ratio
    dominates, so at most about 20% extra load comes from retries.
    """

    __slots__ = ("ratio", "min_per_second", "floor", "counts", "granted_total", "refused_total")

    def __init__(
        self, ratio: float = 0.2, window: float = 10.0, min_per_second: float = 3.0, buckets: int = 10
    ) -> None:
        if ratio < 0:
            raise ValueError(f"retry budget ratio must be >= 0 (got {ratio})")
        if min_per_second < 0:
            raise ValueError(f"retry budget min_per_second must be >= 0 (got {min_per_second})")
        self.counts = RollingCounts(window, buckets, columns=2)
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.floor = min_per_second * window
        self.granted_total = 0
        self.refused_total = 0

    @property
    def window(self) -> float:
        return self.counts.window

    def record_request(self, now: float) -> None:
        """Count one original request."""
        self.counts.add(now, _REQUESTS)

    def try_acquire(self, now: float) -> bool:
        """Take one retry from the budget if there is room; True if granted."""
        counts = self.counts
        retries = counts.total(now, _RETRIES)
        if retries + 1 > self.ratio * counts.totals[_REQUESTS] + self.floor:
            self.refused_total += 1
            return False
        counts.add(now, _RETRIES)
        self.granted_total += 1
        return True

    def available(self, now: float) -> int:
        """Retries that would be granted now (status pages)."""
        counts = self.counts
        retries = counts.total(now, _RETRIES)
        return max(0, int(self.ratio * counts.totals[_REQUESTS] + self.floor) - retries)

    def current_ratio(self, now: float) -> float:
        """Retries per original request over the window (0.0 with no requests)."""
        counts = self.counts
        retries = counts.total(now, _RETRIES)
        requests = counts.totals[_REQUESTS]
        return retries / requests if requests else 0.0

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self.ratio}, window={self.window}, min_per_second={self.min_per_second})"
