# The retry decision as a pure function of the failed try: rules are checked in a fixed order
# and the retry budget is consulted last, so a retry refused for any other reason costs no budget.
from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Iterable

from fulcrum.resilience.backoff import full_jitter_backoff
from fulcrum.resilience.retry_budget import RetryBudget

# RFC 9110 9.2.2. Method names are case-sensitive: b"get" is not GET.
IDEMPOTENT: frozenset[bytes] = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


def is_idempotent(method: bytes, has_idempotency_key: bool) -> bool:
    """May this request be sent twice? Idempotent methods, or any method with an Idempotency-Key."""
    return has_idempotency_key or method in IDEMPOTENT


class Failure(str, enum.Enum):
    """How a try failed, which decides whether the backend may have acted on it."""

    CONNECT_FAILED = "connect failed"  # provably never reached a backend
    RESET_BEFORE_RESPONSE = "connection reset before response"  # sent; no response byte came back
    TIMEOUT = "timed out"  # sent; no response within the try timeout
    STATUS = "status"  # a complete response with a status in on_status


@dataclass(frozen=True, slots=True)
class Decision:
    """``retry`` after ``delay`` seconds, or not; ``reason`` says why, for logs."""

    retry: bool
    reason: str
    delay: float = 0.0


class RetryPolicy:
    """Decides whether a failed try is retried, and after how long.

    The rules, in the order ``decide`` checks them (the first that refuses
    names itself in ``Decision.reason``):

    1. at most ``attempts`` tries in all (the first try counts);
    2. a STATUS failure only for statuses in ``on_status``;
    3. never once the request body has been streamed (larger than
       ``max_body``, so the proxy kept no copy to replay);
    4. a non-idempotent request (see ``is_idempotent``) only on
       CONNECT_FAILED, the one failure where the backend provably saw nothing;
    5. the backoff delay (full jitter, ``backoff_base * 2**n`` capped at
       ``backoff_max``) must end before the overall ``deadline``, counted
       from the request's start;
    6. the retry budget must grant it (last, so refusals above cost nothing).
    """

    __slots__ = ("attempts", "on_status", "backoff_base", "backoff_max", "per_try_timeout", "deadline", "max_body")

    def __init__(
        self,
        attempts: int = 3,
        on_status: Iterable[int] = frozenset({502, 503, 504}),
        backoff_base: float = 0.025,
        backoff_max: float = 1.0,
        per_try_timeout: float | None = None,
        deadline: float | None = None,
        max_body: int = 65536,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1 (got {attempts})")
        on_status = frozenset(on_status)
        bad = sorted(s for s in on_status if not 100 <= s <= 599)
        if bad:
            raise ValueError(f"on_status must hold HTTP statuses 100..599 (got {bad})")
        if backoff_base < 0:
            raise ValueError(f"backoff_base must be >= 0 seconds (got {backoff_base})")
        if backoff_max < backoff_base:
            raise ValueError(f"backoff_max must be >= backoff_base ({backoff_base}) (got {backoff_max})")
        if per_try_timeout is not None and per_try_timeout <= 0:
            raise ValueError(f"per_try_timeout must be > 0 seconds or None (got {per_try_timeout})")
        if deadline is not None and deadline <= 0:
            raise ValueError(f"deadline must be > 0 seconds or None (got {deadline})")
        if max_body < 0:
            raise ValueError(f"max_body must be >= 0 bytes (got {max_body})")
        self.attempts = attempts
        self.on_status = on_status
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.per_try_timeout = per_try_timeout
        self.deadline = deadline
        self.max_body = max_body

    def try_timeout(self, now: float, started_at: float) -> float | None:
        """Seconds the next try may take: ``per_try_timeout``, shortened to what the deadline leaves."""
        timeout = self.per_try_timeout
        if self.deadline is None:
            return timeout
        left = max(0.0, started_at + self.deadline - now)
        return left if timeout is None or left < timeout else timeout

    def decide(
        self,
        method: bytes,
        has_idempotency_key: bool,
        tries_so_far: int,
        failure: Failure,
        body_replayable: bool,
        now: float,
        started_at: float,
        budget: RetryBudget | None,
        rng: random.Random,
        status: int | None = None,
    ) -> Decision:
        """Retry after the ``tries_so_far``-th try failed with ``failure``? (``status`` for STATUS.)"""
        if tries_so_far < 1:
            raise ValueError(f"tries_so_far must be >= 1: decide() follows a failed try (got {tries_so_far})")
        if tries_so_far >= self.attempts:
            return Decision(False, f"attempts exhausted ({tries_so_far} of {self.attempts})")
        if failure is Failure.STATUS:
            if status is None:
                raise ValueError("a STATUS failure needs the response status (got None)")
            if status not in self.on_status:
                return Decision(False, f"status {status} is not retryable")
            why = f"status {status}"
        else:
            why = failure.value
        if not body_replayable:
            return Decision(False, f"request body too large to replay (over {self.max_body} bytes)")
        if failure is not Failure.CONNECT_FAILED and not is_idempotent(method, has_idempotency_key):
            name = method.decode("latin-1")
            return Decision(False, f"{name} is not idempotent and may have reached the backend")
        delay = full_jitter_backoff(tries_so_far - 1, self.backoff_base, self.backoff_max, rng)
        if self.deadline is not None and now + delay >= started_at + self.deadline:
            return Decision(
                False,
                f"deadline would pass ({now - started_at:.3f}s of {self.deadline:g}s used,"
                f" backoff {delay:.3f}s)",
                delay,
            )
        if budget is not None and not budget.try_acquire(now):
            return Decision(False, "retry budget exhausted", delay)
        return Decision(True, f"{why}: try {tries_so_far + 1} of {self.attempts} after {delay:.3f}s", delay)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(attempts={self.attempts}, on_status={sorted(self.on_status)},"
            f" per_try_timeout={self.per_try_timeout}, deadline={self.deadline})"
        )
