# Smooth weighted round robin: nginx's exact sequences, exact shares, and runs no
# longer than one beyond the ideal spread.
from __future__ import annotations

import math
from collections import Counter

import pytest

from fulcrum.balancing.weighted_round_robin import WeightedRoundRobin


def max_runs(seq: list[str]) -> dict[str, int]:
    runs: dict[str, int] = {}
    prev, run = None, 0
    for x in seq:
        run = run + 1 if x == prev else 1
        prev = x
        runs[x] = max(runs.get(x, 0), run)
    return runs


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        pytest.param([5, 1, 1], "b0 b0 b1 b0 b2 b0 b0", id="nginx-5-1-1"),
        pytest.param([1, 1, 1], "b0 b1 b2", id="equal"),
        pytest.param([1, 3], "b1 b0 b1 b1", id="1-3"),
        pytest.param([2, 1], "b0 b1 b0", id="2-1"),
    ],
)
def test_one_cycle_sequence(backends_factory, request_, weights, expected):
    wrr = WeightedRoundRobin(backends_factory(weights))
    picks = [wrr.pick(request_).id for _ in range(sum(weights))]
    assert " ".join(picks) == expected


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param([1, 3], id="1-3"),
        pytest.param([5, 1, 1], id="5-1-1"),
        pytest.param([10, 1], id="10-1"),
        pytest.param([7, 3, 2, 1], id="7-3-2-1"),
        pytest.param([5, 3, 2], id="5-3-2"),
        pytest.param([9, 8, 7, 1], id="9-8-7-1"),
    ],
)
def test_exact_shares_and_smooth_runs(backends_factory, request_, weights):
    wrr = WeightedRoundRobin(backends_factory(weights))
    total = sum(weights)
    cycles = 10_000 // total + 1
    picks = [wrr.pick(request_).id for _ in range(cycles * total)]
    counts = Counter(picks)
    for i, w in enumerate(weights):
        assert counts[f"b{i}"] == cycles * w
    # Ideal: the others' total - w picks per cycle split w's picks into as many
    # runs (cyclically); smooth WRR may exceed the ideal run by one at most.
    runs = max_runs(picks)
    for i, w in enumerate(weights):
        ideal = math.ceil(w / (total - w))
        assert runs[f"b{i}"] <= ideal + 1, (f"b{i}", runs[f"b{i}"], ideal)


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param([1, 3], id="1-3"),
        pytest.param([5, 1, 1], id="5-1-1"),
        pytest.param([7, 3, 2, 1], id="7-3-2-1"),
        pytest.param([100, 1, 1, 1], id="100-1-1-1"),
        pytest.param([2, 2, 1, 2, 2, 2, 40], id="many-light-one-heavy"),
    ],
)
def test_never_a_whole_pick_ahead_of_its_share(backends_factory, request_, weights):
    # After any k picks, backend i has had fewer than k * w_i / total + 1 picks.
    wrr = WeightedRoundRobin(backends_factory(weights))
    total = sum(weights)
    counts = [0] * len(weights)
    for k in range(1, 3 * total + 1):
        counts[int(wrr.pick(request_).id[1:])] += 1
        for i, w in enumerate(weights):
            assert counts[i] - k * w / total < 1, (k, i, counts)


def test_1_to_3_is_exactly_25_75(backends_factory, request_):
    wrr = WeightedRoundRobin(backends_factory([1, 3]))
    counts = Counter(wrr.pick(request_).id for _ in range(10_000))
    assert counts == {"b0": 2500, "b1": 7500}


def test_skips_unavailable_and_weight_zero(backends_factory, request_):
    backends = backends_factory([3, 1, 2])
    backends[0].available = False
    backends[2].weight = 0
    wrr = WeightedRoundRobin(backends)
    assert {wrr.pick(request_).id for _ in range(10)} == {"b1"}


def test_weight_change_read_at_pick_time(backends_factory, request_):
    backends = backends_factory([1, 1])
    wrr = WeightedRoundRobin(backends)
    for _ in range(4):
        wrr.pick(request_)
    backends[1].weight = 3
    counts = Counter(wrr.pick(request_).id for _ in range(400))
    assert counts == {"b0": 100, "b1": 300}


def test_none_when_none_available(backends_factory, request_):
    backends = backends_factory([2, 1])
    for b in backends:
        b.available = False
    assert WeightedRoundRobin(backends).pick(request_) is None
    assert WeightedRoundRobin([]).pick(request_) is None
