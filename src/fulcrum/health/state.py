# Health of one backend, sans-IO: consecutive-result thresholds move it between HEALTHY and
# UNHEALTHY, and a recovered backend's weight ramps up (slow start). Every method takes ``now``.
from __future__ import annotations

import enum
from dataclasses import dataclass

# Share of its weight a backend gets the moment it recovers, when slow start is on. Envoy's
# default (min_weight_percent 10%): enough traffic to warm caches and JIT, not enough to bury it.
SLOW_START_FLOOR = 0.1


class Health(enum.Enum):
    """Whether active checks let a backend take traffic."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of health, ``old`` → ``new``, with the ``reason`` worded for a log line,
    e.g. ``"3 consecutive failures: status 503 not in 200-399"``."""

    old: Health
    new: Health
    reason: str


def _count(n: int, one: str, many: str) -> str:
    return f"1 {one}" if n == 1 else f"{n} consecutive {many}"


class HealthState:
    """Health of one backend as its check results come in.

    A backend starts HEALTHY: a new pool (or one rebuilt by a reload) serves at
    once instead of waiting ``healthy_threshold`` check intervals, and a dead
    backend leaves after ``unhealthy_threshold`` failed checks (the first check
    runs at start). ``unhealthy_threshold`` consecutive failures take a healthy
    backend out; ``healthy_threshold`` consecutive successes bring it back. Any
    result of the other kind resets the count, so a flapping backend stays
    where it is. ``record`` returns a :class:`Transition` only on a change.

    Slow start: for ``slow_start`` seconds after coming back, the backend's
    effective weight grows linearly from ``SLOW_START_FLOOR`` (10%) of its
    weight to all of it. A backend healthy from the start has no ramp; 0
    disables the ramp.

    For status pages: ``state``, ``consecutive_ok``, ``consecutive_fail``,
    ``last_reason`` (of the latest result), ``last_checked_at`` and
    ``changed_at`` (of the latest transition; None before the first).
    ``passed_at`` is the time of the latest passing result (None before one):
    what lifts passive ejections and open breakers in other processes.
    """

    __slots__ = ("healthy_threshold", "unhealthy_threshold", "slow_start", "state",
                 "consecutive_ok", "consecutive_fail", "last_reason", "last_checked_at",
                 "changed_at", "passed_at")

    def __init__(self, *, healthy_threshold: int = 2, unhealthy_threshold: int = 3,
                 slow_start: float = 0.0) -> None:
        if healthy_threshold < 1:
            raise ValueError(f"healthy_threshold must be >= 1 (got {healthy_threshold})")
        if unhealthy_threshold < 1:
            raise ValueError(f"unhealthy_threshold must be >= 1 (got {unhealthy_threshold})")
        if not slow_start >= 0:  # also rejects nan
            raise ValueError(f"slow_start must be >= 0 seconds (got {slow_start})")
        # configuration
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.slow_start = slow_start
        # what the results so far add up to
        self.state = Health.HEALTHY
        self.consecutive_ok = 0
        self.consecutive_fail = 0
        self.last_reason: str | None = None
        self.last_checked_at: float | None = None
        self.changed_at: float | None = None
        self.passed_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.state is Health.HEALTHY

    def record(self, ok: bool, now: float, reason: str) -> Transition | None:
        """Count one check result; the transition it causes, if any."""
        self.last_checked_at, self.last_reason = now, reason
        if ok:
            self.passed_at = now
            self.consecutive_ok += 1
            self.consecutive_fail = 0
            if not self.healthy and self.consecutive_ok >= self.healthy_threshold:
                return self._move(Health.HEALTHY, now,
                                  _count(self.consecutive_ok, "success", "successes"))
        else:
            self.consecutive_fail += 1
            self.consecutive_ok = 0
            if self.healthy and self.consecutive_fail >= self.unhealthy_threshold:
                counted = _count(self.consecutive_fail, "failure", "failures")
                return self._move(Health.UNHEALTHY, now, f"{counted}: {reason}")
        return None

    def _move(self, new: Health, now: float, reason: str) -> Transition:
        old, self.state, self.changed_at = self.state, new, now
        return Transition(old, new, reason)

    def effective_weight(self, weight: int, now: float) -> float:
        """``weight`` as slow start scales it at ``now``; 0.0 while unhealthy."""
        if not self.healthy:
            return 0.0
        ramp = self._ramp(now)
        return float(weight) if ramp is None else weight * ramp

    def in_slow_start(self, now: float) -> bool:
        return self.healthy and self._ramp(now) is not None

    def _ramp(self, now: float) -> float | None:
        """Share of the weight during slow start; None once (or if never) ramping."""
        if not self.slow_start or self.changed_at is None:
            return None
        progress = (now - self.changed_at) / self.slow_start
        if progress >= 1.0:
            return None
        return SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * max(progress, 0.0)

    def snapshot(self) -> dict:
        """The fields a status page shows, JSON-ready."""
        return {
            "state": self.state.value, "consecutive_ok": self.consecutive_ok,
            "consecutive_fail": self.consecutive_fail, "last_reason": self.last_reason,
            "last_checked_at": self.last_checked_at, "changed_at": self.changed_at,
        }

    def __repr__(self) -> str:
        return (f"HealthState({self.state.value}, ok={self.consecutive_ok}, "
                f"fail={self.consecutive_fail}, last_reason={self.last_reason!r})")
