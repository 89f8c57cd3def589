"""An example plugin: tells the backend which tenant a request is for, and logs it.

The tenant comes from a cookie (``tenant=acme``), else from a header the client may send
(``X-Tenant-Hint``), else ``default``. Whatever the client sent as ``X-Tenant`` itself is
replaced, so only this filter decides it. A value that is not a short lower-case name
counts as none. Uses three phases of the filter contract (docs/plugins.md):

* ``on_upstream_request``: sets the header on the request to the backend;
* ``exchange.ctx``: keeps the tenant for the rest of this request;
* ``on_log``: one line per request under ``fulcrum.plugins.tenant_header``, with the status.

Config (Fulcrum runs with this repository as its working directory, so ``examples`` imports)::

    filters:
      - use: examples.plugins.tenant_header:TenantHeader
        options: {cookie: tenant, hint_header: X-Tenant-Hint, header: X-Tenant, default: public}
"""
from __future__ import annotations

import logging
import re

from pydantic import BaseModel, ConfigDict, Field

from fulcrum.filters.base import Filter

log = logging.getLogger("fulcrum.plugins.tenant_header")

_TENANT = re.compile(rb"[a-z0-9][a-z0-9-]{0,62}")


class TenantHeaderOptions(BaseModel):
    """Where the tenant is read from and which header carries it to the backend."""

    model_config = ConfigDict(extra="forbid")

    cookie: str = Field("tenant", min_length=1)
    hint_header: str | None = "X-Tenant-Hint"  # None: the cookie only
    header: str = Field("X-Tenant", min_length=1)
    default: str | None = None                  # None: no tenant, the header is removed


class TenantHeader(Filter):
    """Sets ``options.header`` on the upstream request and logs the tenant of each request."""

    name = "tenant_header"
    Options = TenantHeaderOptions

    def __init__(self, options: TenantHeaderOptions, resources) -> None:
        super().__init__(options, resources)
        # Provisioning: everything per request is prepared here, once.
        self.cookie = options.cookie.encode() + b"="
        self.hint = options.hint_header.lower().encode() if options.hint_header else None
        self.header = options.header.encode()
        self.default = options.default.encode() if options.default else None
        self.seen = 0  # state across requests lives on the instance

    def tenant_of(self, exchange) -> bytes | None:
        """The tenant the request names (cookie first, then the hint header), or the default."""
        for cookies in exchange.header_values(b"cookie"):
            for pair in cookies.split(b";"):
                pair = pair.strip()
                if pair.startswith(self.cookie):
                    value = pair[len(self.cookie):]
                    if _TENANT.fullmatch(value):
                        return value
        if self.hint is not None:
            value = exchange.header(self.hint)
            if value is not None and _TENANT.fullmatch(value.strip().lower()):
                return value.strip().lower()
        return self.default

    def on_upstream_request(self, exchange, request) -> None:
        tenant = self.tenant_of(exchange)
        exchange.ctx[self.name] = tenant  # per request: read back in on_log
        if tenant is None:
            request.headers.remove(self.header)
        else:
            request.headers.set(self.header, tenant)
        self.seen += 1

    def on_log(self, exchange) -> None:
        # Requests answered before the upstream phase (a 404, a 429) have no entry.
        ctx = exchange.ctx
        if self.name not in ctx:
            return
        tenant = ctx[self.name]
        log.info("tenant", extra={"fields": {
            "request_id": exchange.request_id.decode("latin-1"),
            "tenant": tenant.decode() if tenant is not None else "-",
            "status": exchange.status,
        }})
