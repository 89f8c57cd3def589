# Per-backend circuit breaker (CLOSED -> OPEN -> HALF_OPEN -> CLOSED | OPEN); a passing active
# health check moves OPEN to HALF_OPEN early. Sans-IO: methods take ``now``; transitions only via _TRANSITIONS.
from __future__ import annotations

import enum
from typing import Callable

from fulcrum.resilience.window import RollingCounts


class BreakerState(str, enum.Enum):
    """Where a circuit breaker is: letting traffic through, refusing it, or probing."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(str, enum.Enum):
    """What moves a breaker: the names used in the transition table."""

    TRIP = "trip"
    RESET_TIMEOUT = "reset_timeout"
    HEALTH_CHECK_PASSED = "health_check_passed"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"


CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN

_TRANSITIONS: dict[tuple[BreakerState, BreakerEvent], BreakerState] = {
    (CLOSED, BreakerEvent.TRIP): OPEN,
    (OPEN, BreakerEvent.RESET_TIMEOUT): HALF_OPEN,
    (OPEN, BreakerEvent.HEALTH_CHECK_PASSED): HALF_OPEN,
    (HALF_OPEN, BreakerEvent.PROBE_SUCCEEDED): CLOSED,
    (HALF_OPEN, BreakerEvent.PROBE_FAILED): OPEN,
}

_REQUESTS, _FAILURES = 0, 1

OnChange = Callable[[BreakerState, BreakerState, str], None]


class CircuitBreaker:
    """Stops sending traffic to a failing backend, then probes it back.

    CLOSED: every request is admitted. Each verdict is counted; the breaker
    trips (to OPEN) on ``failure_threshold`` consecutive failures, or when the
    failures make up at least ``failure_ratio`` of the verdicts over the last
    ``window`` seconds and there were at least ``min_requests`` of them.
    ``failure_threshold=0`` or ``failure_ratio=0`` turns that rule off. The
    ratio compares with ``>=``, so ``failure_ratio=1.0`` means "every request
    in the window failed".

    OPEN: nothing is admitted until ``retry_at`` (``reset_timeout`` after
    opening). The first ``allow`` at or after it moves to HALF_OPEN. A passing
    active health check does so at once (``probe_now``, Envoy's default), so a
    backend that came back is probed by the next request instead of waiting.

    HALF_OPEN: up to ``half_open_requests`` probes may be in flight at once.
    One probe success closes the breaker (counts and window start afresh);
    one probe failure reopens it and restarts the reset timeout.

    Every admitted request must end in exactly one of ``record_success``,
    ``record_failure`` or ``release`` (no verdict: e.g. the client went away),
    otherwise a HALF_OPEN probe slot stays taken. Verdicts that arrive in OPEN
    (requests admitted before it tripped) change no state; a verdict in
    HALF_OPEN when no probe is in flight is such a straggler too and is
    ignored. Only ``consecutive_failures`` sees every verdict.

    ``on_change(old, new, reason)`` is called after every transition, with
    reasons such as "5 consecutive failures", "failure ratio 0.62 (13 of 21)
    over 10s", "reset timeout elapsed", "health check passed", "probe succeeded",
    "probe failed".
    """

    __slots__ = (
        # configuration
        "failure_threshold", "failure_ratio", "min_requests", "reset_timeout",
        "half_open_requests", "on_change",
        # state (``state`` is read freely; only _fire writes it, through _TRANSITIONS)
        "state", "counts", "probes_in_flight", "retry_at", "episode",
        # status counters
        "consecutive_failures", "last_transition_at", "last_reason", "opened_total",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        failure_ratio: float = 0.5,
        window: float = 10.0,
        buckets: int = 10,
        min_requests: int = 20,
        reset_timeout: float = 10.0,
        half_open_requests: int = 1,
        on_change: OnChange | None = None,
    ) -> None:
        if failure_threshold < 0:
            raise ValueError(f"failure_threshold must be >= 0 (got {failure_threshold})")
        if not 0.0 <= failure_ratio <= 1.0:
            raise ValueError(f"failure_ratio must be between 0 and 1 (got {failure_ratio})")
        if min_requests < 1:
            raise ValueError(f"min_requests must be >= 1 (got {min_requests})")
        if reset_timeout < 0:
            raise ValueError(f"reset_timeout must be >= 0 seconds (got {reset_timeout})")
        if half_open_requests < 1:
            raise ValueError(f"half_open_requests must be >= 1 (got {half_open_requests})")
        self.failure_threshold = failure_threshold
        self.failure_ratio = failure_ratio
        self.min_requests = min_requests
        self.reset_timeout = reset_timeout
        self.half_open_requests = half_open_requests
        self.on_change = on_change

        self.state = CLOSED
        self.counts = RollingCounts(window, buckets, columns=2)
        self.probes_in_flight = 0
        self.retry_at: float | None = None  # when OPEN: first time a probe is admitted
        # Counts the times the breaker went HALF_OPEN: a request admitted in another episode
        # (before, while CLOSED) holds no probe slot of this one (see ``release``).
        self.episode = 0

        self.consecutive_failures = 0
        self.last_transition_at: float | None = None
        self.last_reason = ""
        self.opened_total = 0


    def allow(self, now: float) -> bool:
        """Admit a request now? A True from HALF_OPEN takes a probe slot."""
        state = self.state
        if state is CLOSED:
            return True
        if state is OPEN:
            if now < self.retry_at:  # type: ignore[operator]
                return False
            self._fire(BreakerEvent.RESET_TIMEOUT, now, "reset timeout elapsed")
        if self.probes_in_flight < self.half_open_requests:
            self.probes_in_flight += 1
            return True
        return False

    def available(self, now: float) -> bool:
        """Would ``allow(now)`` admit a request? Changes nothing."""
        state = self.state
        if state is CLOSED:
            return True
        if state is OPEN:
            return now >= self.retry_at  # type: ignore[operator]
        return self.probes_in_flight < self.half_open_requests

    def probe_now(self, now: float, checked_at: float | None = None) -> bool:
        """An active health check passed at ``checked_at`` (default ``now``): OPEN goes to
        HALF_OPEN now, without waiting for ``reset_timeout``, so the next request probes the
        backend. True if the breaker moved. A breaker that opened after ``checked_at`` stays
        OPEN (that check predates the failures that opened it); CLOSED and HALF_OPEN are
        left alone, so a passing check never closes a breaker: only a request does."""
        if self.state is not OPEN:
            return False
        if checked_at is not None and checked_at < self.last_transition_at:  # type: ignore[operator]
            return False
        self._fire(BreakerEvent.HEALTH_CHECK_PASSED, now, "health check passed")
        return True

    def record_success(self, now: float) -> None:
        """An admitted request got a good response."""
        self.consecutive_failures = 0
        state = self.state
        if state is CLOSED:
            self.counts.add(now, _REQUESTS)
        elif state is HALF_OPEN and self.probes_in_flight:
            self.probes_in_flight -= 1
            self._fire(BreakerEvent.PROBE_SUCCEEDED, now, "probe succeeded")

    def record_failure(self, now: float) -> None:
        """An admitted request failed (connect error, reset, timeout, 5xx...)."""
        self.consecutive_failures += 1
        state = self.state
        if state is CLOSED:
            counts = self.counts
            counts.add(now, _REQUESTS)
            counts.add(now, _FAILURES)
            self._check_trip(now)
        elif state is HALF_OPEN and self.probes_in_flight:
            self.probes_in_flight -= 1
            self._fire(BreakerEvent.PROBE_FAILED, now, "probe failed")

    def release(self, now: float, episode: int | None = None) -> None:
        """An admitted request ended with no verdict; free its probe slot if it had one.
        ``episode``: the breaker's ``episode`` when the request was admitted; a request of
        another episode held no slot of this one, so its end frees nothing."""
        if episode is not None and episode != self.episode:
            return
        if self.state is HALF_OPEN and self.probes_in_flight:
            self.probes_in_flight -= 1

    def _check_trip(self, now: float) -> None:
        threshold = self.failure_threshold
        if threshold and self.consecutive_failures >= threshold:
            self._fire(BreakerEvent.TRIP, now, f"{self.consecutive_failures} consecutive failures")
            return
        if not self.failure_ratio:
            return
        counts = self.counts
        requests = counts.totals[_REQUESTS]  # just advanced by add()
        if requests < self.min_requests:
            return
        failures = counts.totals[_FAILURES]
        if failures >= self.failure_ratio * requests:
            reason = (
                f"failure ratio {failures / requests:.2f} ({failures} of {requests})"
                f" over {counts.window:g}s"
            )
            self._fire(BreakerEvent.TRIP, now, reason)

    def _fire(self, event: BreakerEvent, now: float, reason: str) -> None:
        old = self.state
        new = _TRANSITIONS.get((old, event))
        if new is None:
            raise RuntimeError(f"circuit breaker: no transition from {old.value} on {event.value}")
        self.state = new
        self.last_transition_at = now
        self.last_reason = reason
        self.probes_in_flight = 0
        if new is OPEN:
            self.retry_at = now + self.reset_timeout
            self.opened_total += 1
        elif new is HALF_OPEN:
            self.retry_at = min(self.retry_at, now)  # type: ignore[type-var]  # earlier after a check
            self.episode += 1
        elif new is CLOSED:
            self.retry_at = None
            self.consecutive_failures = 0
            self.counts.clear()
        if self.on_change is not None:
            self.on_change(old, new, reason)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state.value}, consecutive_failures={self.consecutive_failures},"
            f" probes_in_flight={self.probes_in_flight}, retry_at={self.retry_at})"
        )
