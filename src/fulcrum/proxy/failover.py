"""What an exchange does when a try fails: count it against the backend, ask the
retry policy, and either schedule the next try (another backend, after a
backoff) or answer the client (502/504, or cut a response already under way).

A mixin of Exchange, kept apart so the happy path reads on its own.
"""
from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

from fulcrum.proxy.flow_control import CONNECTING
from fulcrum.resilience.retry_policy import IDEMPOTENT, Failure

if TYPE_CHECKING:
    from fulcrum.proxy.upstream import UpstreamConnection


class Failover:
    """Failure handling for Exchange (which holds all the state)."""

    __slots__ = ()

    def upstream_failed(self, conn: "UpstreamConnection", reason: str, nothing_received: bool) -> None:
        self.conn = None
        if (nothing_received and conn.served > 1 and not self.has_body and not self.retried
                and self.method in IDEMPOTENT):
            # A pooled connection the backend closed as we reused it. The request may
            # or may not have been seen; an idempotent one is safe to send once more
            # on a fresh connection (RFC 9110 §9.2.2), anything else gets its 502.
            self.retried = True
            self.connect()
            return
        if not (nothing_received and self._retry(Failure.RESET_BEFORE_RESPONSE, reason)):
            self._answer_failure(502, reason)

    def upstream_invalid(self, conn: "UpstreamConnection", reason: str) -> None:
        self.conn = None
        self._note_failure(reason)
        self._answer_failure(502, reason)

    def upstream_timed_out(self, conn: "UpstreamConnection") -> None:
        self.conn = None
        reason = f"no response within {self._try_timeout():g}s"
        if self.status or not self._retry(Failure.TIMEOUT, reason):
            self._answer_failure(504, reason)

    def connect_failed(self, reason: str) -> None:
        if not self._retry(Failure.CONNECT_FAILED, reason):
            self._answer_failure(502, reason)

    def retry_on_status(self, status: int) -> bool:
        """A 502/503/504 from the backend: a gateway failure, retried when allowed."""
        reason = f"status {status}"
        self._note_failure(reason)
        return self.pool.retry is not None and self._retry(Failure.STATUS, reason, status)

    def _note_failure(self, reason: str) -> None:
        """A gateway failure on the current backend: counted, and told to its pool."""
        backend = self.backend
        backend.failures += 1
        backend.last_error = reason
        self.pool.record(backend, False, monotonic())

    def _retry(self, failure: Failure, reason: str, status: int | None = None) -> bool:
        """Note the failure; schedule the next try when the retry policy allows one."""
        if status is None:
            self._note_failure(reason)
        policy = self.pool.retry
        if policy is None or self.response_started or self.aborted:
            return False
        decision = policy.decide(
            self.method, self.header(b"idempotency-key") is not None, self.tries, failure,
            not self.has_body or self.replay is not None, monotonic(), self.started_at,
            self.pool.budget, self.pool.rng, status,
        )
        if not decision.retry:
            return False
        self.backend.in_flight -= 1
        self.backend = None
        if not self.request_done:
            self.client.gate.pause(CONNECTING)  # hold the body until the next try
        self.retry_timer = self.client.loop.call_later(decision.delay, self.retry_now)
        return True

    def retry_now(self) -> None:
        try:
            self.try_backend()
        except Exception as exc:  # a timer callback: nobody above us would answer the client
            self.internal_error(exc, "retry")

    def _try_timeout(self) -> float:
        """The backend's allowance for this try: timeouts.response, or retry.per_try_timeout,
        cut to what retry.deadline leaves (never below 1 ms, so the timer still fires)."""
        response = self.runtime.settings.response_timeout
        policy = self.pool.retry if self.pool is not None else None
        if policy is None or (policy.per_try_timeout is None and policy.deadline is None):
            return response
        timeout = policy.try_timeout(monotonic(), self.started_at)
        return max(0.001, min(response, timeout if timeout is not None else response))

    def _answer_failure(self, status: int, reason: str, filters: bool = True) -> None:
        if self.response_started:
            # Part of the body is out: the client must see a cut, not an invented end.
            self.keep_alive = False
            self.client.abort_response()
            self.finish()
            return
        self.head_pending = None
        self.respond_local(status, reason, filters=filters)
