# Fakes for strategy tests: a request with a client IP and headers, a settable clock,
# and a factory for backends with given weights.
from __future__ import annotations

import random

import pytest

from fulcrum.balancing.backend import Backend


class FakeRequest:
    """What a strategy sees of a request: ``client_ip`` and ``header(name)``."""

    def __init__(self, client_ip: str = "192.0.2.1", headers: dict[bytes, bytes] | None = None) -> None:
        self.client_ip = client_ip
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}

    def header(self, name: bytes) -> bytes | None:
        return self._headers.get(name)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_backends(weights: list[int] | int) -> list[Backend]:
    """Backends b0, b1, ... with the given weights (or n backends of weight 1)."""
    if isinstance(weights, int):
        weights = [1] * weights
    return [Backend(f"http://10.0.0.{i}:8080", weight=w, id=f"b{i}") for i, w in enumerate(weights)]


@pytest.fixture
def request_():
    return FakeRequest()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def rng():
    return random.Random(1234)


# Stateless factories are session-scoped so hypothesis tests may use them too.
@pytest.fixture(scope="session")
def backends_factory():
    return make_backends


@pytest.fixture(scope="session")
def request_factory():
    return FakeRequest


@pytest.fixture(scope="session")
def clock_factory():
    return FakeClock
