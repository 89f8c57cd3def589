"""What an exchange needs of the pool its route sends to (proxy/exchange.py): a lease on a
backend, that backend's connections, the verdicts, and the retry settings.

A base class rather than a typing.Protocol, like proxy/downstream.py: the compiled core
(fulcrum/core.py) reads these attributes and calls these methods in C, which needs the type
to be known. runtime.pool.Pool is the one subclass; it holds the strategy, health and
membership that decide what ``lease`` returns.
"""
from __future__ import annotations


class Balancer:
    """A pool of backends, as the data plane sees it."""

    __slots__ = (
        "name",          # the pool's name, for messages
        "connections",   # backend id -> proxy.pool.ConnectionPool
        "outliers",      # resilience.outlier.OutlierDetector, or None
        "retry",         # resilience.retry_policy.RetryPolicy, or None (no retries)
        "budget",        # resilience.retry_budget.RetryBudget, or None
        "rng",           # random.Random, for the retries' jitter
        "tries_header",  # answer with X-Fulcrum-Tries
        "timed_tries",   # a try's allowance depends on the retry policy (see Pool)
    )

    def lease(self, request, exclude=()):
        """A balancing.lease.Lease on a backend for one try, avoiding ``exclude``; or None."""
        raise NotImplementedError

    def record(self, backend, ok, now):
        """One request's verdict on ``backend`` (a gateway failure or not)."""
        raise NotImplementedError

    def retry_after(self, now: float) -> int:
        """Seconds a client should wait when nothing is available (Retry-After)."""
        raise NotImplementedError
