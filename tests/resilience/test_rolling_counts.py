# RollingCounts: totals over the current slice and the buckets-1 before it; slices the clock
# passes over are cleared; a long gap clears everything; a clock stepping back counts into the newest slice.
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.resilience.window import RollingCounts


@pytest.mark.parametrize(
    ("events", "at", "total"),
    [
        pytest.param([], 0.0, 0, id="empty"),
        pytest.param([0.0, 0.5, 0.99], 0.99, 3, id="same-slice"),
        pytest.param([0.0, 5.0], 9.99, 2, id="oldest-slice-still-in-window"),
        pytest.param([0.0, 5.0], 10.0, 1, id="oldest-slice-leaves-at-window"),
        pytest.param([0.5, 5.0], 10.2, 1, id="slice-granularity-not-event-age"),
        pytest.param([0.0, 5.0], 15.0, 0, id="all-slices-leave"),
        pytest.param([0.0, 5.0], 1000.0, 0, id="long-gap-clears-all"),
        pytest.param([5.0, 4.0], 5.0, 2, id="clock-back-counts-in-newest-slice"),
        pytest.param([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 10.0, 10, id="full-ring"),
        pytest.param([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 11.0, 9, id="ring-wraps"),
    ],
)
def test_total(events, at, total):
    counts = RollingCounts(10.0, buckets=10, columns=1)
    for t in events:
        counts.add(t, 0)
    assert counts.total(at, 0) == total


def test_columns_are_independent():
    counts = RollingCounts(10.0, buckets=10, columns=2)
    counts.add(0.0, 0)
    counts.add(0.0, 0)
    counts.add(3.0, 1, n=5)
    assert (counts.total(3.0, 0), counts.total(3.0, 1)) == (2, 5)
    assert (counts.total(10.5, 0), counts.total(10.5, 1)) == (0, 5)


def test_clear_forgets_counts_but_keeps_position():
    counts = RollingCounts(10.0)
    counts.add(100.0, 0)
    counts.clear()
    assert counts.total(100.0, 0) == 0
    counts.add(100.0, 0)
    assert counts.total(100.0, 0) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"window": 0.0}, r"window must be > 0 seconds \(got 0.0\)", id="window-zero"),
        pytest.param({"window": 1.0, "buckets": 0}, r"buckets must be >= 1 \(got 0\)", id="buckets-zero"),
        pytest.param({"window": 1.0, "columns": 0}, r"columns must be >= 1 \(got 0\)", id="columns-zero"),
    ],
)
def test_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RollingCounts(**kwargs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=60.0), max_size=60).map(sorted), st.floats(0.0, 30.0))
def test_matches_a_brute_force_count(times, after):
    """With a monotonic clock, the total is the number of events in the live slices."""
    counts = RollingCounts(10.0, buckets=10, columns=1)
    for t in times:
        counts.add(t, 0)
    at = (times[-1] if times else 0.0) + after
    newest = int(at // 1.0)
    expected = sum(1 for t in times if newest - int(t // 1.0) < 10)
    assert counts.total(at, 0) == expected
