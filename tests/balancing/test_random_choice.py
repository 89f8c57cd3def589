# Weighted random: shares follow weights within sampling error (fixed seed),
# unavailable and weight-0 backends never picked.
from __future__ import annotations

import random
from collections import Counter

import pytest

from fulcrum.balancing.random_choice import RandomChoice


@pytest.mark.parametrize(
    ("weights", "down", "shares"),
    [
        pytest.param([1, 3], set(), [0.25, 0.75], id="1-3"),
        pytest.param([1, 1, 1, 1], set(), [0.25] * 4, id="equal"),
        pytest.param([2, 1, 1], {0}, [0.0, 0.5, 0.5], id="heaviest-down"),
        pytest.param([5, 3, 2], set(), [0.5, 0.3, 0.2], id="5-3-2"),
    ],
)
def test_shares_follow_weights(backends_factory, request_, weights, down, shares):
    backends = backends_factory(weights)
    for i in down:
        backends[i].available = False
    rc = RandomChoice(backends, rng=random.Random(7))
    n = 10_000
    counts = Counter(rc.pick(request_).id for _ in range(n))
    for i, share in enumerate(shares):
        assert counts[f"b{i}"] / n == pytest.approx(share, abs=0.015)


def test_weight_read_at_pick_time(backends_factory, request_):
    backends = backends_factory([1, 1])
    rc = RandomChoice(backends, rng=random.Random(3))
    backends[0].weight = 0
    assert {rc.pick(request_).id for _ in range(200)} == {"b1"}


def test_same_seed_same_sequence(backends_factory, request_):
    backends = backends_factory([1, 2, 3])
    a = RandomChoice(backends, rng=random.Random(42))
    b = RandomChoice(backends, rng=random.Random(42))
    assert [a.pick(request_).id for _ in range(50)] == [b.pick(request_).id for _ in range(50)]


def test_none_when_none_available(backends_factory, request_):
    backends = backends_factory(3)
    for b in backends:
        b.available = False
    assert RandomChoice(backends).pick(request_) is None
    assert RandomChoice([]).pick(request_) is None
