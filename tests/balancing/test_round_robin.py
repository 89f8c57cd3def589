# Round robin: even rotation in list order, weight ignored, unavailable ones skipped
# without disturbing the others' turns.
from __future__ import annotations

from collections import Counter

import pytest

from fulcrum.balancing.round_robin import RoundRobin


@pytest.mark.parametrize(
    ("weights", "down", "picks", "expected"),
    [
        pytest.param([1, 1, 1], set(), 6, "b0 b1 b2 b0 b1 b2", id="in-order"),
        pytest.param([5, 1, 1], set(), 6, "b0 b1 b2 b0 b1 b2", id="ignores-weight"),
        pytest.param([1, 1, 1], {1}, 4, "b0 b2 b0 b2", id="skips-unavailable"),
        pytest.param([1, 1, 1], {0}, 4, "b1 b2 b1 b2", id="skips-unavailable-first"),
        pytest.param([1, 1, 1], {0, 2}, 3, "b1 b1 b1", id="one-left"),
        pytest.param([1], set(), 2, "b0 b0", id="single"),
    ],
)
def test_sequence(backends_factory, request_, weights, down, picks, expected):
    backends = backends_factory(weights)
    for i in down:
        backends[i].available = False
    rr = RoundRobin(backends)
    assert " ".join(rr.pick(request_).id for _ in range(picks)) == expected


def test_even_over_many_picks(backends_factory, request_):
    rr = RoundRobin(backends_factory(4))
    counts = Counter(rr.pick(request_).id for _ in range(10_000))
    assert set(counts.values()) == {2500}


def test_availability_read_at_pick_time(backends_factory, request_):
    backends = backends_factory(3)
    rr = RoundRobin(backends)
    assert rr.pick(request_).id == "b0"
    backends[1].available = False
    assert rr.pick(request_).id == "b2"
    backends[1].available = True
    assert [rr.pick(request_).id for _ in range(3)] == ["b0", "b1", "b2"]


@pytest.mark.parametrize(
    "n",
    [pytest.param(0, id="no-backends"), pytest.param(3, id="all-down")],
)
def test_none_when_none_available(backends_factory, request_, n):
    backends = backends_factory(n)
    for b in backends:
        b.available = False
    assert RoundRobin(backends).pick(request_) is None
