"""The run-time pool without sockets: which backend may be picked, given health,
ejections, breakers, the in-flight cap, exclusion (retries) and slow start; and how a
passing active check lifts an ejection and half-opens an open breaker."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.round_robin import RoundRobin
from fulcrum.health.checker import ActiveChecker
from fulcrum.resilience.circuit_breaker import CircuitBreaker
from fulcrum.resilience.outlier import OutlierDetector
from fulcrum.runtime.pool import Pool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Request:
    client_ip = "127.0.0.1"

    def header(self, name: bytes) -> bytes | None:
        return None


def make_pool(n=2, *, breaker=False, outliers=False, cap=0, panic=0.0, clock=None):
    clock = clock or Clock()
    backends = [Backend(f"http://127.0.0.1:{9001 + i}", id=f"b{i}") for i in range(n)]
    if breaker:
        for b in backends:
            b.breaker = CircuitBreaker(failure_threshold=2, failure_ratio=0, reset_timeout=5.0)
    pool = Pool("web", backends, RoundRobin(backends), {}, clock=clock, max_in_flight=cap,
                panic_threshold=panic,
                outliers=OutlierDetector(2, 10.0, 100.0, 50) if outliers else None)
    pool.rng = random.Random(7)
    return pool, backends, clock


def picks(pool, n=400, exclude=()):
    return Counter(b.id if b else None for b in (pool.pick(Request(), exclude) for _ in range(n)))


def test_all_available_round_robin():
    pool, _, _ = make_pool(2)
    assert picks(pool) == {"b0": 200, "b1": 200}


def test_in_flight_cap_sends_elsewhere_then_refuses():
    pool, (b0, b1), _ = make_pool(2, cap=3)
    b0.in_flight = 3
    assert picks(pool, 10) == {"b1": 10}
    b1.in_flight = 3
    assert picks(pool, 10) == {None: 10}
    assert b0.available and b1.available  # hiding during a pick is undone after it


def test_exclusion_avoids_tried_backends():
    pool, (b0, b1), _ = make_pool(2)
    assert picks(pool, 10, exclude=(b0,)) == {"b1": 10}
    assert picks(pool, 10, exclude=(b0, b1)) == {None: 10}


def test_breaker_opens_takes_backend_out_then_probes_and_closes():
    pool, (b0, b1), clock = make_pool(2, breaker=True)
    pool.record(b0, False, clock.now)
    assert b0.available
    pool.record(b0, False, clock.now)  # second failure in a row: open
    assert not b0.available and picks(pool, 10) == {"b1": 10}
    clock.now += 5.0
    pool.refresh(clock.now)  # reset timeout elapsed: may probe
    assert b0.available
    first = [pool.pick(Request()) for _ in range(4)]
    assert first.count(b0) == 1  # one probe at a time
    pool.record(b0, True, clock.now)
    assert b0.breaker.state.value == "closed"
    assert picks(pool, 10) == {"b0": 5, "b1": 5}


def test_outlier_ejection_and_return():
    pool, (b0, b1), clock = make_pool(2, outliers=True)
    pool.record(b0, False, clock.now)
    pool.record(b0, False, clock.now)
    assert b0.ejected and not b0.available
    assert pool.retry_after(clock.now) == 10
    clock.now += 10.0
    pool.refresh(clock.now)
    assert not b0.ejected and b0.available


@pytest.mark.parametrize("threshold, expect_panic", [
    pytest.param(0.0, False, id="off"),
    pytest.param(0.5, True, id="one-of-three-below-half"),
    pytest.param(0.3, False, id="one-of-three-above-0.3"),
])
def test_panic_threshold(threshold, expect_panic):
    pool, (b0, b1, b2), clock = make_pool(3, panic=threshold)
    b0.healthy = b1.healthy = False
    pool.refresh(clock.now)
    assert pool.panicking is expect_panic
    assert (b0.available and b1.available) is expect_panic
    assert b2.available


def test_slow_start_share_grows_with_the_ramp():
    shares = []
    for ramp in (0.1, 0.5, 1.0):
        pool, (b0, b1), _ = make_pool(2)
        b0.ramp = ramp
        shares.append(picks(pool, 4000)["b0"] / 4000)
    # A refused pick goes to the other backend, so the share is ramp / (1 + ramp)
    # under round robin: about 9%, 33%, then the full 50%.
    assert shares[0] < 0.12 and 0.28 < shares[1] < 0.38 and shares[2] == 0.5


def test_slow_start_backend_still_serves_when_alone():
    pool, (b0, b1), clock = make_pool(2)
    b1.healthy = False
    pool.refresh(clock.now)
    b0.ramp = 0.1
    assert picks(pool, 50) == {"b0": 50}


def test_a_ramping_half_open_backend_takes_a_probe_slot_only_when_picked():
    # b0 is half-open (one probe slot) and in slow start with a tiny ramp: the draw sends
    # every pick to b1. Passing over b0 must not take its probe slot, or the slot would be
    # held by no request and the breaker could never be probed again.
    pool, (b0, b1), clock = make_pool(2, breaker=True)
    pool.record(b0, False, clock.now)
    pool.record(b0, False, clock.now)  # open
    clock.now += 6.0                   # past reset_timeout: the next allow() half-opens it
    pool.refresh(clock.now)
    b0.ramp = 1e-9
    assert picks(pool, 20) == {"b1": 20}
    assert b0.breaker.probes_in_flight == 0
    b1.healthy = False  # alone now: the ramping backend serves, and only then takes the slot
    b0.ramp = 1.0       # (refresh recomputes a ramp below 1 from active checks, which are off here)
    pool.refresh(clock.now)
    b0.ramp = 1e-9
    assert pool.pick(Request()) is b0
    assert b0.breaker.probes_in_flight == 1
    assert pool.pick(Request()) is None  # its one probe slot is taken


# -- recovery follows the active checks ------------------------------------------------------

def test_a_passing_check_lifts_an_ejection_and_half_opens_the_breaker():
    pool, (b0, b1), clock = make_pool(2, breaker=True, outliers=True)
    pool.record(b0, False, clock.now)
    pool.record(b0, False, clock.now)  # ejected (10 s) and breaker open (5 s)
    assert b0.ejected and b0.breaker.state.value == "open" and not b0.available
    clock.now += 1.0
    pool.health_check_passed(b0)
    assert not b0.ejected and b0.breaker.state.value == "half_open" and b0.available
    first = [pool.pick(Request()) for _ in range(4)]
    assert first.count(b0) == 1  # the next request probes it, one at a time
    pool.record(b0, True, clock.now)
    assert b0.breaker.state.value == "closed"
    assert picks(pool, 10) == {"b0": 5, "b1": 5}


def test_a_passing_check_lifts_nothing_for_an_unhealthy_backend():
    pool, (b0, _), clock = make_pool(2, breaker=True, outliers=True)
    pool.record(b0, False, clock.now)
    pool.record(b0, False, clock.now)
    pool.set_healthy(b0, False)
    pool.health_check_passed(b0)  # a pass below healthy_threshold
    assert b0.ejected and b0.breaker.state.value == "open"


def test_a_check_that_passed_before_the_failures_lifts_nothing():
    pool, (b0, _), clock = make_pool(2, breaker=True, outliers=True)
    checked_at = clock.now
    clock.now += 1.0
    pool.record(b0, False, clock.now)
    pool.record(b0, False, clock.now)
    pool.health_check_passed(b0, checked_at)  # e.g. a late sync message in a worker
    assert b0.ejected and b0.breaker.state.value == "open" and not b0.available
    pool.health_check_passed(b0, clock.now)
    assert b0.available


def test_attaching_a_checker_routes_its_passing_checks_to_the_pool():
    pool, backends, _ = make_pool(2)
    pool.checker = ActiveChecker(backends)
    assert pool.checker.on_pass == pool.health_check_passed
    elsewhere = ActiveChecker(backends, on_pass=print)
    pool.checker = elsewhere
    assert elsewhere.on_pass is print  # a caller's own routing (the supervisor's) is kept
