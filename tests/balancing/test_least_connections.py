# Weighted least connections: lowest in_flight / weight wins; ties share by smooth weighted
# round robin (sequential requests split by weight, equal weights rotate); unavailable never picked.
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.balancing.least_connections import LeastConnections


@pytest.mark.parametrize(
    ("weights", "in_flight", "down", "expected"),
    [
        pytest.param([1, 1, 1], [3, 1, 2], set(), "b1", id="fewest-in-flight"),
        pytest.param([1, 3], [1, 2], set(), "b1", id="weight-3-carries-more"),
        pytest.param([1, 3], [0, 3], set(), "b0", id="heavy-but-full"),
        pytest.param([1, 2], [0, 0], set(), "b1", id="idle-tie-goes-first-to-heavier"),
        pytest.param([4, 1], [1, 0], set(), "b1", id="idle-light-beats-busy-heavy"),
        pytest.param([4, 1], [3, 1], set(), "b0", id="three-quarters-beats-full"),
        pytest.param([1, 1, 1], [0, 5, 5], {0}, "b1", id="least-loaded-down"),
        pytest.param([1, 1, 1], [9, 9, 0], {2}, "b0", id="tie-after-skip-starts-at-front"),
    ],
)
def test_prefers_less_loaded(backends_factory, request_, weights, in_flight, down, expected):
    backends = backends_factory(weights)
    for b, n in zip(backends, in_flight):
        b.in_flight = n
    for i in down:
        backends[i].available = False
    assert LeastConnections(backends).pick(request_).id == expected


@pytest.mark.parametrize(
    ("down", "expected"),
    [
        pytest.param(set(), "b0 b1 b2 b0 b1 b2", id="all-up"),
        pytest.param({1}, "b0 b2 b0 b2 b0 b2", id="one-down-still-even"),
    ],
)
def test_ties_rotate(backends_factory, request_, down, expected):
    backends = backends_factory(3)
    for i in down:
        backends[i].available = False
    lc = LeastConnections(backends)
    assert " ".join(lc.pick(request_).id for _ in range(6)) == expected


def test_in_flight_follows_weights(backends_factory, request_):
    # Requests that never finish: in-flight counts end up proportional to weight.
    backends = backends_factory([1, 3, 4])
    lc = LeastConnections(backends)
    for _ in range(800):
        lc.pick(request_).in_flight += 1
    assert [b.in_flight for b in backends] == pytest.approx([100, 300, 400], abs=1)


def test_even_when_requests_finish_at_once(backends_factory, request_):
    lc = LeastConnections(backends_factory(4))
    counts = Counter(lc.pick(request_).id for _ in range(1000))
    assert set(counts.values()) == {250}


def test_none_when_none_available(backends_factory, request_):
    backends = backends_factory(2)
    for b in backends:
        b.available = False
    assert LeastConnections(backends).pick(request_) is None
    assert LeastConnections([]).pick(request_) is None


@pytest.mark.parametrize(("weights", "expected"), [
    pytest.param([4, 1], "b0 b0 b1 b0 b0", id="4-to-1-interleaved"),
    pytest.param([1, 4], "b1 b1 b0 b1 b1", id="order-of-backends-does-not-matter"),
    pytest.param([2, 1, 1], "b0 b1 b2 b0", id="2-1-1"),
])
def test_sequential_requests_split_by_weight(backends_factory, request_, weights, expected):
    # Each request finishes before the next: every pick sees all backends idle.
    lc = LeastConnections(backends_factory(weights))
    assert " ".join(lc.pick(request_).id for _ in range(sum(weights))) == expected


def test_tie_among_the_least_loaded_only(backends_factory, request_):
    backends = backends_factory([1, 1, 1])
    backends[0].in_flight = 2
    lc = LeastConnections(backends)
    assert " ".join(lc.pick(request_).id for _ in range(4)) == "b1 b2 b1 b2"


weights_st = st.lists(st.integers(1, 6), min_size=1, max_size=6)


@settings(max_examples=100, deadline=None)
@given(weights=weights_st, rounds=st.integers(1, 4))
def test_sequential_picks_match_weights_exactly(backends_factory, request_factory, weights, rounds):
    # Over each sum(weights) idle picks, every backend gets exactly its weight.
    backends = backends_factory(weights)
    lc = LeastConnections(backends)
    counts = Counter(lc.pick(request_factory()).id for _ in range(rounds * sum(weights)))
    assert counts == {b.id: rounds * b.weight for b in backends}


@settings(max_examples=100, deadline=None)
@given(states=st.lists(st.tuples(st.booleans(), st.integers(1, 6), st.integers(0, 12)), min_size=1, max_size=6))
def test_pick_is_least_loaded_relative_to_weight(backends_factory, request_factory, states):
    backends = backends_factory([w for _, w, _ in states])
    for b, (up, _, in_flight) in zip(backends, states):
        b.available, b.in_flight = up, in_flight
    got = LeastConnections(backends).pick(request_factory())
    up = [b for b in backends if b.available]
    if not up:
        assert got is None
    else:
        assert got.available
        assert all(got.in_flight * b.weight <= b.in_flight * got.weight for b in up)


@settings(max_examples=50, deadline=None)
@given(weights=weights_st, picks=st.integers(1, 200))
def test_in_flight_stays_within_one_request_of_weights(backends_factory, request_factory, weights, picks):
    # Requests that never finish: after every pick, no backend is more than one request
    # (relative to its weight) ahead of another.
    backends = backends_factory(weights)
    lc = LeastConnections(backends)
    for _ in range(picks):
        lc.pick(request_factory()).in_flight += 1
        loads = [b.in_flight / b.weight for b in backends]
        assert max(loads) - min(loads) <= 1.0 + 1e-9
