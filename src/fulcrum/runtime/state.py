"""What the data plane runs with: settings, pools of backends, and the router.

A Runtime is built whole by provisioning and never mutated by the proxy; a
reload builds a new one and the listener swaps it in.
"""
from __future__ import annotations

from fulcrum.filters.chain import EMPTY, Chain
from fulcrum.filters.resources import Resources
from fulcrum.proxy.frontend import Destination, Frontend
from fulcrum.proxy.routing import Router
from fulcrum.proxy.settings import ProxySettings
from fulcrum.runtime.pool import Pool


class Runtime(Frontend):
    """Settings, pools, router and filters for one version of the configuration."""

    __slots__ = ("pools", "config", "resources", "tls")  # and Frontend's (proxy/frontend.py)

    def __init__(self, settings: ProxySettings, pools: dict[str, Pool], router: Router[Destination],
                 config=None, resources: Resources | None = None, chain: Chain = EMPTY,
                 trusted=None, client_ip_header: bytes = b"x-forwarded-for",
                 forwarded_headers: str = "remove_untrusted") -> None:
        self.settings = settings
        # Who the client is (phase prepare, in the Exchange constructor): the proxies whose word is taken, and in which header.
        self.trusted = trusted if trusted else None
        self.client_ip_header = client_ip_header
        self.forwarded_headers = forwarded_headers  # a client's Forwarded / X-Real-IP: see config.yaml
        self.pools = pools
        self.router = router
        self.config = config
        self.resources = resources or Resources()
        self.tls = None  # proxy.tls.TlsTerminator, when a TLS listener is configured
        # The fast path: one pool and no routes sends everything there.
        self.single = router.default if not router.routes else None
        # What a request no route matches meets: the global filters, then a 404.
        self.unrouted = Destination("", None, chain)

    def start(self, checks: bool = True) -> None:
        """Start what runs beside the requests (health checks, log writers); needs the running loop.
        ``checks=False``: a worker's, whose health results come from the supervisor."""
        self.resources.start()
        if checks:
            for pool in self.pools.values():
                pool.start()

    async def stop(self) -> None:
        """Stop what runs beside the requests (health checks); requests go on."""
        for pool in self.pools.values():
            await pool.stop()

    def retire(self, successor: "Runtime") -> None:
        """After a reload: close the connection pools of backends ``successor`` did not keep.
        Their in-flight exchanges finish; their connections close as they come back."""
        kept = {id(conns) for pool in successor.pools.values() for conns in pool.connections.values()}
        for pool in self.pools.values():
            for conns in pool.connections.values():
                if id(conns) not in kept:
                    conns.close()

    def close(self) -> None:
        """At shutdown: close every pooled connection and flush the log writers."""
        for pool in self.pools.values():
            pool.close()
        self.resources.close()
