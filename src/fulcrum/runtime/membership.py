"""Changing a running pool's backends (admin API): add, reweight, enable, drain, remove.

A mixin of Pool, kept apart so picking reads on its own. Every change is applied
at once, between two callbacks of the loop: new members get their connection
pool, breaker, outlier and health-check state before the strategy can see them,
and a strategy built for the new member list (strategies are built for a fixed
list) is swapped in whole. A removed backend is first drained, so no exchange
still refers to it when it goes.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Awaitable, Callable

from fulcrum.balancing.backend import Backend
from fulcrum.proxy.balancer import Balancer

if TYPE_CHECKING:
    from fulcrum.balancing.base import Strategy
    from fulcrum.proxy.pool import ConnectionPool
    from fulcrum.resilience.circuit_breaker import CircuitBreaker

# A closed connection pool stays reachable by id this long after its backend left, so
# a connect that was under way when the last exchange gave up finds it (and is closed).
RETIRED_GRACE = 10.0
DRAIN_POLL = 0.05


class MembershipError(Exception):
    """A membership change that cannot be made; the message says why."""


class UnknownBackend(MembershipError, LookupError):
    """No backend with that id in the pool."""


class BackendConflict(MembershipError):
    """The change clashes with the pool's state (duplicate, last backend, still busy)."""


async def _local_in_flight(backend: Backend) -> int:
    return backend.in_flight


class Builders:
    """How a pool builds what a new member needs; provisioning supplies these."""

    __slots__ = ("strategy", "connections", "breaker")

    def __init__(self, strategy: Callable[[list[Backend]], "Strategy"],
                 connections: Callable[[Backend], "ConnectionPool"],
                 breaker: Callable[[Backend], "CircuitBreaker"] | None = None) -> None:
        self.strategy = strategy
        self.connections = connections
        self.breaker = breaker


class Membership(Balancer):
    """Runtime backend changes for Pool (which holds all the state)."""

    __slots__ = ()

    def set_builders(self, strategy: Callable[[list[Backend]], "Strategy"],
                     connections: Callable[[Backend], "ConnectionPool"],
                     breaker: Callable[[Backend], "CircuitBreaker"] | None = None) -> None:
        """Let this pool take new members (called once, when provisioned)."""
        self.builders = Builders(strategy, connections, breaker)

    def backend(self, backend_id: str) -> Backend:
        for b in self.backends:
            if b.id == backend_id:
                return b
        known = ", ".join(b.id for b in self.backends)
        raise UnknownBackend(f"pool {self.name!r} has no backend {backend_id!r} (backends: {known})")

    def add_backend(self, url: str, weight: int = 1, id: str | None = None,
                    enabled: bool = True) -> Backend:
        """A new member, eligible for the next pick (unless ``enabled`` is False)."""
        backend = Backend(url, weight=weight, id=id)  # ValueError on a bad url
        for b in self.backends:
            if b.id == backend.id or (b.host, b.port) == (backend.host, backend.port):
                raise BackendConflict(f"pool {self.name!r} already has backend {b.id!r} ({b.url})")
        builders = self._builders()
        backend.enabled = enabled
        if builders.breaker is not None:
            backend.breaker = builders.breaker(backend)
        members = [*self.backends, backend]
        strategy = builders.strategy(members)  # may raise ValueError: nothing changed yet
        self.connections[backend.id] = builders.connections(backend)
        if self.outliers is not None:
            self.outliers.set_members([b.id for b in members])
        if self.checker is not None:
            self.checker.add(backend)
        self.backends, self.strategy = members, strategy
        self.refresh(self.clock())
        return backend

    def set_weight(self, backend_id: str, weight: int) -> Backend:
        """A new weight, honoured from the next pick (the strategy is rebuilt for it)."""
        if weight < 1:
            raise ValueError(f"weight must be >= 1 (got {weight})")
        backend = self.backend(backend_id)
        backend.weight = weight
        self.strategy = self._builders().strategy(list(self.backends))
        return backend

    def set_enabled(self, backend_id: str, enabled: bool) -> Backend:
        """Switch a backend in or out of picking; requests in flight are not touched."""
        backend = self.backend(backend_id)
        backend.enabled = enabled
        self.refresh(self.clock())
        return backend

    def drain(self, backend_id: str) -> Backend:
        """No new requests for the backend; the ones in flight finish."""
        return self.set_enabled(backend_id, False)

    async def remove_backend(self, backend_id: str, timeout: float = 30.0,
                             in_flight: Callable[[Backend], Awaitable[int]] | None = None) -> Backend:
        """Drain the backend, wait up to ``timeout`` s for its requests to finish, drop it.

        ``in_flight`` counts the backend's requests (default: this process's; the
        supervisor asks its workers). Raises BackendConflict for the pool's last
        backend, or when requests are still in flight at the deadline (the backend
        then stays drained).
        """
        backend = self.backend(backend_id)
        self._check_not_last(backend)
        self.drain(backend_id)
        count = in_flight or _local_in_flight
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        busy = await count(backend)
        while busy > 0 and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL)
            busy = await count(backend)
        if backend not in self.backends:
            return backend  # a concurrent removal finished first
        if busy > 0:
            raise BackendConflict(
                f"backend {backend_id!r} still has {busy} requests in flight after "
                f"{timeout:g}s; it stays drained (DELETE again to retry)")
        self._check_not_last(backend)
        self._drop(backend, loop)
        return backend

    def _drop(self, backend: Backend, loop: asyncio.AbstractEventLoop) -> None:
        members = [b for b in self.backends if b is not backend]
        self.backends, self.strategy = members, self._builders().strategy(members)
        if self.outliers is not None:
            self.outliers.set_members([b.id for b in members])
        if self.checker is not None:
            self.checker.remove(backend.id)
        conns = self.connections.get(backend.id)
        if conns is not None:
            conns.close()
            loop.call_later(RETIRED_GRACE, self._forget_connections, backend.id, conns)
        self.refresh(self.clock())

    def _forget_connections(self, backend_id: str, conns: "ConnectionPool") -> None:
        if self.connections.get(backend_id) is conns:  # not replaced by a re-added backend
            del self.connections[backend_id]

    def _check_not_last(self, backend: Backend) -> None:
        if self.backends == [backend]:
            raise BackendConflict(
                f"backend {backend.id!r} is the last one of pool {self.name!r}; add another first")

    def _builders(self) -> Builders:
        if self.builders is None:
            raise MembershipError(f"pool {self.name!r} was provisioned without builders")
        return self.builders
