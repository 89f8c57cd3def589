# HealthState: threshold boundaries both ways, resets on the other result, flapping, the
# reasons transitions carry, status-page fields, and slow-start weights at fixed times.
from __future__ import annotations

import pytest

from fulcrum.health.state import SLOW_START_FLOOR, Health, HealthState, Transition

H, U = Health.HEALTHY, Health.UNHEALTHY


def feed(state: HealthState, results: str, start: float = 100.0) -> list[Transition | None]:
    """Record ``results`` ("+" success, "-" failure) one second apart."""
    return [state.record(r == "+", start + i, "status 200" if r == "+" else "status 503")
            for i, r in enumerate(results)]


def test_starts_healthy_with_empty_fields():
    state = HealthState()
    assert state.state is H and state.healthy
    assert state.snapshot() == {
        "state": "healthy", "consecutive_ok": 0, "consecutive_fail": 0,
        "last_reason": None, "last_checked_at": None, "changed_at": None,
    }


@pytest.mark.parametrize("healthy_threshold, unhealthy_threshold, results, final, transition_at", [
    pytest.param(2, 3, "--", H, None, id="one-failure-short-of-leaving"),
    pytest.param(2, 3, "---", U, 2, id="leaves-at-unhealthy-threshold"),
    pytest.param(2, 1, "-", U, 0, id="threshold-1-leaves-on-first-failure"),
    pytest.param(2, 3, "--+--", H, None, id="success-resets-failures"),
    pytest.param(2, 3, "--+---", U, 5, id="leaves-after-fresh-run-of-failures"),
    pytest.param(2, 3, "+++++", H, None, id="successes-while-healthy-change-nothing"),
    pytest.param(2, 3, "---+", U, 2, id="one-success-short-of-returning"),
    pytest.param(2, 3, "---++", H, 4, id="returns-at-healthy-threshold"),
    pytest.param(1, 3, "---+", H, 3, id="threshold-1-returns-on-first-success"),
    pytest.param(3, 3, "---++-++", U, 2, id="failure-resets-successes"),
    pytest.param(2, 2, "-+-+-+-+-+-+-+-+", H, None, id="flapping-stays-healthy"),
    pytest.param(2, 2, "--+-+-+-+-+-+-+-", U, 1, id="flapping-stays-unhealthy"),
    pytest.param(2, 3, "------", U, 2, id="more-failures-no-second-transition"),
])
def test_thresholds(healthy_threshold, unhealthy_threshold, results, final, transition_at):
    state = HealthState(healthy_threshold=healthy_threshold, unhealthy_threshold=unhealthy_threshold)
    transitions = feed(state, results)
    assert state.state is final
    fired = [i for i, t in enumerate(transitions) if t is not None]
    assert (fired[-1] if fired else None) == transition_at


@pytest.mark.parametrize("results, expected", [
    pytest.param("-", [Transition(H, U, "1 failure: status 503")], id="single-failure"),
    pytest.param("-+", [Transition(H, U, "1 failure: status 503"), Transition(U, H, "1 success")],
                 id="single-success"),
])
def test_reasons_at_threshold_one(results, expected):
    state = HealthState(healthy_threshold=1, unhealthy_threshold=1)
    assert [t for t in feed(state, results) if t] == expected


def test_reasons_name_the_count_and_the_last_failure():
    state = HealthState(healthy_threshold=2, unhealthy_threshold=3)
    state.record(False, 1.0, "connect refused")
    state.record(False, 2.0, "timeout after 1s")
    down = state.record(False, 3.0, "status 503 not in 200-399")
    assert down == Transition(H, U, "3 consecutive failures: status 503 not in 200-399")
    state.record(True, 4.0, "status 200")
    up = state.record(True, 5.0, "status 200")
    assert up == Transition(U, H, "2 consecutive successes")


def test_fields_follow_results():
    state = HealthState(healthy_threshold=2, unhealthy_threshold=2)
    state.record(False, 10.0, "connect refused")
    assert (state.consecutive_fail, state.consecutive_ok) == (1, 0)
    assert (state.last_reason, state.last_checked_at, state.changed_at) == ("connect refused", 10.0, None)
    state.record(False, 11.0, "connect refused")
    assert state.changed_at == 11.0
    state.record(True, 12.0, "status 200")
    assert (state.consecutive_fail, state.consecutive_ok) == (0, 1)
    assert state.snapshot() == {
        "state": "unhealthy", "consecutive_ok": 1, "consecutive_fail": 0,
        "last_reason": "status 200", "last_checked_at": 12.0, "changed_at": 11.0,
    }


def test_passed_at_is_the_latest_passing_result():
    state = HealthState(healthy_threshold=2, unhealthy_threshold=2)
    assert state.passed_at is None
    feed(state, "+-", start=10.0)
    assert state.passed_at == 10.0
    feed(state, "--+", start=20.0)
    assert state.passed_at == 22.0 and not state.healthy  # a pass counts even below the threshold
    assert "passed_at" not in state.snapshot()  # not a status-page field


@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"healthy_threshold": 0}, "healthy_threshold must be >= 1 (got 0)", id="healthy-0"),
    pytest.param({"unhealthy_threshold": 0}, "unhealthy_threshold must be >= 1 (got 0)", id="unhealthy-0"),
    pytest.param({"slow_start": -1.0}, "slow_start must be >= 0 seconds (got -1.0)", id="slow-start-negative"),
    pytest.param({"slow_start": float("nan")}, "slow_start must be >= 0 seconds", id="slow-start-nan"),
])
def test_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HealthState(**kwargs)


def recovered_at(t0: float, slow_start: float) -> HealthState:
    """A state that went down at t0 - 10 and came back at exactly t0 (thresholds 1/1)."""
    state = HealthState(healthy_threshold=1, unhealthy_threshold=1, slow_start=slow_start)
    state.record(False, t0 - 10.0, "status 503")
    state.record(True, t0, "status 200")
    assert state.changed_at == t0
    return state


@pytest.mark.parametrize("now, expected", [
    pytest.param(99.0, 1.0, id="clock-before-recovery-is-floor"),
    pytest.param(100.0, 1.0, id="at-recovery-10-percent"),
    pytest.param(102.5, 3.25, id="quarter-way"),
    pytest.param(105.0, 5.5, id="half-way"),
    pytest.param(109.0, 9.1, id="nine-tenths"),
    pytest.param(110.0, 10.0, id="ramp-done"),
    pytest.param(500.0, 10.0, id="long-after"),
])
def test_slow_start_ramps_linearly_from_floor(now, expected):
    state = recovered_at(100.0, slow_start=10.0)
    assert SLOW_START_FLOOR == 0.1
    assert state.effective_weight(10, now) == pytest.approx(expected)
    assert state.in_slow_start(now) == (now < 110.0)


@pytest.mark.parametrize("state_factory, weight, now, expected", [
    pytest.param(lambda: recovered_at(100.0, slow_start=0.0), 10, 100.0, 10.0, id="disabled-full-at-once"),
    pytest.param(lambda: HealthState(slow_start=30.0), 4, 0.0, 4.0, id="healthy-from-start-no-ramp"),
    pytest.param(lambda: recovered_at(100.0, slow_start=10.0), 0, 105.0, 0.0, id="weight-0-stays-0"),
    pytest.param(lambda: recovered_at(100.0, slow_start=10.0), 1, 100.0, 0.1, id="weight-1-floor"),
])
def test_effective_weight_cases(state_factory, weight, now, expected):
    assert state_factory().effective_weight(weight, now) == pytest.approx(expected)


def test_unhealthy_weight_is_zero_and_ramp_restarts_on_next_recovery():
    state = recovered_at(100.0, slow_start=10.0)
    state.record(False, 105.0, "status 503")
    assert state.effective_weight(10, 105.0) == 0.0
    assert not state.in_slow_start(105.0)
    state.record(True, 120.0, "status 200")
    assert state.effective_weight(10, 120.0) == pytest.approx(1.0)
    assert state.effective_weight(10, 125.0) == pytest.approx(5.5)
