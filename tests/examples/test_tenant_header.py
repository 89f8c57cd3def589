"""Tests for examples/plugins/tenant_header.py on a fake exchange: where the tenant comes
from (cookie, then hint header, then default), the header it sets or removes on the upstream
request whatever the client sent, the tenant kept in ``exchange.ctx`` and logged in on_log,
and that it loads by dotted path with its options validated like any user filter."""
from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from examples.plugins.tenant_header import TenantHeader, TenantHeaderOptions
from fulcrum.filters.chain import Chain
from fulcrum.filters.registry import resolve
from fulcrum.filters.resources import Resources
from fulcrum.http.upstream_request import UpstreamRequest


class FakeExchange:
    """What the plugin reads of an exchange: headers, request id, status and ``ctx``."""

    def __init__(self, headers=(), status: int = 200) -> None:
        self.headers = [(n.encode(), v.encode()) for n, v in headers]
        self.request_id = b"req-7"
        self.status = status
        self._ctx: dict | None = None

    @property
    def ctx(self) -> dict:
        if self._ctx is None:
            self._ctx = {}
        return self._ctx

    def header(self, name: bytes) -> bytes | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


def plugin(**options) -> TenantHeader:
    return TenantHeader(TenantHeaderOptions(**options), Resources())


def upstream(exchange: FakeExchange) -> UpstreamRequest:
    # As the exchange builds it: the client's headers minus what Fulcrum writes itself.
    return UpstreamRequest(b"GET", b"/", [p for p in exchange.headers if p[0].lower() != b"host"])


@pytest.mark.parametrize(("headers", "options", "tenant"), [
    pytest.param([("Cookie", "a=1; tenant=acme; b=2")], {}, b"acme", id="cookie"),
    pytest.param([("Cookie", "a=1"), ("Cookie", "tenant=beta")], {}, b"beta", id="second-cookie-line"),
    pytest.param([("X-Tenant-Hint", "Globex")], {}, b"globex", id="hint-header-lower-cased"),
    pytest.param([("Cookie", "tenant=acme"), ("X-Tenant-Hint", "globex")], {}, b"acme", id="cookie-first"),
    pytest.param([("Cookie", "tenant=ACME")], {"default": "public"}, b"public", id="invalid-cookie-default"),
    pytest.param([("Cookie", "xtenant=acme")], {}, None, id="cookie-name-exact"),
    pytest.param([("X-Tenant-Hint", "globex")], {"hint_header": None}, None, id="hint-off"),
    pytest.param([], {"default": "public"}, b"public", id="default"),
    pytest.param([], {}, None, id="none"),
])
def test_tenant_of(headers, options, tenant):
    assert plugin(**options).tenant_of(FakeExchange(headers)) == tenant


def test_sets_the_header_replacing_the_clients():
    exchange = FakeExchange([("Host", "shop.test"), ("X-Tenant", "spoofed"), ("Cookie", "tenant=acme")])
    request = upstream(exchange)
    plugin().on_upstream_request(exchange, request)
    assert request.headers.get_all(b"x-tenant") == [b"acme"]
    assert exchange.ctx == {"tenant_header": b"acme"}


def test_without_a_tenant_the_clients_header_is_removed():
    exchange = FakeExchange([("X-Tenant", "spoofed")])
    request = upstream(exchange)
    plugin().on_upstream_request(exchange, request)
    assert not request.headers.has(b"X-Tenant")
    assert exchange.ctx == {"tenant_header": None}


def test_custom_header_name():
    exchange = FakeExchange([("Cookie", "org=acme")])
    request = upstream(exchange)
    plugin(cookie="org", header="X-Org").on_upstream_request(exchange, request)
    assert request.headers.get(b"X-Org") == b"acme"


@pytest.fixture
def records():
    logger = logging.getLogger("fulcrum.plugins.tenant_header")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_logs_the_tenant_kept_in_ctx(records):
    tenant = plugin()
    exchange = FakeExchange([("Cookie", "tenant=acme")], status=201)
    tenant.on_upstream_request(exchange, upstream(exchange))
    tenant.on_log(exchange)
    assert [(r.getMessage(), r.fields) for r in records] == [
        ("tenant", {"request_id": "req-7", "tenant": "acme", "status": 201})]


def test_no_log_line_for_a_request_answered_before_the_upstream_phase(records):
    plugin().on_log(FakeExchange(status=404))
    assert records == []


def test_through_a_chain_like_the_exchange_runs_it(records):
    chain = Chain([plugin(default="public")])
    assert chain.request == () and chain.response == ()  # only the phases it defines are called
    exchange = FakeExchange()
    request = upstream(exchange)
    chain.rewrite(exchange, request)
    for hook in chain.log:
        hook(exchange)
    assert request.headers.get(b"X-Tenant") == b"public"
    assert records[0].fields["tenant"] == "public"


@pytest.mark.parametrize("path", ["examples.plugins.tenant_header:TenantHeader",
                                  "examples.plugins.tenant_header.TenantHeader"])
def test_loads_by_dotted_path(path):
    assert resolve(path) is TenantHeader


def test_options_are_validated():
    with pytest.raises(ValidationError):
        TenantHeaderOptions.model_validate({"cookie": ""})
    with pytest.raises(ValidationError):
        TenantHeaderOptions.model_validate({"cokie": "tenant"})
