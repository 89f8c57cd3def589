"""A user filter on the upstream-request phase for the core's unit tests, loaded by dotted path
(``tests.support.upstream_filters:Retarget``): it moves the target under a prefix and sets a header."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fulcrum.filters.base import Filter


class RetargetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str                      # put before the target the backend would get
    header: str = "X-Retargeted"     # set to the target this filter was handed
    method: str | None = None        # the method the backend gets, when given


class Retarget(Filter):
    """``request.target = prefix + target``; ``<header>: <the target it saw>``."""

    name = "retarget"
    Options = RetargetOptions

    def on_upstream_request(self, exchange, request) -> None:
        options = self.options
        request.headers.set(options.header.encode(), request.target)
        request.target = options.prefix.encode() + request.target
        if options.method is not None:
            request.method = options.method.encode()
