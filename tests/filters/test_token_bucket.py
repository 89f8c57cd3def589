# TokenBucket arithmetic (burst, refill, retry-after, remaining, reset) and BucketTable: the
# Decision it returns, bounded memory (LRU eviction, idle expiry) and the rate bound as a property.
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.filters.token_bucket import BucketTable, Decision, TokenBucket

T0 = 1000.0


def takes(limiter, tries: int, now: float, key: str = "c") -> list[bool]:
    if isinstance(limiter, TokenBucket):
        return [limiter.take(now) for _ in range(tries)]
    return [limiter.take(key, now).allowed for _ in range(tries)]


@pytest.fixture(params=["bucket", "table"])
def limiter(request):
    """A rate-10/s, burst-20 limiter, as a lone bucket and as one key of a table."""
    return TokenBucket(10.0, 20.0, T0) if request.param == "bucket" else BucketTable(10.0, 20.0)


# --- TokenBucket ---------------------------------------------------------------------------


def test_burst_then_refused_then_one_per_tenth_of_a_second(limiter):
    assert takes(limiter, 40, T0) == [True] * 20 + [False] * 20
    assert takes(limiter, 2, T0 + 0.1) == [True, False]
    assert takes(limiter, 2, T0 + 0.2) == [True, False]
    assert takes(limiter, 6, T0 + 0.5) == [True, True, True, False, False, False]


def test_refill_never_exceeds_burst(limiter):
    takes(limiter, 5, T0)
    assert takes(limiter, 40, T0 + 3600.0) == [True] * 20 + [False] * 20


@pytest.mark.parametrize(
    ("taken", "later", "retry_after", "remaining", "reset_after"),
    [
        pytest.param(0, 0.0, 0.0, 20, 0.0, id="full"),
        pytest.param(1, 0.0, 0.0, 19, 0.1, id="one-taken"),
        pytest.param(20, 0.0, 0.1, 0, 2.0, id="empty"),
        pytest.param(20, 0.05, 0.05, 0, 1.95, id="half-a-token-back"),
        pytest.param(20, 0.1, 0.0, 1, 1.9, id="one-token-back"),
        pytest.param(20, 1.0, 0.0, 10, 1.0, id="half-refilled"),
        pytest.param(20, 2.0, 0.0, 20, 0.0, id="refilled"),
        pytest.param(20, 60.0, 0.0, 20, 0.0, id="long-idle-capped"),
    ],
)
def test_readings(taken, later, retry_after, remaining, reset_after):
    bucket = TokenBucket(10.0, 20.0, T0)
    takes(bucket, taken, T0)
    now = T0 + later
    assert bucket.retry_after(now) == pytest.approx(retry_after, abs=1e-9)
    assert bucket.remaining(now) == remaining
    assert bucket.reset_after(now) == pytest.approx(reset_after, abs=1e-9)


def test_remaining_counts_down():
    bucket = TokenBucket(1.0, 5.0, T0)
    seen = []
    for _ in range(6):
        bucket.take(T0)
        seen.append(bucket.remaining(T0))
    assert seen == [4, 3, 2, 1, 0, 0]


def test_clock_stepping_back_refills_nothing():
    bucket = TokenBucket(10.0, 20.0, T0)
    takes(bucket, 20, T0)
    assert not bucket.take(T0 - 5.0)
    assert bucket.stamp == T0
    assert bucket.take(T0 + 0.1)


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        pytest.param(0.0, 10.0, "rate must be > 0", id="zero-rate"),
        pytest.param(-1.0, 10.0, "rate must be > 0", id="negative-rate"),
        pytest.param(float("nan"), 10.0, "rate must be > 0", id="nan-rate"),
        pytest.param(1.0, 0.5, "burst must be >= 1", id="burst-below-one"),
    ],
)
def test_bad_parameters(rate, burst, message):
    with pytest.raises(ValueError, match=message):
        TokenBucket(rate, burst, T0)
    with pytest.raises(ValueError, match=message):
        BucketTable(rate, burst)


# --- BucketTable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("taken", "later", "expected"),
    [
        pytest.param(0, 0.0, Decision(True, 20, 19, 0.1, 0.0), id="first-request"),
        pytest.param(19, 0.0, Decision(True, 20, 0, 2.0, 0.0), id="last-token"),
        pytest.param(20, 0.0, Decision(False, 20, 0, 2.0, 0.1), id="refused"),
        pytest.param(20, 0.025, Decision(False, 20, 0, 1.975, 0.075), id="refused-partly-refilled"),
        pytest.param(20, 0.1, Decision(True, 20, 0, 2.0, 0.0), id="allowed-after-refill"),
        pytest.param(20, 0.5, Decision(True, 20, 4, 1.6, 0.0), id="allowed-several-back"),
    ],
)
def test_decision(taken, later, expected):
    table = BucketTable(10.0, 20.0)
    takes(table, taken, T0)
    got = table.take("c", T0 + later)
    assert (got.allowed, got.limit, got.remaining) == expected[:3]
    assert got.reset == pytest.approx(expected.reset, abs=1e-9)
    assert got.retry_after == pytest.approx(expected.retry_after, abs=1e-9)


def test_keys_have_separate_buckets():
    table = BucketTable(1.0, 2.0)
    assert takes(table, 3, T0, key="a") == [True, True, False]
    assert takes(table, 3, T0, key="b") == [True, True, False]


def test_flood_of_distinct_keys_stays_bounded():
    table = BucketTable(1.0, 10.0, max_keys=1000)
    for i in range(100_000):
        assert table.take(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", T0).allowed
    assert len(table) == 1000
    assert table.evicted_total == 99_000
    assert table.expired_total == 0


def test_eviction_is_least_recently_used():
    table = BucketTable(1.0, 2.0, max_keys=3)
    for key in ("a", "b", "c"):
        table.take(key, T0)
    table.take("a", T0)  # a is now the most recently used; b the least
    table.take("d", T0)
    assert list(table.buckets) == ["c", "a", "d"]
    assert table.evicted_total == 1
    assert takes(table, 2, T0, key="a") == [False, False]  # a kept its spent bucket


def test_evicted_bucket_that_was_not_full_gets_a_fresh_burst():
    """The documented price of the max_keys bound."""
    table = BucketTable(1.0, 2.0, max_keys=1)
    assert takes(table, 3, T0, key="a") == [True, True, False]
    table.take("b", T0)
    assert table.evicted_total == 1
    assert takes(table, 3, T0, key="a") == [True, True, False]


@pytest.mark.parametrize(
    ("idle_after", "later", "left"),
    [
        pytest.param(None, 1.9, ["a", "b", "c", "d"], id="not-yet-full"),
        pytest.param(None, 2.0, ["c", "d"], id="full-two-swept-per-take"),
        pytest.param(5.0, 4.0, ["a", "b", "c", "d"], id="longer-idle-after-waits"),
        pytest.param(5.0, 5.0, ["c", "d"], id="longer-idle-after-sweeps"),
    ],
)
def test_idle_buckets_expire_from_the_cold_end(idle_after, later, left):
    table = BucketTable(1.0, 2.0, idle_after=idle_after)
    for key in ("a", "b", "c"):
        table.take(key, T0)
    table.take("d", T0 + later)
    assert list(table.buckets) == left
    assert table.expired_total == 4 - len(left)
    assert table.evicted_total == 0


def test_key_expired_while_idle_starts_full():
    table = BucketTable(1.0, 2.0)
    takes(table, 2, T0, key="a")
    assert takes(table, 3, T0 + 2.0, key="a") == [True, True, False]
    assert table.expired_total == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_keys": 0}, "max_keys must be >= 1", id="no-keys"),
        pytest.param({"idle_after": 1.0}, r"idle_after must be >= burst / rate = 2 s", id="idle-before-full"),
    ],
)
def test_bad_table_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BucketTable(1.0, 2.0, **kwargs)


def test_peek_does_not_change_the_table():
    table = BucketTable(10.0, 20.0)
    takes(table, 20, T0)
    bucket = table.peek("c", T0 + 0.5)
    assert (bucket.remaining(T0 + 0.5), bucket.reset_after(T0 + 0.5)) == (5, pytest.approx(1.5))
    assert table.peek("unknown", T0).remaining(T0) == 20
    assert list(table.buckets) == ["c"]
    assert table.buckets["c"].tokens == 0.0


# --- the rate bound, as a property -----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 1000.0),
    burst=st.integers(1, 50),
    steps=st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(1, 30)), min_size=1, max_size=40),
)
def test_allowed_never_exceeds_burst_plus_rate_times_elapsed(rate, burst, steps):
    bucket = TokenBucket(rate, float(burst), T0)
    table = BucketTable(rate, float(burst), max_keys=10)
    now = T0
    allowed_bucket = allowed_table = 0
    for gap, tries in steps:
        now += gap
        allowed_bucket += sum(takes(bucket, tries, now))
        allowed_table += sum(takes(table, tries, now))
        bound = burst + rate * (now - T0)
        assert allowed_bucket <= bound + 1e-3
        assert allowed_table <= bound + 1e-3
    assert allowed_bucket == allowed_table
