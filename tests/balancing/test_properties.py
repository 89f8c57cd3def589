# Properties every strategy keeps, over random weights, loads and availability that
# change between picks: never an unavailable backend; None exactly when none is up.
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.balancing.registry import BUILTIN, resolve

OPTIONS = {
    "consistent_hash": [
        pytest.param({"algorithm": "ring", "replicas": 8}, id="consistent_hash-ring"),
        pytest.param({"algorithm": "maglev", "table_size": 101}, id="consistent_hash-maglev"),
    ],
}
CASES = [
    case
    for name in BUILTIN
    for case in (
        [pytest.param(name, p.values[0], id=p.id) for p in OPTIONS[name]]
        if name in OPTIONS
        else [pytest.param(name, None, id=name)]
    )
]

backend_state = st.tuples(st.booleans(), st.integers(1, 5), st.integers(0, 10))  # up, weight, in_flight
rounds = st.lists(st.lists(backend_state, min_size=8, max_size=8), min_size=1, max_size=6)


@pytest.mark.parametrize(("name", "options"), CASES)
@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 8), states=rounds, seed=st.integers(0, 2**16))
def test_never_unavailable_and_none_only_when_all_down(
    backends_factory, request_factory, clock_factory, name, options, n, states, seed
):
    clock = clock_factory()
    backends = backends_factory(n)
    cls = resolve(name)
    strategy = cls(backends, options=options and cls.Options(**options), rng=random.Random(seed), clock=clock)
    for i, state in enumerate(states):
        for b, (up, weight, in_flight) in zip(backends, state):
            b.available, b.weight, b.in_flight = up, weight, in_flight
            b.latency.observe(0.001 * (in_flight + 1), clock.now)
        clock.advance(0.5)
        for k in range(3):
            got = strategy.pick(request_factory(f"10.0.{i}.{k}"))
            if any(b.available for b in backends):
                assert got is not None and got.available and got in backends
            else:
                assert got is None
