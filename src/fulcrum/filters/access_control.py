"""A route's ``allow`` / ``deny`` lists: a request from a client address outside ``allow``,
or inside ``deny``, is answered 403 before any other filter of the route. The address is
``exchange.client_ip``, which the exchange resolved through the top-level ``trusted_proxies``;
an address that cannot be parsed is in no network (refused by ``allow``, let through by ``deny``)."""
from __future__ import annotations

from fulcrum.filters.base import Filter, Reply
from fulcrum.http.client_address import TrustedProxies


class AccessControl(Filter):
    """403 for client addresses the route's list does not admit."""

    name = "access_control"

    def __init__(self, allow: list[str] | None, deny: list[str] | None) -> None:
        super().__init__(None, None)
        if (allow is None) == (deny is None):
            raise ValueError("AccessControl takes one of allow or deny")
        # A set of networks with a fast membership test: the same structure as trusted_proxies.
        self.networks = TrustedProxies(allow if allow is not None else deny)
        self.admit_inside = allow is not None

    def admits(self, client_ip: str) -> bool:
        return self.networks.trusts(client_ip) is self.admit_inside

    def on_request(self, exchange) -> Reply | None:
        if self.networks.trusts(exchange.client_ip) is self.admit_inside:
            return None
        return Reply(403, "client address not allowed on this route")
