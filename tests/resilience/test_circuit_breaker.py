# CircuitBreaker: every transition and its boundary (consecutive threshold, failure ratio with
# min_requests, window expiry, reset timeout, half-open probe limit, release), the reasons given to
# on_change, and a property test that HALF_OPEN never has more probes in flight than allowed.
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.resilience.circuit_breaker import CLOSED, HALF_OPEN, OPEN, BreakerState, CircuitBreaker

T0 = 1000.0


def run(breaker: CircuitBreaker, verdicts: str, now: float = T0, step: float = 0.0) -> float:
    """Apply verdicts: S success, F failure, R release (each after an allow())."""
    for v in verdicts:
        breaker.allow(now)
        {"S": breaker.record_success, "F": breaker.record_failure, "R": breaker.release}[v](now)
        now += step
    return now


def tripped(breaker: CircuitBreaker, now: float = T0) -> CircuitBreaker:
    run(breaker, "F" * breaker.failure_threshold, now)
    assert breaker.state is OPEN
    return breaker


def test_defaults():
    b = CircuitBreaker()
    assert (b.failure_threshold, b.failure_ratio, b.min_requests) == (5, 0.5, 20)
    assert (b.counts.window, b.counts.size, b.reset_timeout, b.half_open_requests) == (10.0, 10, 10.0, 1)
    assert b.state is CLOSED and b.retry_at is None and b.last_transition_at is None
    assert b.state == "closed" and isinstance(b.state, BreakerState)


# --- CLOSED -> OPEN on consecutive failures ------------------------------------------------------

@pytest.mark.parametrize(
    ("threshold", "verdicts", "state"),
    [
        pytest.param(5, "FFFF", CLOSED, id="threshold-minus-one-stays-closed"),
        pytest.param(5, "FFFFF", OPEN, id="threshold-opens"),
        pytest.param(5, "FFFFSFFFF", CLOSED, id="success-resets-streak"),
        pytest.param(5, "FFFFSFFFFF", OPEN, id="streak-after-reset-opens"),
        pytest.param(5, "FFRFFF", OPEN, id="release-does-not-break-streak"),
        pytest.param(1, "F", OPEN, id="threshold-one"),
        pytest.param(0, "F" * 50, CLOSED, id="threshold-zero-disables"),
    ],
)
def test_consecutive_failures(threshold, verdicts, state):
    b = CircuitBreaker(failure_threshold=threshold, failure_ratio=0.0)
    run(b, verdicts)
    assert b.state is state


def test_consecutive_reason_and_counters(transitions):
    b = CircuitBreaker(failure_ratio=0.0, on_change=transitions)
    run(b, "FFFF", T0, step=1.0)
    assert b.consecutive_failures == 4 and b.state is CLOSED
    run(b, "F", T0 + 7)
    assert transitions.seen == [("closed", "open", "5 consecutive failures")]
    assert (b.last_transition_at, b.last_reason, b.retry_at, b.opened_total) == (
        T0 + 7, "5 consecutive failures", T0 + 17, 1,
    )


# --- CLOSED -> OPEN on failure ratio -------------------------------------------------------------

@pytest.mark.parametrize(
    ("verdicts", "state"),
    [
        pytest.param("F" * 9, CLOSED, id="below-min-requests-never-opens"),
        pytest.param("SSSSSFFFFF", OPEN, id="ratio-reached-at-min-requests"),
        pytest.param("SSSSSSFFFF", CLOSED, id="ratio-just-below"),
        pytest.param("SSSSSSFFFFF", CLOSED, id="below-ratio-past-min-requests"),
        pytest.param("SSSSSSFFFFFF", OPEN, id="ratio-reached-past-min-requests"),
        pytest.param("FFFFFSSSSS", CLOSED, id="checked-on-failures-only"),
        pytest.param("FFFFFSSSSSF", OPEN, id="next-failure-sees-ratio"),
        pytest.param("SSSSSFRFRFRFRF", OPEN, id="releases-are-not-requests"),
    ],
)
def test_failure_ratio(verdicts, state):
    b = CircuitBreaker(failure_threshold=0, failure_ratio=0.5, min_requests=10)
    run(b, verdicts)
    assert b.state is state


def test_failure_ratio_reason(transitions):
    b = CircuitBreaker(failure_threshold=0, failure_ratio=0.6, min_requests=10, on_change=transitions)
    run(b, "SSS" + "FSFF" * 2)  # 11 requests, 6 failures: 0.545 < 0.6
    assert b.state is CLOSED
    run(b, "FF")  # 13 requests, 8 failures: 0.615
    assert transitions.seen == [("closed", "open", "failure ratio 0.62 (8 of 13) over 10s")]


@pytest.mark.parametrize(
    ("ratio", "verdicts", "state"),
    [
        pytest.param(1.0, "F" * 10, OPEN, id="ratio-one-means-all-failed"),
        pytest.param(1.0, "S" + "F" * 30, CLOSED, id="ratio-one-any-success-keeps-closed"),
        pytest.param(0.0, "F" * 30, CLOSED, id="ratio-zero-disables"),
    ],
)
def test_failure_ratio_extremes(ratio, verdicts, state):
    b = CircuitBreaker(failure_threshold=0, failure_ratio=ratio, min_requests=10)
    run(b, verdicts)
    assert b.state is state


@pytest.mark.parametrize(
    ("gap", "state"),
    [
        pytest.param(9.5, OPEN, id="old-failures-still-in-window"),
        pytest.param(10.0, CLOSED, id="old-failures-slid-out"),
    ],
)
def test_failure_ratio_window_slides(gap, state):
    b = CircuitBreaker(failure_threshold=0, failure_ratio=0.5, min_requests=10)
    run(b, "FFFFF")  # five failures at T0, below min_requests
    run(b, "SSSSF", T0 + gap)  # with them: 5+1 of 10 fail; without: 1 of 5, below min_requests
    assert b.state is state


# --- OPEN -> HALF_OPEN ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("after", "allowed", "state"),
    [
        pytest.param(0.0, False, OPEN, id="just-opened"),
        pytest.param(9.999, False, OPEN, id="just-before-reset-timeout"),
        pytest.param(10.0, True, HALF_OPEN, id="at-reset-timeout"),
        pytest.param(500.0, True, HALF_OPEN, id="long-after"),
    ],
)
def test_open_until_reset_timeout(after, allowed, state):
    b = tripped(CircuitBreaker())
    assert b.retry_at == T0 + 10.0
    assert b.available(T0 + after) is allowed
    assert b.state is OPEN  # available() changes nothing
    assert b.allow(T0 + after) is allowed
    assert b.state is state


def test_reset_timeout_zero_probes_at_once():
    b = tripped(CircuitBreaker(reset_timeout=0.0))
    assert b.allow(T0) and b.state is HALF_OPEN


# --- OPEN -> HALF_OPEN early: a passing active health check (probe_now) ---------------------------

@pytest.mark.parametrize(
    ("checked_at", "moved"),
    [
        pytest.param(None, True, id="check-now"),
        pytest.param(T0 + 1.0, True, id="check-after-opening"),
        pytest.param(T0, True, id="check-at-the-moment-it-opened"),
        pytest.param(T0 - 0.5, False, id="check-before-opening-stands"),
    ],
)
def test_probe_now_half_opens_an_open_breaker(transitions, checked_at, moved):
    b = tripped(CircuitBreaker(on_change=transitions))
    assert b.probe_now(T0 + 2.0, checked_at) is moved
    assert b.state is (HALF_OPEN if moved else OPEN)
    assert b.available(T0 + 2.0) is moved  # long before reset_timeout
    if moved:
        assert transitions.seen[-1] == ("open", "half_open", "health check passed")
        assert b.retry_at == T0 + 2.0 and b.last_transition_at == T0 + 2.0
        assert b.allow(T0 + 2.0) and not b.allow(T0 + 2.0)  # one probe, as after the timeout


def test_probe_now_then_the_probe_decides(transitions):
    b = tripped(CircuitBreaker(on_change=transitions))
    b.probe_now(T0 + 1.0)
    run(b, "F", T0 + 1.0)
    assert b.state is OPEN and b.retry_at == T0 + 11.0  # a failed probe restarts the timeout
    b.probe_now(T0 + 2.0)
    run(b, "S", T0 + 2.0)
    assert b.state is CLOSED
    assert [t[2] for t in transitions.seen[1:]] == [
        "health check passed", "probe failed", "health check passed", "probe succeeded"]


@pytest.mark.parametrize("verdicts", [
    pytest.param("", id="closed"),
    pytest.param("FFFFF+", id="half-open"),  # + : the reset timeout elapsed and a probe is out
])
def test_probe_now_leaves_closed_and_half_open_alone(transitions, verdicts):
    b = CircuitBreaker(on_change=transitions)
    if verdicts:
        run(b, verdicts[:-1])
        assert b.allow(T0 + 10.0)
    before = (b.state, b.probes_in_flight, list(transitions.seen))
    assert b.probe_now(T0 + 11.0) is False
    assert (b.state, b.probes_in_flight, transitions.seen) == before


# --- HALF_OPEN probes ----------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [pytest.param(n, id=f"limit-{n}") for n in (1, 2, 5)])
def test_half_open_admits_up_to_limit(limit):
    b = tripped(CircuitBreaker(half_open_requests=limit))
    now = b.retry_at
    assert [b.allow(now) for _ in range(limit + 2)] == [True] * limit + [False, False]
    assert b.probes_in_flight == limit
    assert not b.available(now)
    b.release(now)
    assert b.available(now) and b.allow(now) and not b.allow(now)


def test_release_frees_probe_slot_and_never_goes_negative():
    b = tripped(CircuitBreaker())
    assert b.allow(b.retry_at)
    b.release(b.retry_at)
    b.release(b.retry_at)
    assert b.probes_in_flight == 0 and b.state is HALF_OPEN
    assert b.allow(b.retry_at) and not b.allow(b.retry_at)


def test_probe_success_closes_and_starts_afresh(transitions):
    b = tripped(CircuitBreaker(half_open_requests=3, on_change=transitions))
    now = b.retry_at
    assert b.allow(now) and b.allow(now)
    b.record_success(now + 0.5)
    assert b.state is CLOSED and b.retry_at is None and b.probes_in_flight == 0
    assert b.consecutive_failures == 0 and b.counts.total(now, 1) == 0
    assert b.last_transition_at == now + 0.5
    run(b, "FFFF", now + 1)  # a fresh streak: one short of the threshold
    assert b.state is CLOSED
    assert transitions.seen[1:] == [
        ("open", "half_open", "reset timeout elapsed"),
        ("half_open", "closed", "probe succeeded"),
    ]


def test_probe_failure_reopens_and_restarts_timeout(transitions):
    b = tripped(CircuitBreaker(on_change=transitions))
    assert b.allow(T0 + 12)
    b.record_failure(T0 + 13)
    assert b.state is OPEN and b.retry_at == T0 + 23 and b.opened_total == 2
    assert not b.allow(T0 + 22.9) and b.allow(T0 + 23)
    assert transitions.seen == [
        ("closed", "open", "5 consecutive failures"),
        ("open", "half_open", "reset timeout elapsed"),
        ("half_open", "open", "probe failed"),
        ("open", "half_open", "reset timeout elapsed"),
    ]


def test_verdicts_while_open_change_nothing():
    b = tripped(CircuitBreaker())
    b.record_success(T0 + 1)
    b.record_failure(T0 + 2)
    b.release(T0 + 3)
    assert b.state is OPEN and b.retry_at == T0 + 10


@pytest.mark.parametrize("verdict", ["record_success", "record_failure"])
def test_straggler_in_half_open_without_probe_is_ignored(verdict):
    b = tripped(CircuitBreaker())
    b.allow(b.retry_at)
    b.release(b.retry_at)  # HALF_OPEN, no probe in flight
    getattr(b, verdict)(b.retry_at + 1)
    assert b.state is HALF_OPEN


def test_release_in_closed_is_a_no_op():
    b = CircuitBreaker()
    b.allow(T0)
    b.release(T0)
    assert b.state is CLOSED and b.probes_in_flight == 0 and b.counts.total(T0, 0) == 0


def test_driven_by_a_clock(clock, transitions):
    """The proxy's way: one clock read per call, a timer at retry_at."""
    b = CircuitBreaker(failure_threshold=2, failure_ratio=0.0, reset_timeout=5.0, on_change=transitions)
    for _ in range(2):
        assert b.allow(clock())
        clock.advance(0.1)
        b.record_failure(clock())
    assert b.state is OPEN and b.retry_at == pytest.approx(clock() + 5.0)
    clock.advance(4.9)
    assert not b.available(clock()) and not b.allow(clock())
    clock.now = b.retry_at  # the timer fires
    assert b.available(clock()) and b.allow(clock())
    clock.advance(0.05)
    b.record_success(clock())
    assert b.state is CLOSED and b.last_transition_at == clock()
    assert [new for _, new, _ in transitions.seen] == ["open", "half_open", "closed"]


def test_full_cycle_reasons(transitions):
    b = CircuitBreaker(failure_threshold=3, failure_ratio=0.0, reset_timeout=5.0, on_change=transitions)
    run(b, "FFF")
    b.allow(T0 + 5)
    b.record_failure(T0 + 5)
    b.allow(T0 + 10)
    b.record_success(T0 + 10)
    assert transitions.seen == [
        ("closed", "open", "3 consecutive failures"),
        ("open", "half_open", "reset timeout elapsed"),
        ("half_open", "open", "probe failed"),
        ("open", "half_open", "reset timeout elapsed"),
        ("half_open", "closed", "probe succeeded"),
    ]


# --- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"failure_threshold": -1}, r"failure_threshold must be >= 0 \(got -1\)", id="threshold"),
        pytest.param({"failure_ratio": 1.5}, r"failure_ratio must be between 0 and 1 \(got 1.5\)", id="ratio"),
        pytest.param({"min_requests": 0}, r"min_requests must be >= 1 \(got 0\)", id="min-requests"),
        pytest.param({"reset_timeout": -1.0}, r"reset_timeout must be >= 0 seconds \(got -1.0\)", id="reset"),
        pytest.param({"half_open_requests": 0}, r"half_open_requests must be >= 1 \(got 0\)", id="probes"),
        pytest.param({"window": 0.0}, r"window must be > 0 seconds \(got 0.0\)", id="window"),
    ],
)
def test_invalid_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)


# --- property: probe limit -----------------------------------------------------------------------

ops = st.lists(
    st.tuples(st.sampled_from(["allow", "success", "failure", "release", "tick"]), st.floats(0.0, 4.0)),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(1, 4), threshold=st.integers(1, 4), steps=ops)
def test_never_more_probes_than_allowed(limit, threshold, steps):
    """Whatever the order of calls, HALF_OPEN never has more than half_open_requests probes out."""
    b = CircuitBreaker(failure_threshold=threshold, reset_timeout=3.0, half_open_requests=limit)
    now = T0
    held: list[int] = []  # one entry per admitted request the test still owes a verdict for
    episode = 0  # bumps every time the breaker enters HALF_OPEN
    probes_out = 0  # admitted during the current HALF_OPEN episode, not yet answered
    for op, dt in steps:
        before = b.state
        if op == "tick":
            now += dt
        elif op == "allow":
            admitted = b.allow(now)
            if b.state is HALF_OPEN and before is not HALF_OPEN:
                episode += 1
                probes_out = 0
            if admitted:
                held.append((episode if b.state is HALF_OPEN else -1, b.episode))
                probes_out += b.state is HALF_OPEN
        elif held:
            tag, admitted_in = held.pop(0)
            if tag == episode and b.state is HALF_OPEN:
                probes_out -= 1
            if op == "release":  # the end of a request without a verdict: its own episode's slot only
                b.release(now, admitted_in)
            else:
                {"success": b.record_success, "failure": b.record_failure}[op](now)
        if b.state is HALF_OPEN:
            assert b.probes_in_flight == probes_out <= limit
        else:
            assert b.probes_in_flight == 0
        if b.state is OPEN:
            assert b.available(now) is (now >= b.retry_at)
        else:
            assert b.available(now) is (b.state is CLOSED or b.probes_in_flight < limit)


def test_a_request_admitted_before_half_open_frees_no_probe_slot_when_it_ends():
    # Found by test_never_more_probes_than_allowed: a CLOSED-era request that ends without a
    # verdict during HALF_OPEN must not hand its (non-existent) probe slot to a second probe.
    b = CircuitBreaker(failure_threshold=1, reset_timeout=3.0, half_open_requests=1)
    assert b.allow(T0)
    old = b.episode
    b.record_failure(T0)                    # another request trips it: OPEN
    assert b.allow(T0 + 3.0) and b.state is HALF_OPEN and b.probes_in_flight == 1
    b.release(T0 + 3.0, old)                # the CLOSED-era request's client leaves
    assert b.probes_in_flight == 1 and not b.allow(T0 + 3.0)
    b.release(T0 + 3.0, b.episode)          # the probe's own client leaves: its slot frees
    assert b.probes_in_flight == 0
