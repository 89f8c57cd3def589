# OutlierDetector: ejection after N consecutive failures, lazy expiry, ejection time growing with
# the multiplier up to the cap and decaying while healthy, max_ejection_percent refusals; panic().
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.resilience.outlier import OutlierDetector, panic

T0 = 1000.0


def detector(members: int = 4, **kwargs) -> OutlierDetector:
    d = OutlierDetector(**kwargs)
    d.set_members([f"b{i}" for i in range(members)])
    return d


def fail(d: OutlierDetector, backend_id: str, times: int, now: float) -> list[bool]:
    return [d.record(backend_id, False, now) for _ in range(times)]


def test_defaults():
    d = OutlierDetector()
    assert (d.consecutive_failures, d.base_ejection_time, d.max_ejection_time, d.max_ejection_percent) == (
        5, 30.0, 300.0, 50,
    )
    assert d.ejections_total == 0 and d.next_expiry() is None


@pytest.mark.parametrize(
    ("verdicts", "ejected"),
    [
        pytest.param("FFFF", False, id="threshold-minus-one"),
        pytest.param("FFFFF", True, id="threshold"),
        pytest.param("FFFFSFFFF", False, id="success-resets-streak"),
        pytest.param("FFFFSFFFFF", True, id="new-streak-reaches-threshold"),
    ],
)
def test_consecutive_failures(verdicts, ejected):
    d = detector()
    results = [d.record("b0", v == "S", T0) for v in verdicts]
    assert results[-1] is ejected and results[:-1] == [False] * (len(results) - 1)
    assert d.is_ejected("b0", T0) is ejected
    assert d.ejections_total == int(ejected)


def test_ejection_expires_lazily_and_streak_restarts():
    d = detector()
    assert fail(d, "b0", 5, T0)[-1]
    assert d.ejected_until("b0") == T0 + 30 and d.next_expiry() == T0 + 30
    assert d.is_ejected("b0", T0 + 29.999)
    assert not fail(d, "b0", 10, T0 + 29.0)[-1]  # verdicts while ejected are ignored
    assert d.ejected_until("b0") == T0 + 30
    assert not d.is_ejected("b0", T0 + 30)
    assert d.ejected_until("b0") is None and d.next_expiry() is None
    assert fail(d, "b0", 4, T0 + 31) == [False] * 4  # streak counted from zero
    assert d.state("b0").consecutive_failures == 4


@pytest.mark.parametrize(
    ("checked_at", "lifted"),
    [
        pytest.param(None, True, id="check-now"),
        pytest.param(T0 + 1.0, True, id="check-after-ejection"),
        pytest.param(T0, True, id="check-at-ejection"),
        pytest.param(T0 - 0.5, False, id="check-before-ejection-stands"),
    ],
)
def test_lift_ends_an_ejection_early(checked_at, lifted):
    d = detector()
    assert fail(d, "b0", 5, T0)[-1]
    assert d.lift("b0", T0 + 2.0, checked_at) is lifted
    assert d.is_ejected("b0", T0 + 2.0) is not lifted
    if lifted:
        assert d.ejected_until("b0") is None and d.next_expiry() is None
        assert d.state("b0").consecutive_failures == 0
        assert d.lift("b0", T0 + 2.0, checked_at) is False  # a repeated report lifts nothing


def test_lift_keeps_the_multiplier_and_decay_counts_from_the_lift():
    d = detector(base_ejection_time=10.0)
    fail(d, "b0", 5, T0)
    assert d.lift("b0", T0 + 1.0)
    assert fail(d, "b0", 5, T0 + 2.0)[-1]
    assert d.ejected_until("b0") == T0 + 2.0 + 20.0  # second ejection in a row: twice as long
    d.lift("b0", T0 + 3.0)
    assert d.multiplier("b0", T0 + 12.999) == 2
    assert d.multiplier("b0", T0 + 13.0) == 1  # one clean base_ejection_time after the lift


def test_lift_of_an_ejection_that_expired_or_never_was():
    d = detector()
    assert d.lift("b0", T0) is False
    assert d.lift("nobody", T0) is False
    fail(d, "b0", 5, T0)
    assert d.lift("b0", T0 + 30.0) is False  # expired by itself
    assert d.ejected_until("b0") is None


def test_lift_frees_room_under_max_ejection_percent():
    d = detector(members=2)  # 50 %: one of two may be out
    assert fail(d, "b0", 5, T0)[-1]
    assert not fail(d, "b1", 5, T0)[-1] and d.refused_total == 1
    d.lift("b0", T0 + 1.0)
    assert d.record("b1", False, T0 + 1.0)  # b1 kept its streak and may go now


def test_record_after_expiry_returns_the_backend_first():
    d = detector()
    fail(d, "b0", 5, T0)
    assert not d.record("b0", True, T0 + 40)
    assert d.ejected_until("b0") is None and not d.is_ejected("b0", T0 + 40)


def test_next_expiry_and_expire():
    d = detector(members=6)
    fail(d, "b0", 5, T0)
    fail(d, "b1", 5, T0 + 10)
    assert d.next_expiry() == T0 + 30
    assert d.expire(T0 + 29) == [] and d.ejected_count(T0 + 29) == 2
    assert d.expire(T0 + 30) == ["b0"]
    assert d.next_expiry() == T0 + 40
    assert d.expire(T0 + 100) == ["b1"] and d.next_expiry() is None


@pytest.mark.parametrize(
    ("base", "cap", "durations"),
    [
        pytest.param(30.0, 300.0, [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300], id="envoy-defaults"),
        pytest.param(30.0, 100.0, [30, 60, 90, 100, 100], id="cap-between-multiples"),
        pytest.param(10.0, 10.0, [10, 10, 10], id="cap-equals-base"),
    ],
)
def test_ejection_time_grows_to_cap(base, cap, durations):
    d = detector(base_ejection_time=base, max_ejection_time=cap)
    now = T0
    seen = []
    for _ in durations:
        assert fail(d, "b0", 5, now)[-1]
        seen.append(d.ejected_until("b0") - now)
        now = d.ejected_until("b0") + 1.0  # fail again soon after coming back: no decay
    assert seen == durations
    assert d.state("b0").multiplier == d.max_multiplier == -(-cap // base)
    assert d.state("b0").times_ejected == len(durations) == d.ejections_total


@pytest.mark.parametrize(
    ("healthy_for", "multiplier", "next_duration"),
    [
        pytest.param(29.0, 3, 120, id="less-than-one-base-no-decay"),
        pytest.param(30.0, 2, 90, id="one-base-steps-down-one"),
        pytest.param(65.0, 1, 60, id="two-bases-steps-down-two"),
        pytest.param(1000.0, 0, 30, id="fully-decayed"),
    ],
)
def test_multiplier_decays_while_healthy(healthy_for, multiplier, next_duration):
    d = detector()
    now = T0
    for _ in range(3):
        fail(d, "b0", 5, now)
        now = d.ejected_until("b0")
    assert not d.is_ejected("b0", now)  # back at `now` with multiplier 3
    assert d.multiplier("b0", now + healthy_for) == multiplier
    assert fail(d, "b0", 5, now + healthy_for)[-1]
    assert d.ejected_until("b0") == now + healthy_for + next_duration


def test_a_failure_restarts_the_healthy_stretch():
    d = detector()
    fail(d, "b0", 5, T0)
    fail(d, "b0", 5, T0 + 30)  # multiplier 2, back at T0 + 90
    back = T0 + 90
    d.record("b0", False, back + 20)  # stretch restarts at back + 20
    assert d.multiplier("b0", back + 45) == 2
    assert d.multiplier("b0", back + 50) == 1
    d.record("b0", True, back + 55)  # successes do not restart it
    assert d.multiplier("b0", back + 80) == 0


@pytest.mark.parametrize(
    ("members", "percent", "failing", "ejected"),
    [
        pytest.param(2, 50, 2, 1, id="two-backends-half-one-ejected"),
        pytest.param(4, 50, 4, 2, id="four-backends-half-two-ejected"),
        pytest.param(5, 50, 5, 2, id="rounds-down"),
        pytest.param(1, 50, 1, 1, id="at-least-one-even-alone"),
        pytest.param(10, 10, 3, 1, id="ten-percent-of-ten"),
        pytest.param(10, 5, 3, 1, id="below-one-backend-still-one"),
        pytest.param(3, 100, 3, 3, id="hundred-percent-all"),
        pytest.param(3, 0, 3, 0, id="zero-percent-disables"),
    ],
)
def test_max_ejection_percent(members, percent, failing, ejected):
    d = detector(members=members, max_ejection_percent=percent)
    for i in range(failing):
        fail(d, f"b{i}", 5, T0)
    assert d.ejected_count(T0) == ejected == d.ejections_total
    assert d.refused_total == failing - ejected


def test_refused_backend_keeps_its_streak():
    d = detector(members=2)
    assert fail(d, "b0", 5, T0)[-1]
    assert not fail(d, "b1", 5, T0)[-1]
    assert d.state("b1").consecutive_failures == 5
    assert not d.record("b1", False, T0 + 29)  # b0 still out: refused again
    assert d.record("b1", False, T0 + 30)  # b0 back: the next failure ejects b1
    assert d.is_ejected("b1", T0 + 30) and not d.is_ejected("b0", T0 + 30)


def test_set_members_keeps_drops_and_ignores_unknown():
    d = detector(members=3)
    fail(d, "b0", 5, T0)
    d.record("b1", False, T0)
    d.set_members(["b0", "b2", "b9"])
    assert d.is_ejected("b0", T0) and d.state("b1") is None
    assert d.state("b9").consecutive_failures == 0
    assert not d.record("b1", False, T0) and not d.is_ejected("b1", T0)
    assert d.ejected_until("b1") is None and d.multiplier("b1", T0) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"consecutive_failures": 0}, r"consecutive_failures must be >= 1 \(got 0\)", id="failures"),
        pytest.param({"base_ejection_time": 0.0}, r"base_ejection_time must be > 0 seconds \(got 0.0\)", id="base"),
        pytest.param(
            {"max_ejection_time": 10.0},
            r"max_ejection_time must be >= base_ejection_time \(30.0\) \(got 10.0\)",
            id="cap-below-base",
        ),
        pytest.param({"max_ejection_percent": 101}, r"between 0 and 100 \(got 101\)", id="percent"),
    ],
)
def test_invalid_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OutlierDetector(**kwargs)


@settings(max_examples=200, deadline=None)
@given(
    members=st.integers(1, 8),
    percent=st.integers(0, 100),
    events=st.lists(st.tuples(st.integers(0, 7), st.booleans(), st.floats(0.0, 20.0)), max_size=150),
)
def test_never_ejects_more_than_allowed(members, percent, events):
    d = detector(members=members, max_ejection_percent=percent, consecutive_failures=2)
    limit = 0 if percent == 0 else max(1, members * percent // 100)
    now = T0
    for index, ok, dt in events:
        now += dt
        d.record(f"b{index % members}", ok, now)
        assert d.ejected_count(now) <= limit
        until = d.next_expiry()
        assert until is None or until > now


# --- panic ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("available", "total", "threshold", "expected"),
    [
        pytest.param(10, 10, 0.5, False, id="all-up"),
        pytest.param(5, 10, 0.5, False, id="at-threshold-not-panic"),
        pytest.param(4, 10, 0.5, True, id="below-threshold"),
        pytest.param(0, 1, 0.5, True, id="only-backend-down"),
        pytest.param(0, 10, 0.0, False, id="threshold-zero-disables"),
        pytest.param(9, 10, 1.0, True, id="threshold-one-any-down"),
        pytest.param(10, 10, 1.0, False, id="threshold-one-all-up"),
        pytest.param(0, 0, 0.5, False, id="empty-pool"),
    ],
)
def test_panic(available, total, threshold, expected):
    assert panic(available, total, threshold) is expected


@pytest.mark.parametrize("threshold", [pytest.param(-0.1, id="negative"), pytest.param(1.5, id="above-one")])
def test_panic_threshold_out_of_range(threshold):
    with pytest.raises(ValueError, match=rf"panic threshold must be between 0 and 1 \(got {threshold}\)"):
        panic(1, 2, threshold)
