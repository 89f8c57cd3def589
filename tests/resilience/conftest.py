# Fakes for the resilience tests: a clock the test moves by hand, a Random whose draws
# are fixed, and a recorder for circuit-breaker transitions.
from __future__ import annotations

import random

import pytest


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class FixedRandom(random.Random):
    """A Random whose ``random()`` always returns ``value`` (in [0, 1))."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class Transitions:
    """An ``on_change`` callback that keeps every (old, new, reason) it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, old, new, reason: str) -> None:
        self.seen.append((old.value, new.value, reason))


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def transitions():
    return Transitions()
