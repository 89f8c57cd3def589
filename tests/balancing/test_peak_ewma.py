# Peak-EWMA P2C: cost = latency estimate x (in_flight + 1) / weight at the injected
# clock's time; traffic leaves a slow backend at once and comes back once it is fast.
from __future__ import annotations

import heapq
import random
from collections import Counter

import pytest

from fulcrum.balancing.peak_ewma import PeakEwmaP2C


@pytest.mark.parametrize(
    ("weights", "latencies", "in_flight", "expected"),
    [
        pytest.param([1, 1], [0.5, 0.01], [0, 0], "b1", id="faster-wins"),
        pytest.param([1, 1], [0.01, 0.02], [3, 0], "b1", id="queue-counts"),
        pytest.param([1, 1], [0.01, 0.02], [0, 0], "b0", id="idle-faster-wins"),
        pytest.param([1, 4], [0.01, 0.01], [0, 2], "b1", id="weight-divides-cost"),
    ],
)
def test_lower_cost_wins(backends_factory, request_, clock, weights, latencies, in_flight, expected):
    backends = backends_factory(weights)
    for b, rtt, n in zip(backends, latencies, in_flight):
        b.latency.observe(rtt, clock.now)
        b.in_flight = n
    pe = PeakEwmaP2C(backends, rng=random.Random(1), clock=clock)
    assert {pe.pick(request_).id for _ in range(50)} == {expected}


def test_single_slow_sample_moves_traffic_at_once(backends_factory, request_, clock):
    backends = backends_factory(3)
    for b in backends:
        b.latency.observe(0.01, clock.now)
    clock.advance(1.0)
    backends[0].latency.observe(1.0, clock.now)
    pe = PeakEwmaP2C(backends, rng=random.Random(2), clock=clock)
    assert "b0" not in {pe.pick(request_).id for _ in range(300)}


def test_uses_injected_clock_for_decay(backends_factory, request_, clock):
    # b0 was slow long ago; b1 was measured just now. Decay makes b0 look cheap.
    backends = backends_factory(2)
    backends[0].latency.observe(0.5, clock.now)
    clock.advance(100.0)
    backends[1].latency.observe(0.01, clock.now)
    pe = PeakEwmaP2C(backends, rng=random.Random(3), clock=clock)
    assert pe.pick(request_).id == "b0"


def simulate(backends, strategy, clock, service: list[float], arrivals: int, gap: float) -> list[str]:
    """Requests arrive every ``gap`` s; backend i answers in ``service[i]`` s.
    Completions update in_flight and feed latency.observe. Returns picked ids."""
    pending: list[tuple[float, int, int]] = []  # (finish time, seq, backend index)
    index = {id(b): i for i, b in enumerate(backends)}
    picked = []
    for seq in range(arrivals):
        clock.advance(gap)
        while pending and pending[0][0] <= clock.now:
            done, _, i = heapq.heappop(pending)
            backends[i].in_flight -= 1
            backends[i].latency.observe(service[i], done)
        b = strategy.pick(None)
        b.in_flight += 1
        i = index[id(b)]
        heapq.heappush(pending, (clock.now + service[i], seq, i))
        picked.append(b.id)
    return picked


def test_shifts_traffic_away_from_slow_backend(backends_factory, clock):
    backends = backends_factory(4)
    pe = PeakEwmaP2C(backends, rng=random.Random(4), clock=clock)
    service = [0.2, 0.01, 0.01, 0.01]
    picked = simulate(backends, pe, clock, service, arrivals=4000, gap=0.005)
    counts = Counter(picked)
    assert counts["b0"] / len(picked) < 0.03
    # Recovery: once b0 is fast again its idle estimate decays, it is retried,
    # re-measured and gets its share back.
    service[0] = 0.01
    picked = simulate(backends, pe, clock, service, arrivals=12000, gap=0.005)
    tail = Counter(picked[-2000:])
    assert tail["b0"] / 2000 == pytest.approx(0.25, abs=0.08)


def test_new_backend_is_not_swamped(backends_factory, request_, clock):
    # b2 has no samples yet (default 30 ms) while b0 and b1 answer in 20 ms:
    # it gets some traffic, not all of it.
    backends = backends_factory(3)
    for b in backends[:2]:
        b.latency.observe(0.02, clock.now)
    pe = PeakEwmaP2C(backends, rng=random.Random(5), clock=clock)
    picked = Counter()
    for _ in range(300):
        b = pe.pick(request_)
        b.in_flight += 1
        picked[b.id] += 1
    assert 0 < picked["b2"] < 100


def test_none_when_none_available(backends_factory, request_, clock):
    backends = backends_factory(3)
    for b in backends:
        b.available = False
    assert PeakEwmaP2C(backends, clock=clock).pick(request_) is None
    backends[1].available = True
    assert PeakEwmaP2C(backends, clock=clock).pick(request_).id == "b1"


def test_unmeasured_backend_is_tried_not_starved(backends_factory, request_, clock):
    """Two measured fast backends and one never measured: the new one gets traffic."""
    backends = backends_factory(3)
    for b in backends[:2]:
        b.latency.observe(0.001, clock.now)
    pe = PeakEwmaP2C(backends, rng=random.Random(3), clock=clock)
    assert "b2" in {pe.pick(request_).id for _ in range(20)}


def test_unmeasured_backend_with_pending_requests_is_not_swamped(backends_factory, request_, clock):
    backends = backends_factory(2)
    backends[0].latency.observe(0.001, clock.now)
    backends[1].in_flight = 3  # three requests out, no answer yet
    pe = PeakEwmaP2C(backends, rng=random.Random(4), clock=clock)
    assert {pe.pick(request_).id for _ in range(50)} == {"b0"}
