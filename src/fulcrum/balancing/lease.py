"""A backend taken for one try of a request: in flight from the moment it is leased until it
is released, exactly once, however the try ends (the one place in-flight counts change)."""
from __future__ import annotations

from fulcrum.balancing.backend import Backend


class Lease:
    """One try's hold on a backend. ``release`` ends it after a verdict was recorded (the
    breaker's probe slot went with the verdict); ``abandon`` ends it without one (the client
    left), which also frees a half-open breaker's probe slot, unless the try was ``judged``
    already (its slot went with that verdict). Both are idempotent."""

    __slots__ = ("backend", "held", "judged", "episode")

    def __init__(self, backend: Backend) -> None:
        _hold(self, backend)

    def release(self) -> None:
        if self.held:
            self.held = False
            self.backend.in_flight -= 1

    def abandon(self, now: float) -> None:
        if self.held:
            self.held = False
            backend = self.backend
            backend.in_flight -= 1
            if backend.breaker is not None and not self.judged:
                backend.breaker.release(now, self.episode)

    def __repr__(self) -> str:
        return f"Lease({self.backend.id!r}, held={self.held})"


def take(backend: Backend) -> Lease:
    """``Lease(backend)``, for the hot path: the compiled core builds it without a call."""
    lease = Lease.__new__(Lease)
    _hold(lease, backend)
    return lease


def _hold(lease: Lease, backend: Backend) -> None:
    lease.backend = backend
    lease.held = True
    lease.judged = False  # a success or failure of this try was recorded
    breaker = backend.breaker
    lease.episode = breaker.episode if breaker is not None else 0  # whose probe slot it may hold
    backend.in_flight += 1
    backend.requests += 1
