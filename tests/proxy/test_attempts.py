"""Attempts, the retry bookkeeping of one exchange: the body kept for a replay up to max_body
(then none of it), and the retry timer, scheduled on the loop it is given and cancelled once."""
from __future__ import annotations

import pytest

from fulcrum.proxy.attempts import Attempts


class FakeLoop:
    """Just ``call_later``: records the delay and callback; handles record cancellation."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, object]] = []
        self.handles: list[FakeHandle] = []

    def call_later(self, delay: float, callback) -> "FakeHandle":
        self.scheduled.append((delay, callback))
        handle = FakeHandle()
        self.handles.append(handle)
        return handle


class FakeHandle:
    def __init__(self) -> None:
        self.cancels = 0

    def cancel(self) -> None:
        self.cancels += 1


def test_a_fresh_attempts_has_tried_nothing():
    attempts = Attempts(started_at=5.0, max_body=10, keeps_body=True)
    assert (attempts.tried, attempts.replay, attempts.replay_bytes) == ((), [], 0)
    assert (attempts.started_at, attempts.timer, attempts.reconnected) == (5.0, None, False)


@pytest.mark.parametrize("max_body, reads, replay", [
    pytest.param(10, [[b"hello"], [b"world"]], [b"hello", b"world"], id="exactly-max_body"),
    pytest.param(10, [[b"he", b"llo"]], [b"he", b"llo"], id="several-chunks-at-once"),
    pytest.param(10, [[b"hello"], [b"world!"]], None, id="one-byte-over"),
    pytest.param(10, [[b"hello world"], [b"more"]], None, id="over-then-more"),
    pytest.param(0, [[b""]], [b""], id="empty-chunk-within-zero"),
    pytest.param(0, [[b"x"]], None, id="anything-over-zero"),
])
def test_the_body_is_kept_until_it_outgrows_max_body(max_body, reads, replay):
    attempts = Attempts(0.0, max_body, keeps_body=True)
    for chunks in reads:
        attempts.keep(chunks)
    assert attempts.replay == replay


def test_a_request_without_a_body_to_keep_keeps_nothing():
    attempts = Attempts(0.0, 1000, keeps_body=False)
    attempts.keep([b"hello"])
    assert attempts.replay is None and attempts.replay_bytes == 0


def test_the_retry_timer_is_scheduled_and_cancelled_once():
    loop, fired = FakeLoop(), []
    attempts = Attempts(0.0, 0, keeps_body=False)
    attempts.schedule(loop, 0.025, lambda: fired.append(True))
    (delay, callback), = loop.scheduled
    assert delay == 0.025 and attempts.timer is loop.handles[0]
    callback()
    assert fired == [True]
    attempts.cancel()
    attempts.cancel()
    assert attempts.timer is None and loop.handles[0].cancels == 1
