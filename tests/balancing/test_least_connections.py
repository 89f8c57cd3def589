# Weighted least connections: lowest (in_flight + 1) / weight wins, ties rotate,
# unavailable backends never picked.
from __future__ import annotations

from collections import Counter

import pytest

from fulcrum.balancing.least_connections import LeastConnections


@pytest.mark.parametrize(
    ("weights", "in_flight", "down", "expected"),
    [
        pytest.param([1, 1, 1], [3, 1, 2], set(), "b1", id="fewest-in-flight"),
        pytest.param([1, 3], [1, 2], set(), "b1", id="weight-3-carries-more"),
        pytest.param([1, 3], [0, 3], set(), "b0", id="heavy-but-full"),
        pytest.param([1, 2], [0, 0], set(), "b1", id="idle-prefers-heavier"),
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
