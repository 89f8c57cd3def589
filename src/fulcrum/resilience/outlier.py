# Passive outlier detection for one pool (Envoy-style consecutive gateway failures), sans-IO:
# state per backend id; expiry and multiplier decay are applied lazily from the ``now`` passed in;
# a passing active health check lifts an ejection early (``lift``).
from __future__ import annotations

import math
from typing import Iterable


class OutlierState:
    """What the detector knows about one backend (read it for status pages).

    ``multiplier`` is the number of recent ejections: the next ejection lasts
    ``base_ejection_time * (multiplier + 1)``, capped. ``ejected_until`` is None
    when the backend is in rotation, and may lie in the past until the
    detector next looks at it; ``ejected_at`` is when the current ejection began.
    """

    __slots__ = ("consecutive_failures", "ejected_at", "ejected_until", "multiplier", "clean_since",
                 "times_ejected")

    def __init__(self) -> None:
        self.consecutive_failures = 0
        self.ejected_at: float | None = None
        self.ejected_until: float | None = None
        self.multiplier = 0
        self.clean_since: float | None = None  # start of the current failure-free stretch
        self.times_ejected = 0

    def __repr__(self) -> str:
        return (
            f"OutlierState(consecutive_failures={self.consecutive_failures},"
            f" ejected_until={self.ejected_until}, multiplier={self.multiplier})"
        )


class OutlierDetector:
    """Ejects backends that fail ``consecutive_failures`` times in a row.

    Feed it one verdict per finished exchange with ``record(id, ok, now)``;
    ``ok=False`` means a gateway failure (connect error, reset, timeout, 502,
    503, 504) as the caller defines it. A success resets the streak.

    Ejection: the n-th ejection in a row lasts ``base_ejection_time * n``
    seconds (Envoy), capped at ``max_ejection_time``; the multiplier stops
    growing at the cap, so it never takes longer to decay than to build.

    Refusal: an ejection happens only if afterwards at most
    ``max_ejection_percent`` of the pool (``set_members``) is ejected, but at
    least one backend may always be ejected (Envoy), so a one-backend pool can
    lose its only backend (the proxy's ``panic`` rule keeps traffic flowing).
    ``max_ejection_percent=0`` turns ejection off. A refused backend keeps its
    streak, so its next failure tries again.

    Expiry is lazy: once ``now`` passes ``ejected_until`` the backend is back
    and its failure streak starts from zero. Verdicts for a backend that is
    still ejected (requests in flight when it was ejected, or sent in panic
    mode) are ignored, as are verdicts for ids not in the pool.

    Lifting: ``lift`` ends an ejection early because an active health check
    passed (Envoy's ``successful_active_health_check_uneject_host``, on by
    default there): the backend is back at once, with a fresh streak. Its
    multiplier is kept, as when an ejection expires.

    Decay: each full ``base_ejection_time`` a backend spends in rotation
    without a single failure lowers its multiplier by one. The stretch starts
    when it comes back and restarts at every failure.
    """

    __slots__ = (
        "consecutive_failures", "base_ejection_time", "max_ejection_time", "max_ejection_percent",
        "max_multiplier", "hosts", "ejections_total", "refused_total",
    )

    def __init__(
        self,
        consecutive_failures: int = 5,
        base_ejection_time: float = 30.0,
        max_ejection_time: float = 300.0,
        max_ejection_percent: float = 50,
    ) -> None:
        if consecutive_failures < 1:
            raise ValueError(f"consecutive_failures must be >= 1 (got {consecutive_failures})")
        if base_ejection_time <= 0:
            raise ValueError(f"base_ejection_time must be > 0 seconds (got {base_ejection_time})")
        if max_ejection_time < base_ejection_time:
            raise ValueError(
                f"max_ejection_time must be >= base_ejection_time ({base_ejection_time})"
                f" (got {max_ejection_time})"
            )
        if not 0 <= max_ejection_percent <= 100:
            raise ValueError(f"max_ejection_percent must be between 0 and 100 (got {max_ejection_percent})")
        self.consecutive_failures = consecutive_failures
        self.base_ejection_time = base_ejection_time
        self.max_ejection_time = max_ejection_time
        self.max_ejection_percent = max_ejection_percent
        self.max_multiplier = math.ceil(max_ejection_time / base_ejection_time)
        self.hosts: dict[str, OutlierState] = {}
        self.ejections_total = 0
        self.refused_total = 0

    def set_members(self, ids: Iterable[str]) -> None:
        """Make the pool exactly ``ids``: keep known backends' state, add new ones, drop the rest."""
        old = self.hosts
        self.hosts = {i: old.get(i) or OutlierState() for i in ids}

    def state(self, backend_id: str) -> OutlierState | None:
        return self.hosts.get(backend_id)

    def record(self, backend_id: str, ok: bool, now: float) -> bool:
        """Count one verdict; True if this call ejected the backend."""
        h = self.hosts.get(backend_id)
        if h is None:
            return False
        if h.ejected_until is not None:
            if now < h.ejected_until:
                return False
            self._return(h)
        if ok:
            h.consecutive_failures = 0
            return False
        self._decay(h, now)
        h.clean_since = now
        h.consecutive_failures += 1
        if h.consecutive_failures < self.consecutive_failures:
            return False
        return self._eject(h, now)

    def is_ejected(self, backend_id: str, now: float) -> bool:
        h = self.hosts.get(backend_id)
        if h is None or h.ejected_until is None:
            return False
        if now < h.ejected_until:
            return True
        self._return(h)
        return False

    def lift(self, backend_id: str, now: float, checked_at: float | None = None) -> bool:
        """End the backend's ejection at ``now``: an active health check passed at
        ``checked_at`` (default ``now``). True if this call brought it back. An
        ejection that began after ``checked_at`` stands: that check predates the
        failures (a late or repeated report of an old check lifts nothing)."""
        h = self.hosts.get(backend_id)
        if h is None or h.ejected_until is None:
            return False
        if now >= h.ejected_until:
            self._return(h)  # had expired already: back, but not by this call
            return False
        if checked_at is not None and checked_at < h.ejected_at:  # type: ignore[operator]
            return False
        self._return(h)
        h.clean_since = now
        return True

    def ejected_until(self, backend_id: str) -> float | None:
        """When the backend's ejection ends (None if not ejected; may be past until looked at)."""
        h = self.hosts.get(backend_id)
        return None if h is None else h.ejected_until

    def next_expiry(self) -> float | None:
        """The earliest ``ejected_until`` in the pool, for the proxy's timer (None if none)."""
        times = [h.ejected_until for h in self.hosts.values() if h.ejected_until is not None]
        return min(times) if times else None

    def expire(self, now: float) -> list[str]:
        """Return every backend whose ejection has ended by ``now``; list their ids."""
        back = []
        for backend_id, h in self.hosts.items():
            if h.ejected_until is not None and now >= h.ejected_until:
                self._return(h)
                back.append(backend_id)
        return back

    def ejected_count(self, now: float) -> int:
        """Backends still ejected at ``now``."""
        self.expire(now)
        return sum(1 for h in self.hosts.values() if h.ejected_until is not None)

    def multiplier(self, backend_id: str, now: float) -> int:
        """The backend's ejection multiplier after decay up to ``now`` (status pages)."""
        h = self.hosts.get(backend_id)
        if h is None:
            return 0
        if h.ejected_until is None:
            self._decay(h, now)
        return h.multiplier

    def _eject(self, h: OutlierState, now: float) -> bool:
        percent = self.max_ejection_percent
        if not percent:
            self.refused_total += 1
            return False
        limit = max(1, int(len(self.hosts) * percent // 100))
        if self.ejected_count(now) + 1 > limit:
            self.refused_total += 1
            return False
        if h.multiplier < self.max_multiplier:
            h.multiplier += 1
        h.ejected_at = now
        h.ejected_until = now + min(self.base_ejection_time * h.multiplier, self.max_ejection_time)
        h.consecutive_failures = 0
        h.times_ejected += 1
        self.ejections_total += 1
        return True

    def _return(self, h: OutlierState) -> None:
        h.clean_since = h.ejected_until
        h.ejected_at = h.ejected_until = None
        h.consecutive_failures = 0

    def _decay(self, h: OutlierState, now: float) -> None:
        if not h.multiplier or h.clean_since is None:
            return
        steps = int((now - h.clean_since) // self.base_ejection_time)
        if steps > 0:
            h.multiplier = max(0, h.multiplier - steps)
            h.clean_since += steps * self.base_ejection_time


def panic(available: int, total: int, threshold: float) -> bool:
    """Envoy's panic rule: balance across every backend when too few are available.

    True when ``available / total`` is below ``threshold`` (0..1): past that
    point, piling all traffic on the few survivors would sink them too, so
    the pool ignores health and sends to all. ``threshold=0`` disables it; an
    empty pool is never in panic.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"panic threshold must be between 0 and 1 (got {threshold})")
    if threshold == 0.0 or total <= 0:
        return False
    return available < threshold * total
