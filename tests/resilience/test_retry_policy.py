# RetryPolicy.decide: one table row per rule (attempts, status list, body replay, idempotency,
# deadline, budget) plus the order they are checked in; is_idempotent; try_timeout; config errors.
from __future__ import annotations

import random

import pytest

from fulcrum.resilience.retry_budget import RetryBudget
from fulcrum.resilience.retry_policy import IDEMPOTENT, Decision, Failure, RetryPolicy, is_idempotent

from .conftest import FixedRandom

T0 = 1000.0
CONNECT = Failure.CONNECT_FAILED
RESET = Failure.RESET_BEFORE_RESPONSE
TIMEOUT = Failure.TIMEOUT
STATUS = Failure.STATUS


def decide(policy: RetryPolicy | None = None, budget: RetryBudget | None = None, **overrides) -> Decision:
    args = {
        "method": b"GET",
        "has_idempotency_key": False,
        "tries_so_far": 1,
        "failure": CONNECT,
        "body_replayable": True,
        "now": T0 + 0.1,
        "started_at": T0,
        "budget": budget if budget is not None else RetryBudget(),
        "rng": FixedRandom(0.5),
    }
    args.update(overrides)
    return (policy or RetryPolicy()).decide(**args)


@pytest.mark.parametrize(
    ("overrides", "retry", "reason"),
    [
        # attempts
        pytest.param({}, True, "connect failed: try 2 of 3 after 0.013s", id="first-failure-retried"),
        pytest.param({"tries_so_far": 2}, True, "connect failed: try 3 of 3 after 0.025s", id="second-failure-retried"),
        pytest.param({"tries_so_far": 3}, False, "attempts exhausted (3 of 3)", id="attempts-exhausted"),
        pytest.param({"tries_so_far": 7}, False, "attempts exhausted (7 of 3)", id="beyond-attempts"),
        # failure kinds for an idempotent method
        pytest.param({"failure": RESET}, True, "connection reset before response: try 2 of 3 after 0.013s",
                     id="get-reset-retried"),
        pytest.param({"failure": TIMEOUT}, True, "timed out: try 2 of 3 after 0.013s", id="get-timeout-retried"),
        pytest.param({"failure": STATUS, "status": 503}, True, "status 503: try 2 of 3 after 0.013s",
                     id="retryable-status"),
        pytest.param({"failure": STATUS, "status": 500}, False, "status 500 is not retryable",
                     id="status-not-in-list"),
        pytest.param({"failure": STATUS, "status": 429}, False, "status 429 is not retryable", id="429-not-default"),
        # idempotency
        pytest.param({"method": b"POST"}, True, "connect failed: try 2 of 3 after 0.013s", id="post-connect-failed"),
        pytest.param({"method": b"POST", "failure": RESET}, False,
                     "POST is not idempotent and may have reached the backend", id="post-reset"),
        pytest.param({"method": b"POST", "failure": TIMEOUT}, False,
                     "POST is not idempotent and may have reached the backend", id="post-timeout"),
        pytest.param({"method": b"PATCH", "failure": STATUS, "status": 502}, False,
                     "PATCH is not idempotent and may have reached the backend", id="patch-status"),
        pytest.param({"method": b"POST", "failure": TIMEOUT, "has_idempotency_key": True}, True,
                     "timed out: try 2 of 3 after 0.013s", id="post-with-idempotency-key"),
        pytest.param({"method": b"PUT", "failure": RESET}, True,
                     "connection reset before response: try 2 of 3 after 0.013s", id="put-reset"),
        pytest.param({"method": b"get", "failure": RESET}, False,
                     "get is not idempotent and may have reached the backend", id="methods-are-case-sensitive"),
        # body
        pytest.param({"body_replayable": False}, False, "request body too large to replay (over 65536 bytes)",
                     id="body-streamed"),
        pytest.param({"body_replayable": False, "method": b"POST"}, False,
                     "request body too large to replay (over 65536 bytes)", id="body-streamed-even-connect-failed"),
        # deadline: backoff is 0.0125 s (half of 25 ms) on the first retry
        pytest.param({"policy": RetryPolicy(deadline=1.0), "now": T0 + 0.98}, True,
                     "connect failed: try 2 of 3 after 0.013s", id="deadline-leaves-room"),
        pytest.param({"policy": RetryPolicy(deadline=1.0), "now": T0 + 0.99}, False,
                     "deadline would pass (0.990s of 1s used, backoff 0.013s)", id="backoff-ends-past-deadline"),
        pytest.param({"policy": RetryPolicy(deadline=1.0), "now": T0 + 2.0}, False,
                     "deadline would pass (2.000s of 1s used, backoff 0.013s)", id="deadline-already-past"),
        # budget
        pytest.param({"budget": RetryBudget(ratio=0.0, min_per_second=0.0)}, False, "retry budget exhausted",
                     id="budget-exhausted"),
        # order: the first failing rule is named
        pytest.param({"tries_so_far": 3, "method": b"POST", "failure": RESET}, False,
                     "attempts exhausted (3 of 3)", id="attempts-before-idempotency"),
        pytest.param({"failure": STATUS, "status": 500, "body_replayable": False}, False,
                     "status 500 is not retryable", id="status-before-body"),
        pytest.param({"body_replayable": False, "method": b"POST", "failure": RESET}, False,
                     "request body too large to replay (over 65536 bytes)", id="body-before-idempotency"),
        pytest.param({"method": b"POST", "failure": RESET, "budget": RetryBudget(ratio=0.0, min_per_second=0.0)},
                     False, "POST is not idempotent and may have reached the backend", id="idempotency-before-budget"),
        pytest.param({"policy": RetryPolicy(deadline=1.0), "now": T0 + 2.0,
                      "budget": RetryBudget(ratio=0.0, min_per_second=0.0)},
                     False, "deadline would pass (2.000s of 1s used, backoff 0.013s)", id="deadline-before-budget"),
        pytest.param({"policy": RetryPolicy(attempts=1)}, False, "attempts exhausted (1 of 1)", id="retries-off"),
        pytest.param({"policy": RetryPolicy(on_status={500}), "failure": STATUS, "status": 500}, True,
                     "status 500: try 2 of 3 after 0.013s", id="custom-status-list"),
    ],
)
def test_decide(overrides, retry, reason):
    overrides = dict(overrides)
    policy = overrides.pop("policy", None)
    d = decide(policy, **overrides)
    assert (d.retry, d.reason) == (retry, reason)


@pytest.mark.parametrize(
    ("tries", "delay"),
    [
        pytest.param(1, 0.0125, id="first-retry-base"),
        pytest.param(2, 0.025, id="second-retry-doubles"),
        pytest.param(9, 0.5, id="capped-at-backoff-max"),
    ],
)
def test_delay_follows_full_jitter(tries, delay):
    d = decide(RetryPolicy(attempts=10), tries_so_far=tries)
    assert d.retry and d.delay == pytest.approx(delay)


def test_only_a_granted_retry_spends_budget():
    budget = RetryBudget(ratio=0.0, min_per_second=0.1)  # one retry per 10 s
    refusals = [
        {"tries_so_far": 3},
        {"failure": STATUS, "status": 404},
        {"body_replayable": False},
        {"method": b"POST", "failure": TIMEOUT},
        {"policy": RetryPolicy(deadline=0.05)},
    ]
    for overrides in refusals:
        policy = overrides.pop("policy", None)
        assert not decide(policy, budget, **overrides).retry, overrides
    assert budget.granted_total == 0 and budget.refused_total == 0
    assert decide(budget=budget).retry and budget.granted_total == 1
    d = decide(budget=budget)
    assert (d.retry, d.reason) == (False, "retry budget exhausted") and budget.refused_total == 1


def test_backoff_ending_exactly_at_deadline_is_refused():
    d = decide(RetryPolicy(deadline=1.0), now=T0 + 0.5, rng=FixedRandom(0.0), started_at=T0 - 0.5)
    assert (d.retry, d.delay) == (False, 0.0) and d.reason.startswith("deadline would pass")


def test_without_budget():
    assert decide(budget=None).retry is True


def test_seeded_rng_gives_repeatable_delays():
    a = [decide(tries_so_far=2, rng=random.Random(5)).delay for _ in range(3)]
    assert a[0] == a[1] == a[2] and 0.0 <= a[0] < 0.05


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"tries_so_far": 0}, r"tries_so_far must be >= 1: .* \(got 0\)", id="no-try-yet"),
        pytest.param({"failure": STATUS}, r"a STATUS failure needs the response status \(got None\)",
                     id="status-missing"),
    ],
)
def test_decide_misuse(overrides, message):
    with pytest.raises(ValueError, match=message):
        decide(**overrides)


@pytest.mark.parametrize(
    ("method", "key", "expected"),
    [
        *[pytest.param(m, False, True, id=m.decode()) for m in sorted(IDEMPOTENT)],
        pytest.param(b"POST", False, False, id="POST"),
        pytest.param(b"PATCH", False, False, id="PATCH"),
        pytest.param(b"CONNECT", False, False, id="CONNECT"),
        pytest.param(b"POST", True, True, id="POST-with-key"),
        pytest.param(b"get", False, False, id="lowercase-is-another-method"),
    ],
)
def test_is_idempotent(method, key, expected):
    assert is_idempotent(method, key) is expected


@pytest.mark.parametrize(
    ("per_try", "deadline", "now", "timeout"),
    [
        pytest.param(None, None, T0 + 1, None, id="no-limits"),
        pytest.param(2.0, None, T0 + 1, 2.0, id="per-try-only"),
        pytest.param(None, 5.0, T0 + 1, 4.0, id="deadline-only"),
        pytest.param(2.0, 5.0, T0 + 1, 2.0, id="per-try-shorter"),
        pytest.param(2.0, 5.0, T0 + 4, 1.0, id="deadline-shorter"),
        pytest.param(2.0, 5.0, T0 + 9, 0.0, id="deadline-past"),
    ],
)
def test_try_timeout(per_try, deadline, now, timeout):
    policy = RetryPolicy(per_try_timeout=per_try, deadline=deadline)
    assert policy.try_timeout(now, T0) == (pytest.approx(timeout) if timeout is not None else None)


def test_defaults():
    p = RetryPolicy()
    assert (p.attempts, p.on_status, p.backoff_base, p.backoff_max) == (3, frozenset({502, 503, 504}), 0.025, 1.0)
    assert (p.per_try_timeout, p.deadline, p.max_body) == (None, None, 65536)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"attempts": 0}, r"attempts must be >= 1 \(got 0\)", id="attempts"),
        pytest.param({"on_status": [503, 700, 42]}, r"statuses 100..599 \(got \[42, 700\]\)", id="status"),
        pytest.param({"backoff_base": -1.0}, r"backoff_base must be >= 0 seconds \(got -1.0\)", id="base"),
        pytest.param({"backoff_max": 0.01}, r"backoff_max must be >= backoff_base \(0.025\) \(got 0.01\)", id="max"),
        pytest.param({"per_try_timeout": 0.0}, r"per_try_timeout must be > 0 seconds or None \(got 0.0\)",
                     id="per-try"),
        pytest.param({"deadline": -2.0}, r"deadline must be > 0 seconds or None \(got -2.0\)", id="deadline"),
        pytest.param({"max_body": -1}, r"max_body must be >= 0 bytes \(got -1\)", id="max-body"),
    ],
)
def test_invalid_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)
