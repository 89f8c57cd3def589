"""A route's ``redirect``: every request it matches is answered with ``status`` and a
Location made from the ``to`` template (``{path}``: the target as received, with its query;
``{host}``: the Host header). No backend is involved."""
from __future__ import annotations

from fulcrum.config.rewrites import REDIRECT_FIELDS, RedirectConfig, split_template
from fulcrum.filters.base import Filter, Reply


def _path(exchange) -> str:
    # A target starting with '//' (or '/\', which browsers read alike) would make a relative
    # Location ("{path}") a URL of another host: the leading run of slashes becomes one '/'.
    target = exchange.target
    if target[1:2] in (b"/", b"\\"):
        target = b"/" + target.lstrip(b"/\\")
    return target.decode("latin-1")


def _host(exchange) -> str:
    return exchange.host.decode("latin-1")


_FIELDS = {"path": _path, "host": _host}
assert tuple(_FIELDS) == REDIRECT_FIELDS


class Redirect(Filter):
    """Answers every request with a redirect (on_request, so nothing reaches a pool)."""

    name = "redirect"

    def __init__(self, options: RedirectConfig) -> None:
        super().__init__(options, None)
        split = split_template(options.to, REDIRECT_FIELDS)
        self.parts = [_FIELDS[part] if i % 2 else part for i, part in enumerate(split)]
        self.status = options.status

    def location(self, exchange) -> str:
        parts = self.parts
        return "".join(part(exchange) if i % 2 else part for i, part in enumerate(parts))

    def on_request(self, exchange) -> Reply:
        return Reply(self.status, None, [("Location", self.location(exchange))])
