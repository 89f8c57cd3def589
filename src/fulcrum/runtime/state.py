"""What the data plane runs with: settings, pools of backends, and the router.

A Runtime is built whole by provisioning and never mutated by the proxy; a
reload builds a new one and the listener swaps it in.
"""
from __future__ import annotations

from fulcrum.proxy.routing import Router
from fulcrum.proxy.settings import ProxySettings
from fulcrum.runtime.pool import Pool


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

    def start(self) -> None:
        """Start what runs beside the requests (health checks); needs the running loop."""
        for pool in self.pools.values():
            pool.start()

    async def stop(self) -> None:
        for pool in self.pools.values():
            await pool.stop()

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
