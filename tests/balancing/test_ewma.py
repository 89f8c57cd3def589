# PeakEwma arithmetic with explicit times: peaks replace, lower samples blend by
# exp(-elapsed / tau), cost decays with idle time and never changes the estimate.
from __future__ import annotations

import math

import pytest

from fulcrum.balancing.ewma import PeakEwma

E1 = math.exp(-1.0)


@pytest.mark.parametrize(
    ("samples", "value"),
    [
        pytest.param([], 0.030, id="default-before-any-sample"),
        pytest.param([(0.005, 0.0)], 0.005, id="first-sample-replaces-default-even-if-lower"),
        pytest.param([(0.2, 0.0)], 0.2, id="first-sample-replaces-default-when-higher"),
        pytest.param([(0.01, 0.0), (0.05, 1.0)], 0.05, id="peak-replaces-at-once"),
        pytest.param([(0.1, 0.0), (0.02, 10.0)], 0.1 * E1 + 0.02 * (1 - E1), id="lower-blends-by-elapsed"),
        pytest.param([(0.1, 0.0), (0.02, 0.0)], 0.1, id="lower-at-same-instant-has-no-weight"),
        pytest.param([(0.1, 0.0), (0.02, 1000.0)], 0.02, id="lower-after-long-gap-takes-over"),
        pytest.param(
            [(0.1, 0.0), (0.02, 10.0), (0.02, 20.0)],
            (0.1 * E1 + 0.02 * (1 - E1)) * E1 + 0.02 * (1 - E1),
            id="blends-compound",
        ),
        pytest.param([(0.1, 5.0), (0.02, 4.0)], 0.1, id="clock-going-back-counts-as-no-time"),
        pytest.param([(-1.0, 0.0)], 0.0, id="negative-sample-clamped"),
    ],
)
def test_observe(samples, value):
    e = PeakEwma()
    for rtt, now in samples:
        e.observe(rtt, now)
    assert e.value == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("samples", "now", "cost"),
    [
        pytest.param([(0.1, 0.0)], 0.0, 0.1, id="no-idle-time"),
        pytest.param([(0.1, 0.0)], 10.0, 0.1 * E1, id="decays-over-tau"),
        pytest.param([(0.1, 0.0)], 30.0, 0.1 * math.exp(-3), id="decays-over-three-tau"),
        pytest.param([(0.1, 5.0)], 4.0, 0.1, id="earlier-now-no-decay"),
    ],
)
def test_cost(samples, now, cost):
    e = PeakEwma()
    for rtt, t in samples:
        e.observe(rtt, t)
    before = e.value
    assert e.cost(now) == pytest.approx(cost, rel=1e-12)
    assert e.value == before  # reading the cost does not change the estimate


def test_default_decays_from_first_cost_read():
    e = PeakEwma(default_rtt=0.05, tau=2.0)
    assert e.cost(100.0) == 0.05
    assert e.cost(102.0) == pytest.approx(0.05 * E1)
    e.observe(0.001, 103.0)
    assert e.value == 0.001


def test_custom_tau_blends_faster():
    e = PeakEwma(tau=1.0)
    e.observe(1.0, 0.0)
    e.observe(0.0, 1.0)
    assert e.value == pytest.approx(E1)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"tau": 0.0}, id="zero-tau"),
        pytest.param({"tau": -1.0}, id="negative-tau"),
        pytest.param({"default_rtt": -0.1}, id="negative-default"),
    ],
)
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        PeakEwma(**kwargs)
