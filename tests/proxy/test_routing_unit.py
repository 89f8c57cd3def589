# Route and Router (src/fulcrum/proxy/routing.py) without sockets: host, path-prefix, method,
# header and query-parameter conditions case by case, then first-match-wins and the default pool.
from __future__ import annotations

import pytest

from fulcrum.proxy.routing import Route, Router, query_params


def headers_of(pairs: dict[str, str] | None = None):
    """The ``header(name)`` callable the router gets: lower-case byte names in, value or None out."""
    table = {k.lower().encode(): v.encode() for k, v in (pairs or {}).items()}
    return table.get


def route_matches(route: Route, host: str = "example.org", path: str = "/",
                  headers: dict[str, str] | None = None) -> bool:
    return route.matches(host, path.encode(), headers_of(headers))


# -- host -----------------------------------------------------------------------
# The router is given the Host header already lower-cased and without its port
# (http.headers.host_without_port does that), so these hosts are in that form.
@pytest.mark.parametrize(("pattern", "host", "expected"), [
    pytest.param("api.example.com", "api.example.com", True, id="exact-equal"),
    pytest.param("API.Example.COM", "api.example.com", True, id="exact-pattern-case-insensitive"),
    pytest.param("api.example.com", "www.example.com", False, id="exact-other-name"),
    pytest.param("api.example.com", "x.api.example.com", False, id="exact-not-subdomain"),
    pytest.param("api.example.com", "api.example.com.evil", False, id="exact-not-prefix"),
    pytest.param("*.example.com", "a.example.com", True, id="wildcard-one-label"),
    pytest.param("*.example.com", "a.b.example.com", True, id="wildcard-two-labels"),
    pytest.param("*.example.com", "example.com", False, id="wildcard-not-apex"),
    pytest.param("*.example.com", "badexample.com", False, id="wildcard-label-boundary"),
    pytest.param("*.example.com", "a.example.com.evil", False, id="wildcard-suffix-only"),
    pytest.param("*.Example.com", "a.example.com", True, id="wildcard-case-insensitive"),
    pytest.param("[::1]", "[::1]", True, id="ipv6-literal"),
    pytest.param("127.0.0.1", "127.0.0.1", True, id="ipv4-literal"),
    pytest.param(None, "anything.at.all", True, id="no-host-condition"),
    pytest.param(None, "", True, id="no-host-condition-empty-host"),
    pytest.param("api.example.com", "", False, id="exact-vs-missing-host"),
    pytest.param("*.example.com", "", False, id="wildcard-vs-missing-host"),
])
def test_host_condition(pattern, host, expected):
    assert route_matches(Route("pool", host=pattern), host=host) is expected


# -- path prefix ------------------------------------------------------------------
@pytest.mark.parametrize(("prefix", "target", "expected"), [
    pytest.param("/", "/", True, id="root-matches-root"),
    pytest.param("/", "/anything/at/all?x=1", True, id="root-matches-everything"),
    pytest.param("/api", "/api", True, id="exact-path"),
    pytest.param("/api", "/api/", True, id="trailing-slash"),
    pytest.param("/api", "/api/x", True, id="sub-path"),
    pytest.param("/api", "/api/x/y/z", True, id="deep-sub-path"),
    pytest.param("/api", "/api?q=1", True, id="query"),
    pytest.param("/api", "/apiary", False, id="not-partial-segment"),
    pytest.param("/api", "/api-v2/x", False, id="not-partial-segment-dash"),
    pytest.param("/api", "/ap", False, id="shorter-than-prefix"),
    pytest.param("/api", "/", False, id="root-not-under-prefix"),
    pytest.param("/api", "/v1/api", False, id="prefix-not-infix"),
    pytest.param("/api", "/API", False, id="case-sensitive"),
    pytest.param("/api/", "/api/x", True, id="slash-prefix-sub-path"),
    pytest.param("/api/", "/api/", True, id="slash-prefix-exact"),
    pytest.param("/api/", "/api", False, id="slash-prefix-needs-slash"),
    pytest.param("/api/v1", "/api/v1/users?id=3", True, id="two-segments"),
    pytest.param("/api/v1", "/api/v10", False, id="two-segments-partial"),
])
def test_path_prefix_condition(prefix, target, expected):
    assert route_matches(Route("pool", path_prefix=prefix), path=target) is expected


# -- headers --------------------------------------------------------------------------
@pytest.mark.parametrize(("condition", "sent", "expected"), [
    pytest.param({"X-Canary": "1"}, {"X-Canary": "1"}, True, id="equal"),
    pytest.param({"X-Canary": "1"}, {"x-canary": "1"}, True, id="name-case-insensitive"),
    pytest.param({"x-canary": "1"}, {"X-CANARY": "1"}, True, id="condition-name-lower"),
    pytest.param({"X-Canary": "1"}, {}, False, id="missing"),
    pytest.param({"X-Canary": "1"}, {"X-Canary": "0"}, False, id="other-value"),
    pytest.param({"X-Canary": "1"}, {"X-Canary": "10"}, False, id="value-not-prefix"),
    pytest.param({"X-Env": "Beta"}, {"X-Env": "beta"}, False, id="value-case-sensitive"),
    pytest.param({"X-Canary": ""}, {"X-Canary": ""}, True, id="empty-value"),
    pytest.param({"X-Canary": ""}, {}, False, id="empty-value-needs-header"),
    pytest.param({"X-A": "1", "X-B": "2"}, {"X-A": "1", "X-B": "2"}, True, id="all-listed-match"),
    pytest.param({"X-A": "1", "X-B": "2"}, {"X-A": "1"}, False, id="one-of-two-missing"),
    pytest.param({"X-A": "1", "X-B": "2"}, {"X-A": "1", "X-B": "3"}, False, id="one-of-two-differs"),
    pytest.param({}, {"X-Anything": "1"}, True, id="no-header-condition"),
])
def test_header_condition(condition, sent, expected):
    assert route_matches(Route("pool", headers=condition), headers=sent) is expected


# -- methods ----------------------------------------------------------------------------
@pytest.mark.parametrize(("methods", "method", "expected"), [
    pytest.param(["GET", "HEAD"], b"GET", True, id="listed"),
    pytest.param(["GET", "HEAD"], b"HEAD", True, id="second-listed"),
    pytest.param(["GET", "HEAD"], b"POST", False, id="not-listed"),
    pytest.param(["GET"], b"HEAD", False, id="head-not-implied-by-get"),
    pytest.param(["GET"], b"get", False, id="case-sensitive-as-received"),
    pytest.param(["PURGE"], b"PURGE", True, id="extension-method"),
    pytest.param([], b"DELETE", True, id="no-method-condition"),
])
def test_method_condition(methods, method, expected):
    route = Route("pool", methods=methods)
    assert route.matches("example.org", b"/", headers_of(), method) is expected


def test_method_defaults_to_get_for_callers_that_pass_none():
    route = Route("pool", methods=["POST"])
    assert route.matches("example.org", b"/", headers_of()) is False
    assert Router([route], "default").match("example.org", b"/", headers_of()) == "default"
    assert Router([route], "default").match("example.org", b"/", headers_of(), b"POST") == "pool"


# -- query parameters -----------------------------------------------------------------------
@pytest.mark.parametrize(("condition", "target", "expected"), [
    pytest.param({"version": "2"}, "/api?version=2", True, id="equal"),
    pytest.param({"version": "2"}, "/api?x=1&version=2&y=3", True, id="among-others"),
    pytest.param({"version": "2"}, "/api?version=3", False, id="other-value"),
    pytest.param({"version": "2"}, "/api?version=20", False, id="value-not-prefix"),
    pytest.param({"version": "2"}, "/api", False, id="no-query"),
    pytest.param({"version": "2"}, "/api?Version=2", False, id="name-case-sensitive"),
    pytest.param({"version": "2"}, "/api?version=2&version=3", True, id="first-value-counts"),
    pytest.param({"version": "2"}, "/api?version=3&version=2", False, id="later-value-ignored"),
    pytest.param({"q": "a b"}, "/api?q=a+b", True, id="plus-is-space"),
    pytest.param({"q": "a b"}, "/api?q=a%20b", True, id="percent-decoded"),
    pytest.param({"q": "é"}, "/api?q=%C3%A9", True, id="utf-8-decoded"),
    pytest.param({"q": "é"}, "/api?q=%E9", False, id="not-utf-8-never-raises"),
    pytest.param({"v e": "1"}, "/api?v%20e=1", True, id="name-decoded"),
    pytest.param({"flag": ""}, "/api?flag", True, id="blank-without-equals"),
    pytest.param({"flag": ""}, "/api?flag=", True, id="blank-with-equals"),
    pytest.param({"flag": ""}, "/api?other", False, id="blank-needs-the-parameter"),
    pytest.param({"a": "1", "b": "2"}, "/api?b=2&a=1", True, id="all-listed-any-order"),
    pytest.param({"a": "1", "b": "2"}, "/api?a=1", False, id="one-of-two-missing"),
    pytest.param({}, "/api?anything=1", True, id="no-query-condition"),
])
def test_query_condition(condition, target, expected):
    assert route_matches(Route("pool", query=condition), path=target) is expected


@pytest.mark.parametrize(("target", "params"), [
    pytest.param(b"/", {}, id="none"),
    pytest.param(b"/?", {}, id="empty"),
    pytest.param(b"/?a=1&a=2&b", {"a": "1", "b": ""}, id="first-values"),
    pytest.param(b"/?a=%2F&b=x%3Dy", {"a": "/", "b": "x=y"}, id="decoded"),
    pytest.param(b"/?a=%C3%A9&b=caf\xc3\xa9", {"a": "é", "b": "café"}, id="utf-8-escaped-and-raw"),
    pytest.param(b"/?a=%FF&b=\xff", {"a": "\ufffd", "b": "\ufffd"}, id="invalid-utf-8-replaced"),
])
def test_query_params(target, params):
    assert query_params(target) == params


def test_router_checks_query_after_the_rest():
    table = [Route("v2", path_prefix="/api", query={"version": "2"}),
             Route("v3", path_prefix="/api", query={"version": "3"}, methods=["POST"]),
             Route("api", path_prefix="/api")]
    router = Router(table)
    assert router.match("h", b"/api/x?version=2", headers_of()) == "v2"
    assert router.match("h", b"/api/x?version=3", headers_of()) == "api"
    assert router.match("h", b"/api/x?version=3", headers_of(), b"POST") == "v3"
    assert router.match("h", b"/other?version=2", headers_of()) is None


# -- conditions together --------------------------------------------------------------
@pytest.mark.parametrize(("request_", "expected"), [
    pytest.param(("api.example.com", "/v1/users", {"X-Canary": "1"}), True, id="all-hold"),
    pytest.param(("www.example.com", "/v1/users", {"X-Canary": "1"}), False, id="host-fails"),
    pytest.param(("api.example.com", "/v2/users", {"X-Canary": "1"}), False, id="path-fails"),
    pytest.param(("api.example.com", "/v1/users", {}), False, id="header-fails"),
])
def test_every_condition_must_hold(request_, expected):
    route = Route("pool", host="api.example.com", path_prefix="/v1", headers={"X-Canary": "1"})
    host, path, headers = request_
    assert route_matches(route, host, path, headers) is expected


# -- Router ---------------------------------------------------------------------------------
TABLE = [
    Route("canary", headers={"X-Canary": "1"}),
    Route("api", host="api.example.com", path_prefix="/api"),
    Route("api-root", host="api.example.com"),
    Route("tenants", host="*.example.com"),
    Route("static", path_prefix="/static"),
]


@pytest.mark.parametrize(("host", "path", "headers", "expected"), [
    pytest.param("api.example.com", "/api/x", {"X-Canary": "1"}, "canary", id="earlier-route-wins"),
    pytest.param("api.example.com", "/api/x", {}, "api", id="host-and-path"),
    pytest.param("api.example.com", "/apiary", {}, "api-root", id="falls-through-to-next"),
    pytest.param("api.example.com", "/static/a.css", {}, "api-root", id="host-route-before-path-route"),
    pytest.param("shop.example.com", "/api/x", {}, "tenants", id="wildcard"),
    pytest.param("example.com", "/static/a.css", {}, "static", id="apex-skips-wildcard"),
    pytest.param("example.com", "/", {}, None, id="nothing-matches"),
    pytest.param("other.org", "/api/x", {"X-Canary": "0"}, None, id="nothing-matches-other-host"),
])
def test_router_first_match_wins(host, path, headers, expected):
    router = Router(TABLE)
    assert router.match(host, path.encode(), headers_of(headers)) == expected


def test_router_order_is_the_table_order():
    broad = Route("broad", path_prefix="/")
    narrow = Route("narrow", path_prefix="/api")
    assert Router([broad, narrow]).match("h", b"/api/x", headers_of()) == "broad"
    assert Router([narrow, broad]).match("h", b"/api/x", headers_of()) == "narrow"


@pytest.mark.parametrize(("routes", "default", "expected"), [
    pytest.param([], "only", "only", id="no-routes-default"),
    pytest.param([], None, None, id="no-routes-no-default"),
    pytest.param([Route("api", path_prefix="/api")], "fallback", "fallback", id="no-match-default"),
    pytest.param([Route("api", path_prefix="/api")], None, None, id="no-match-no-default"),
])
def test_router_default(routes, default, expected):
    assert Router(routes, default).match("example.com", b"/other", headers_of()) == expected


def test_route_target_is_returned_as_is():
    target = object()
    assert Router([Route(target, host="a.example.com")]).match("a.example.com", b"/", headers_of()) is target
