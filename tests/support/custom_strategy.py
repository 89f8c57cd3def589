# A user-defined strategy, named by dotted path in integration tests
# (tests/integration/test_strategies_live.py): it always picks the last available backend.
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy


class LastBackend(Strategy):
    """Always the last available backend of the pool; None when none is available."""

    name = "last_backend"

    def pick(self, request: RequestInfo) -> Backend | None:
        for backend in reversed(self.backends):
            if backend.available:
                return backend
        return None


class NotAStrategy:
    """Named by a test to check that Fulcrum refuses classes that are not Strategy subclasses."""
