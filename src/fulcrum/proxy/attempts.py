"""The retry bookkeeping of one exchange: which backends were tried, the request body kept
for a replay, the timer of the next try and the one free retry of a reused connection.
Created only for a pool with retries; the decision itself is resilience/retry_policy.py's."""
from __future__ import annotations

import asyncio


class Attempts:
    """Tries of one request after the first: state only, no I/O but the retry timer."""

    __slots__ = ("tried", "replay", "replay_bytes", "max_body", "timer", "started_at", "reconnected")

    def __init__(self, started_at: float, max_body: int, keeps_body: bool) -> None:
        self.tried: tuple = ()                  # the backends tried so far, in order
        # The request body kept for a replay on another backend; None once it outgrew max_body.
        self.replay: list[bytes] | None = [] if keeps_body else None
        self.replay_bytes = 0
        self.max_body = max_body
        self.timer: asyncio.TimerHandle | None = None
        self.started_at = started_at            # retry.deadline counts from here
        self.reconnected = False                # a reused connection's close was retried once

    def keep(self, chunks) -> None:
        """Keep body chunks for a replay, until they outgrow ``max_body`` (then none are)."""
        replay = self.replay
        if replay is None:
            return
        for chunk in chunks:
            self.replay_bytes += len(chunk)
            replay.append(chunk)
        if self.replay_bytes > self.max_body:
            self.replay = None

    def schedule(self, loop: asyncio.AbstractEventLoop, delay: float, callback) -> None:
        self.timer = loop.call_later(delay, callback)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
