"""What the data plane runs with: settings, pools of backends, and the router.

A Runtime is built whole by provisioning and never mutated by the proxy; a
reload builds a new one and the listener swaps it in.
"""
from __future__ import annotations

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import Strategy
from fulcrum.proxy.pool import ConnectionPool
from fulcrum.proxy.routing import Router
from fulcrum.proxy.settings import ProxySettings


class Pool:
    """A named group of backends, the strategy that picks among them, and one
    keep-alive connection pool per backend (keyed by backend id)."""

    __slots__ = ("name", "backends", "strategy", "connections")

    def __init__(self, name: str, backends: list[Backend], strategy: Strategy,
                 connections: dict[str, ConnectionPool]) -> None:
        self.name = name
        self.backends = backends
        self.strategy = strategy
        self.connections = connections

    def close(self) -> None:
        for conns in self.connections.values():
            conns.close()


class Runtime:
    """Settings, pools and router for one version of the configuration."""

    __slots__ = ("settings", "pools", "router", "single_pool", "config")

    def __init__(self, settings: ProxySettings, pools: dict[str, Pool], router: Router[Pool], config=None) -> None:
        self.settings = settings
        self.pools = pools
        self.router = router
        self.config = config
        # The fast path: one pool and no routes sends everything there.
        self.single_pool = router.default if not router.routes else None

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
