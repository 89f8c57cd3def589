"""What an exchange needs of the runtime it is served with (runtime/state.py builds one per
version of the configuration): the settings, where requests go, and whose word on the client's
address is taken.

Base classes rather than typing.Protocols, like proxy/downstream.py: the compiled core
(fulcrum/core.py) reads these attributes in C, which needs the types to be known.
"""
from __future__ import annotations

from fulcrum.filters.chain import EMPTY


class Destination:
    """Where a route leads: its name (for logs and metrics), its pool (a proxy.balancer.Balancer,
    or None for a 404) and its filter chain."""

    __slots__ = ("name", "pool", "chain")

    def __init__(self, name: str, pool, chain=EMPTY) -> None:
        self.name = name
        self.pool = pool
        self.chain = chain

    def __repr__(self) -> str:
        return f"Destination({self.name!r}, pool={self.pool.name if self.pool else None}, {self.chain!r})"


class Frontend:
    """The client-facing half of a runtime, as the exchanges read it."""

    __slots__ = (
        "settings",           # proxy.settings.ProxySettings
        "router",             # proxy.routing.Router of Destinations
        "single",             # the one Destination when there are no routes, else None
        "unrouted",           # the Destination of a request no route matches (a 404)
        "trusted",            # http.client_address.TrustedProxies, or None
        "client_ip_header",   # the lower-cased header a trusted proxy names the client in
        "forwarded_headers",  # a client's Forwarded / X-Real-IP: keep, remove, remove_untrusted
    )
