"""A pool at run time: its backends, the strategy that picks among them, their
keep-alive connection pools, and the resilience state that decides which
backends may be picked (health, ejection, breaker, in-flight cap). Membership
changes at run time (admin API) live in membership.py.

Invariant: ``backend.available`` is recomputed here, and only here, whenever
one of its inputs changes; strategies just read it.

Recovery follows the active checks (Envoy's default): every passing check of a
healthy backend lifts its passive ejection and moves an open breaker to
half-open, so a backend that came back serves again within
``healthy_threshold × interval`` plus one interval, whatever the ejection time.
"""
from __future__ import annotations

import logging
import math
import random
from time import monotonic
from typing import Callable

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy
from fulcrum.balancing.lease import Lease, take
from fulcrum.health.checker import ActiveChecker
from fulcrum.health.state import Health, Transition
from fulcrum.proxy.pool import ConnectionPool
from fulcrum.resilience.circuit_breaker import BreakerState
from fulcrum.resilience.outlier import OutlierDetector, panic
from fulcrum.resilience.retry_budget import RetryBudget
from fulcrum.resilience.retry_policy import RetryPolicy
from fulcrum.runtime.membership import Builders, Membership

log = logging.getLogger("fulcrum.pool")

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN


class Pool(Membership):
    """A named group of backends with their strategy, connections and resilience state."""

    __slots__ = (  # and Balancer's (proxy/balancer.py)
        "backends", "strategy", "max_in_flight", "panic_threshold", "_checker", "panicking",
        "clock", "slow_start", "builders",
    )

    def __init__(self, name: str, backends: list[Backend], strategy: Strategy,
                 connections: dict[str, ConnectionPool], *, outliers: OutlierDetector | None = None,
                 retry: RetryPolicy | None = None, budget: RetryBudget | None = None,
                 max_in_flight: int = 0, panic_threshold: float = 0.0, tries_header: bool = False,
                 clock: Callable[[], float] = monotonic) -> None:
        self.name = name
        self.backends = backends
        self.strategy = strategy
        self.connections = connections
        self.outliers = outliers
        self.retry = retry
        # Whether a try's allowance depends on the retry policy (per_try_timeout, deadline);
        # else every try gets timeouts.response, which the exchange reads without asking.
        self.timed_tries = retry is not None and (retry.per_try_timeout is not None or retry.deadline is not None)
        self.budget = budget
        self.max_in_flight = max_in_flight
        self.panic_threshold = panic_threshold
        self.tries_header = tries_header
        self._checker: ActiveChecker | None = None
        self.panicking = False
        self.clock = clock
        self.rng = random.Random()
        self.slow_start = 0.0
        self.builders: Builders | None = None  # set by provisioning; needed to add members
        if outliers is not None:
            outliers.set_members([b.id for b in backends])

    # -- picking ---------------------------------------------------------------
    def pick(self, request: RequestInfo, exclude: tuple[Backend, ...] = ()) -> Backend | None:
        """A backend that may take ``request`` now, avoiding ``exclude`` when possible."""
        backend = self.strategy.pick(request)
        if backend is None:
            return None
        if (not exclude and backend.ramp == 1.0
                and (backend.breaker is None or backend.breaker.state is CLOSED)
                and (not self.max_in_flight or backend.in_flight < self.max_in_flight)):
            return backend  # the common case: one strategy call and three cheap checks
        return self._settle(request, backend, exclude)

    def lease(self, request: RequestInfo, exclude: tuple[Backend, ...] = ()) -> Lease | None:
        """Pick a backend for one try and take it: in flight until the lease ends. Avoids
        ``exclude`` (backends tried already) when another one can take the request, else
        tries the same again; None when no backend may take it."""
        backend = self.strategy.pick(request)  # pick(), inlined: this runs for every request
        if backend is None:
            return None
        if (not exclude and backend.ramp == 1.0
                and (backend.breaker is None or backend.breaker.state is CLOSED)
                and (not self.max_in_flight or backend.in_flight < self.max_in_flight)):
            return take(backend)
        backend = self._settle(request, backend, exclude)
        if backend is None and exclude:
            backend = self.pick(request)
        return None if backend is None else take(backend)

    def _settle(self, request: RequestInfo, backend: Backend, exclude: tuple[Backend, ...]) -> Backend | None:
        """pick's slower path, for the strategy's choice ``backend``: a half-open breaker's
        probe, a cap reached, a backend in slow start, or backends to avoid."""
        if not exclude and backend.ramp == 1.0 and self._admits(backend):
            return backend
        return self._pick_again(request, backend, exclude)

    def _admits(self, backend: Backend) -> bool:
        if self.max_in_flight and backend.in_flight >= self.max_in_flight:
            return False
        breaker = backend.breaker
        if breaker is None or breaker.state is CLOSED:
            return True
        return breaker.allow(self.clock())  # half-open: takes a probe slot

    def _pick_again(self, request: RequestInfo, backend: Backend | None,
                    exclude: tuple[Backend, ...]) -> Backend | None:
        # Hide refused backends from the strategy for the length of this pick,
        # so any strategy can be asked again without knowing about exclusion.
        # A backend in slow start takes only ``ramp`` of the picks that land on it;
        # if nothing else can take the request it still does. The ramp is drawn before
        # admission: admitting a half-open backend takes a probe slot, which only the
        # backend finally picked may hold.
        hidden: list[Backend] = []
        ramping: list[Backend] = []
        try:
            for _ in range(len(self.backends) + 1):
                if backend is None:
                    break
                if backend not in exclude:
                    if backend.ramp == 1.0 or self.rng.random() < backend.ramp:
                        if self._admits(backend):
                            return backend
                    else:
                        ramping.append(backend)
                backend.available = False
                hidden.append(backend)
                backend = self.strategy.pick(request)
            for backend in ramping:  # nothing else could take it
                if self._admits(backend):
                    return backend
            return None
        finally:
            for b in hidden:
                b.available = True

    # -- outcomes ------------------------------------------------------------------
    def record(self, backend: Backend, ok: bool, now: float) -> None:
        """One request's verdict on ``backend`` (a gateway failure or not)."""
        changed = False
        breaker = backend.breaker
        if breaker is not None:
            before = breaker.state
            if ok:
                breaker.record_success(now)
            else:
                breaker.record_failure(now)
            changed = breaker.state is not before
        if self.outliers is not None and self.outliers.record(backend.id, ok, now):
            backend.ejected = True
            changed = True
            log.warning("backend ejected", extra={"fields": {
                "pool": self.name, "backend": backend.id,
                "until": round(self.outliers.ejected_until(backend.id) - now, 3),
                "reason": "consecutive gateway failures"}})
        if changed:
            self.refresh(now)

    def set_healthy(self, backend: Backend, healthy: bool) -> None:
        backend.healthy = healthy
        self.refresh(self.clock())

    def refresh(self, now: float) -> None:
        """Recompute every backend's ``available``; enter or leave panic mode."""
        outliers = self.outliers
        up = 0
        for b in self.backends:
            if b.ramp < 1.0:
                b.ramp = min(1.0, self.checker.state(b.id).effective_weight(1, now)) or 1.0
            if b.ejected and outliers is not None and not outliers.is_ejected(b.id, now):
                b.ejected = False
            breaker_ok = b.breaker is None or b.breaker.available(now)
            b.available = b.enabled and b.healthy and not b.ejected and breaker_ok
            up += b.available
        panicking = panic(up, len(self.backends), self.panic_threshold)
        if panicking:
            for b in self.backends:
                b.available = b.enabled
        if panicking != self.panicking:
            self.panicking = panicking
            log.warning("panic mode " + ("on" if panicking else "off"), extra={"fields": {
                "pool": self.name, "available": up, "backends": len(self.backends),
                "threshold": self.panic_threshold}})

    def retry_after(self, now: float) -> int:
        """Seconds a client should wait when nothing is available (Retry-After)."""
        times = [b.breaker.retry_at for b in self.backends
                 if b.breaker is not None and b.breaker.retry_at is not None]
        if self.outliers is not None and self.outliers.next_expiry() is not None:
            times.append(self.outliers.next_expiry())
        soonest = min(times, default=now + 1.0)
        return max(1, min(60, math.ceil(soonest - now)))

    # -- active health checks -------------------------------------------------------
    @property
    def checker(self) -> ActiveChecker | None:
        """The pool's active checks, or None. Attaching them routes their passing results
        to ``health_check_passed``, unless their ``on_pass`` is set already."""
        return self._checker

    @checker.setter
    def checker(self, checker: ActiveChecker | None) -> None:
        self._checker = checker
        if checker is not None and checker.on_pass is None:
            checker.on_pass = self.health_check_passed

    def start(self) -> None:
        if self.checker is not None:
            self.checker.start()

    async def stop(self) -> None:
        if self.checker is not None:
            await self.checker.stop()

    def health_changed(self, backend: Backend, transition: Transition) -> None:
        """The checker's callback: log the change and re-read availability."""
        log.warning("backend state changed", extra={"fields": {
            "pool": self.name, "backend": backend.id, "old": transition.old.value,
            "new": transition.new.value, "reason": transition.reason}})
        if transition.new is Health.HEALTHY and self.slow_start:
            backend.ramp = self.checker.state(backend.id).effective_weight(1, self.clock())
        self.set_healthy(backend, transition.new is Health.HEALTHY)

    def health_check_passed(self, backend: Backend, checked_at: float | None = None) -> None:
        """An active check of ``backend`` passed at ``checked_at`` (default now): if it is
        healthy, lift its passive ejection and move an open breaker to half-open, so the
        next request probes it. An ejection or breaker that began after ``checked_at``
        stands, so applying the same report twice, or late, changes nothing more."""
        if not backend.healthy:
            return
        now = self.clock()
        changed = False
        if self.outliers is not None and self.outliers.lift(backend.id, now, checked_at):
            backend.ejected = False
            changed = True
            log.warning("backend ejection lifted", extra={"fields": {
                "pool": self.name, "backend": backend.id, "reason": "health check passed"}})
        breaker = backend.breaker
        if breaker is not None and breaker.state is OPEN and breaker.probe_now(now, checked_at):
            changed = True  # the breaker's on_change logs it
        if changed:
            self.refresh(now)

    def close(self) -> None:
        for conns in self.connections.values():
            conns.close()
