# full_jitter_backoff: draws lie in [0, min(cap, base * 2**attempt)), average half of it,
# huge attempt numbers stay at the cap without overflowing, and bad arguments are named.
from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.resilience.backoff import full_jitter_backoff

from .conftest import FixedRandom


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "ceiling"),
    [
        pytest.param(0, 0.025, 1.0, 0.025, id="first-retry-is-base"),
        pytest.param(1, 0.025, 1.0, 0.05, id="doubles"),
        pytest.param(5, 0.025, 1.0, 0.8, id="below-cap"),
        pytest.param(6, 0.025, 1.0, 1.0, id="capped"),
        pytest.param(1100, 0.025, 1.0, 1.0, id="beyond-float-exponent"),
        pytest.param(10**30, 0.025, 1.0, 1.0, id="absurd-attempt"),
        pytest.param(3, 0.0, 1.0, 0.0, id="zero-base"),
        pytest.param(3, 0.025, 0.0, 0.0, id="zero-cap"),
        pytest.param(1100, 5e-324, 1.0, 1.0, id="tiny-base-huge-attempt"),
    ],
)
def test_ceiling(attempt, base, cap, ceiling):
    assert full_jitter_backoff(attempt, base, cap, FixedRandom(0.0)) == 0.0
    assert full_jitter_backoff(attempt, base, cap, FixedRandom(0.5)) == pytest.approx(ceiling / 2)
    top = full_jitter_backoff(attempt, base, cap, FixedRandom(0.999999))
    assert top < ceiling or ceiling == 0.0
    assert top == pytest.approx(ceiling, rel=1e-5)


@pytest.mark.parametrize("attempt", [pytest.param(n, id=f"attempt-{n}") for n in (0, 2, 4, 8)])
def test_distribution(attempt):
    rng = random.Random(7)
    ceiling = min(1.0, 0.025 * 2**attempt)
    draws = [full_jitter_backoff(attempt, 0.025, 1.0, rng) for _ in range(20_000)]
    assert all(0.0 <= d < ceiling for d in draws)
    assert statistics.fmean(draws) == pytest.approx(ceiling / 2, rel=0.02)
    assert max(draws) > 0.99 * ceiling and min(draws) < 0.01 * ceiling


def test_same_seed_same_delays():
    a = [full_jitter_backoff(n, 0.025, 1.0, random.Random(42)) for n in range(10)]
    b = [full_jitter_backoff(n, 0.025, 1.0, random.Random(42)) for n in range(10)]
    assert a == b


@given(
    attempt=st.integers(0, 5000),
    base=st.floats(0.0, 10.0),
    cap=st.floats(0.0, 100.0),
    seed=st.integers(0, 2**32),
)
def test_always_within_bounds(attempt, base, cap, seed):
    d = full_jitter_backoff(attempt, base, cap, random.Random(seed))
    assert 0.0 <= d <= cap
    if attempt < 60:
        assert d <= base * 2**attempt


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((-1, 0.1, 1.0), r"attempt must be >= 0 \(got -1\)", id="negative-attempt"),
        pytest.param((0, -0.1, 1.0), r"backoff base must be >= 0 seconds \(got -0.1\)", id="negative-base"),
        pytest.param((0, 0.1, -1.0), r"backoff cap must be >= 0 seconds \(got -1.0\)", id="negative-cap"),
    ],
)
def test_invalid(args, message):
    with pytest.raises(ValueError, match=message):
        full_jitter_backoff(*args, random.Random(0))
