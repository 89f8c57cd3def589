"""proxy/clock: the data plane's clock is time.monotonic's clock, in either core."""
from __future__ import annotations

import time

from fulcrum.proxy import clock
from tests.support.cores import expected_core


def test_the_run_uses_the_core_it_asked_for():
    assert (clock.monotonic is time.monotonic) == (expected_core() == "pure-python")


def test_it_reads_the_clock_time_monotonic_reads():
    for _ in range(1000):
        before = time.monotonic()
        now = clock.monotonic()
        after = time.monotonic()
        assert before <= now <= after


def test_it_never_goes_back():
    last = clock.monotonic()
    for _ in range(10000):
        now = clock.monotonic()
        assert now >= last
        last = now
