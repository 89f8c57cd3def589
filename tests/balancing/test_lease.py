"""Lease: a backend is in flight from the lease to its end, which happens once however it is
asked for (release after a verdict, abandon without one, in any order and any number of times);
abandon frees a half-open breaker's probe slot, release leaves the breaker to the verdict."""
from __future__ import annotations

import pytest

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.lease import Lease
from fulcrum.resilience.circuit_breaker import HALF_OPEN, CircuitBreaker

T0 = 1000.0


def half_open_backend() -> Backend:
    """A backend whose breaker is half-open with one probe slot, not yet taken."""
    backend = Backend("http://10.0.0.1:8080")
    backend.breaker = breaker = CircuitBreaker(failure_threshold=1, half_open_requests=1)
    breaker.record_failure(T0)
    assert breaker.probe_now(T0) and breaker.state is HALF_OPEN
    return backend


def test_a_lease_holds_its_backend_in_flight():
    backend = Backend("http://10.0.0.1:8080")
    first, second = Lease(backend), Lease(backend)
    assert (backend.in_flight, backend.requests) == (2, 2) and first.held and second.held
    first.release()
    assert (backend.in_flight, backend.requests) == (1, 2) and not first.held and second.held
    assert repr(first) == "Lease('10.0.0.1:8080', held=False)"


@pytest.mark.parametrize("ends", [
    pytest.param(("release", "release"), id="release-twice"),
    pytest.param(("abandon", "abandon"), id="abandon-twice"),
    pytest.param(("release", "abandon"), id="release-then-abandon"),
    pytest.param(("abandon", "release", "abandon"), id="abandon-release-abandon"),
])
def test_a_lease_ends_once(ends):
    backend = Backend("http://10.0.0.1:8080")
    lease = Lease(backend)
    for end in ends:
        lease.release() if end == "release" else lease.abandon(T0)
        assert backend.in_flight == 0 and not lease.held
    assert backend.requests == 1


def test_abandon_frees_the_probe_slot_once():
    backend = half_open_backend()
    breaker = backend.breaker
    assert breaker.allow(T0) and not breaker.allow(T0)  # the one probe slot is taken
    lease = Lease(backend)
    lease.abandon(T0)
    lease.abandon(T0)
    lease.release()
    assert breaker.probes_in_flight == 0 and breaker.state is HALF_OPEN and backend.in_flight == 0


def test_release_leaves_the_probe_slot_to_the_verdict():
    backend = half_open_backend()
    breaker = backend.breaker
    assert breaker.allow(T0)
    lease = Lease(backend)
    lease.release()
    assert breaker.probes_in_flight == 1  # taken until record_success / record_failure
    lease.abandon(T0)
    assert breaker.probes_in_flight == 1 and backend.in_flight == 0
