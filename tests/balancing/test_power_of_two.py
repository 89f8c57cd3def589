# Power of two choices: the less loaded of two distinct random eligible backends;
# the sampling helper draws distinct, eligible, uniformly spread pairs.
from __future__ import annotations

import random
from collections import Counter
from itertools import combinations

import pytest

from fulcrum.balancing.power_of_two import PowerOfTwo, two_choices
from fulcrum.balancing.random_choice import RandomChoice


@pytest.mark.parametrize(
    ("weights", "in_flight", "expected"),
    [
        pytest.param([1, 1], [5, 0], "b1", id="fewer-in-flight"),
        pytest.param([1, 1], [0, 5], "b0", id="fewer-in-flight-first"),
        pytest.param([1, 4], [1, 4], "b1", id="weight-aware"),
        pytest.param([4, 1], [4, 1], "b0", id="weight-aware-first"),
    ],
)
def test_two_backends_less_loaded_wins(backends_factory, request_, weights, in_flight, expected):
    backends = backends_factory(weights)
    for b, n in zip(backends, in_flight):
        b.in_flight = n
    p2c = PowerOfTwo(backends, rng=random.Random(1))
    assert {p2c.pick(request_).id for _ in range(50)} == {expected}


def test_most_loaded_never_picked(backends_factory, request_):
    backends = backends_factory(4)
    backends[0].in_flight = 10
    p2c = PowerOfTwo(backends, rng=random.Random(2))
    counts = Counter(p2c.pick(request_).id for _ in range(3000))
    assert "b0" not in counts
    assert all(c > 800 for c in counts.values())


def worst_spread(strategy, backends, request, seed: int) -> int:
    """Keep 50 requests in flight (a random one finishes per arrival); return the
    largest gap between the busiest and idlest backend seen."""
    rng = random.Random(seed)
    worst = 0
    for step in range(5000):
        strategy.pick(request).in_flight += 1
        if step < 50:
            continue
        k = rng.randrange(sum(b.in_flight for b in backends))
        for b in backends:
            k -= b.in_flight
            if k < 0:
                b.in_flight -= 1
                break
        loads = [b.in_flight for b in backends]
        worst = max(worst, max(loads) - min(loads))
    return worst


def test_keeps_load_closer_than_random(backends_factory, request_):
    p2c_backends = backends_factory(5)
    random_backends = backends_factory(5)
    p2c = worst_spread(PowerOfTwo(p2c_backends, rng=random.Random(4)), p2c_backends, request_, 3)
    rnd = worst_spread(RandomChoice(random_backends, rng=random.Random(4)), random_backends, request_, 3)
    assert p2c <= 10
    assert p2c < 0.6 * rnd


@pytest.mark.parametrize(
    ("down", "pairs"),
    [
        pytest.param(set(), 6, id="all-up"),
        pytest.param({0}, 3, id="one-down"),
        pytest.param({0, 2}, 1, id="two-left"),
    ],
)
def test_two_choices_distinct_eligible_uniform(backends_factory, down, pairs):
    backends = backends_factory(4)
    for i in down:
        backends[i].available = False
    rnd = random.Random(5).random
    seen = Counter()
    for _ in range(6000):
        a, b = two_choices(backends, rnd)
        assert a is not b and a.available and b.available
        seen[frozenset((a.id, b.id))] += 1
    eligible = [b.id for b in backends if b.available]
    assert set(seen) == {frozenset(p) for p in combinations(eligible, 2)}
    assert len(seen) == pairs
    for count in seen.values():
        assert count / 6000 == pytest.approx(1 / pairs, abs=0.02)


@pytest.mark.parametrize(
    ("n", "down", "expected"),
    [
        pytest.param(0, set(), None, id="no-backends"),
        pytest.param(3, {0, 1, 2}, None, id="all-down"),
        pytest.param(3, {0, 2}, "b1", id="one-left"),
        pytest.param(1, set(), "b0", id="single"),
    ],
)
def test_fewer_than_two_eligible(backends_factory, request_, n, down, expected):
    backends = backends_factory(n)
    for i in down:
        backends[i].available = False
    got = PowerOfTwo(backends, rng=random.Random(6)).pick(request_)
    assert (got.id if got else None) == expected
