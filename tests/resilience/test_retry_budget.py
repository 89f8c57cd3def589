# RetryBudget: retries within ratio * requests + min_per_second * window over a sliding window;
# refused retries are not counted; status readings (current ratio, retries available).
from __future__ import annotations

import pytest

from fulcrum.resilience.retry_budget import RetryBudget

T0 = 1000.0


def grants(budget: RetryBudget, tries: int, now: float = T0) -> int:
    return sum(budget.try_acquire(now) for _ in range(tries))


def test_defaults():
    b = RetryBudget()
    assert (b.ratio, b.window, b.min_per_second, b.floor) == (0.2, 10.0, 3.0, 30.0)


@pytest.mark.parametrize(
    ("kwargs", "requests", "granted"),
    [
        pytest.param({}, 0, 30, id="floor-alone-without-traffic"),
        pytest.param({}, 100, 50, id="ratio-plus-floor"),
        pytest.param({"min_per_second": 0.0}, 100, 20, id="ratio-alone"),
        pytest.param({"min_per_second": 0.0}, 4, 0, id="ratio-rounds-down"),
        pytest.param({"min_per_second": 0.0}, 5, 1, id="ratio-exactly-one"),
        pytest.param({"min_per_second": 0.0, "ratio": 0.0}, 1000, 0, id="no-budget-at-all"),
        pytest.param({"min_per_second": 0.5, "window": 3.0}, 0, 1, id="fractional-floor-rounds-down"),
        pytest.param({"ratio": 1.0, "min_per_second": 0.0}, 7, 7, id="ratio-one-doubles-load"),
    ],
)
def test_allowance(kwargs, requests, granted):
    b = RetryBudget(**kwargs)
    for _ in range(requests):
        b.record_request(T0)
    assert b.available(T0) == granted
    assert grants(b, granted + 10) == granted
    assert b.available(T0) == 0
    assert (b.granted_total, b.refused_total) == (granted, 10)


def test_refusals_do_not_consume_budget():
    b = RetryBudget(ratio=0.5, min_per_second=0.0)
    for _ in range(4):
        b.record_request(T0)
    assert grants(b, 10) == 2
    b.record_request(T0)
    b.record_request(T0)
    assert grants(b, 10) == 1  # 6 requests allow 3 retries; 2 were already taken


@pytest.mark.parametrize(
    ("gap", "granted"),
    [
        pytest.param(5.0, 0, id="retries-still-in-window"),
        pytest.param(9.99, 0, id="just-before-window-passes"),
        pytest.param(10.0, 3, id="old-retries-slide-out"),
    ],
)
def test_window_slides(gap, granted):
    b = RetryBudget(ratio=0.0, min_per_second=0.3)  # a floor of 3 per 10 s
    assert grants(b, 5) == 3
    assert grants(b, 5, T0 + gap) == granted


def test_requests_slide_out_too():
    b = RetryBudget(ratio=0.5, min_per_second=0.0)
    for _ in range(10):
        b.record_request(T0)
    assert b.available(T0 + 9.5) == 5
    assert b.available(T0 + 10.0) == 0


def test_current_ratio():
    b = RetryBudget()
    assert b.current_ratio(T0) == 0.0
    for _ in range(40):
        b.record_request(T0)
    grants(b, 10)
    assert b.current_ratio(T0 + 1) == pytest.approx(0.25)
    assert b.current_ratio(T0 + 20) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"ratio": -0.1}, r"ratio must be >= 0 \(got -0.1\)", id="ratio"),
        pytest.param({"min_per_second": -1.0}, r"min_per_second must be >= 0 \(got -1.0\)", id="floor"),
        pytest.param({"window": 0.0}, r"window must be > 0 seconds \(got 0.0\)", id="window"),
    ],
)
def test_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryBudget(**kwargs)
