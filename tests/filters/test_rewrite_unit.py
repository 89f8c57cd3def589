# The built-in rewriting filters on a fake exchange, without sockets: strip_prefix and rewrite
# of the target (tables of edge cases, every result origin-form), header templates rendered
# from pre-split parts, request_headers on an UpstreamRequest and response_headers on a
# ResponseHead (global rules before the route's; remove, set, add), redirect (status and
# Location), allow/deny on the resolved client address; then how the builder places them in
# a chain and orders the on_upstream_request hooks before the user's.
from __future__ import annotations

import pytest

from fulcrum.config.model import Config
from fulcrum.config.rewrites import HeaderRules, RedirectConfig, RewriteConfig
from fulcrum.filters.access_control import AccessControl
from fulcrum.filters.base import Filter, ResponseHead
from fulcrum.filters.builder import FilterBuilder
from fulcrum.filters.chain import Chain
from fulcrum.filters.redirect import Redirect
from fulcrum.filters.resources import Resources
from fulcrum.filters.rewrite import HeaderValue, RequestHeaders, ResponseHeaders, TargetRewrite, origin_form
from fulcrum.http.upstream_request import UpstreamRequest

HERE = "tests.filters.test_rewrite_unit"


class FakeExchange:
    """What the built-in rewrites read of an exchange."""

    def __init__(self, target: bytes = b"/", host: bytes = b"example.com", client_ip: str = "192.0.2.7",
                 secure: bool = False, request_id: bytes = b"req-1", method: bytes = b"GET") -> None:
        self.method = method
        self.target = target
        self.host = host
        self.client_ip = client_ip
        self.secure = secure
        self.request_id = request_id
        self.ctx: dict = {}


class Rejection:
    """A connection's own answer to a malformed head: no Host."""

    client_ip = "192.0.2.9"
    request_id = b"req-r"
    secure = False


# -- strip_prefix and rewrite -----------------------------------------------------------------
def rewrite(pattern: str, replacement: str) -> RewriteConfig:
    return RewriteConfig(pattern=pattern, replacement=replacement)


@pytest.mark.parametrize(("strip", "rule", "target", "expected"), [
    pytest.param("/api", None, b"/api/users?x=1", b"/users?x=1", id="strip-keeps-query"),
    pytest.param("/api", None, b"/api", b"/", id="strip-whole-path-is-root"),
    pytest.param("/api", None, b"/api?x", b"/?x", id="strip-bare-prefix-with-query"),
    pytest.param("/api", None, b"/api/", b"/", id="strip-trailing-slash"),
    pytest.param("/api", None, b"/apiary", b"/apiary", id="strip-whole-segments-only"),
    pytest.param("/api", None, b"/api//evil.com/x", b"/evil.com/x", id="strip-never-leaves-double-slash"),
    pytest.param("/api/", None, b"/api/users", b"/users", id="strip-prefix-with-slash"),
    pytest.param("/api/v1", None, b"/api/v1/users/7", b"/users/7", id="strip-two-segments"),
    pytest.param(None, rewrite("^/v1/(.*)", "/v2/\\1"), b"/v1/users?x=1", b"/v2/users?x=1", id="rewrite-group"),
    pytest.param(None, rewrite("^/v1/(?P<rest>.*)", "/v2/\\g<rest>"), b"/v1/a", b"/v2/a", id="rewrite-named-group"),
    pytest.param(None, rewrite("^/v1/(.*)", "/v2/\\1"), b"/v3/users", b"/v3/users", id="rewrite-no-match"),
    pytest.param(None, rewrite("x", "/y"), b"/x/x", b"/y/x", id="rewrite-first-match-only"),
    pytest.param(None, rewrite("^/drop.*", "/"), b"/drop/all?q=1", b"/", id="rewrite-whole-target"),
    pytest.param(None, rewrite("\\?.*$", "/"), b"/a?secret=1", b"/a/", id="rewrite-sees-the-query"),
    pytest.param(None, rewrite("^/go/(.*)", "/\\1"), b"/go//evil.com/x", b"/evil.com/x",
                 id="rewrite-network-path-made-origin-form"),
    pytest.param(None, rewrite("^/go/(.*)", "/\\1"), b"/go/http://evil/", b"/http://evil/",
                 id="rewrite-absolute-url-stays-a-path"),
    pytest.param("/api", rewrite("^/v1/(.*)", "/v2/\\1"), b"/api/v1/users?x=1", b"/v2/users?x=1",
                 id="strip-then-rewrite"),
    pytest.param("/api", rewrite("^/api/(.*)", "/x/\\1"), b"/api/api/a", b"/x/a",
                 id="rewrite-sees-the-stripped-target"),
    pytest.param("/api", rewrite("^/(.*)", "/v2/\\1"), b"*", b"*", id="asterisk-untouched"),
])
def test_target_rewrite(strip, rule, target, expected):
    assert TargetRewrite(strip, rule).rewritten(target) == expected


@pytest.mark.parametrize(("target", "expected"), [
    pytest.param(b"", b"/", id="empty"),
    pytest.param(b"?q=1", b"/?q=1", id="query-only"),
    pytest.param(b"users", b"/users", id="relative"),
    pytest.param(b"http://evil/", b"/http://evil/", id="absolute-url"),
    pytest.param(b"//evil/x", b"/evil/x", id="network-path"),
    pytest.param(b"///evil", b"/evil", id="many-slashes"),
    pytest.param(b"/a//b", b"/a//b", id="inner-double-slash-kept"),
    pytest.param(b"/", b"/", id="root"),
])
def test_origin_form(target, expected):
    assert origin_form(target) == expected


def test_target_rewrite_assigns_only_a_change():
    request = UpstreamRequest(b"GET", b"/api/users", [])
    TargetRewrite("/api", None).on_upstream_request(FakeExchange(), request)
    assert request.target == b"/users"
    same = UpstreamRequest(b"GET", b"/other", [])
    TargetRewrite("/api", None).on_upstream_request(FakeExchange(), same)
    assert same.target == b"/other"


# -- header templates ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "exchange", "expected"), [
    pytest.param("prod", FakeExchange(), b"prod", id="constant"),
    pytest.param("{client_ip}", FakeExchange(client_ip="2001:db8::1"), b"2001:db8::1", id="client-ip"),
    pytest.param("id={request_id}", FakeExchange(request_id=b"abc"), b"id=abc", id="request-id"),
    pytest.param("{scheme}://{host}", FakeExchange(host=b"a.test:8080"), b"http://a.test:8080", id="scheme-host"),
    pytest.param("{scheme}", FakeExchange(secure=True), b"https", id="https"),
    pytest.param("{{{client_ip}}}", FakeExchange(), b"{192.0.2.7}", id="literal-braces"),
    pytest.param("{host}", FakeExchange(host=b""), b"", id="no-host"),
    pytest.param("[{host}]", Rejection(), b"[]", id="rejection-without-host"),
    pytest.param("caf\u00e9", FakeExchange(), "caf\u00e9".encode(), id="utf-8"),
])
def test_header_value_render(text, exchange, expected):
    assert HeaderValue(text).render(exchange) == expected


def test_constant_header_value_is_one_bytes_object():
    value = HeaderValue("prod")
    assert value.constant == b"prod" and value.render(FakeExchange()) is value.constant
    assert HeaderValue("{host}").constant is None


# -- request_headers ----------------------------------------------------------------------------
def rules(**kw) -> HeaderRules:
    return HeaderRules(**kw)


PAIRS = [(b"Accept", b"*/*"), (b"X-Debug", b"1"), (b"x-debug", b"2"), (b"X-Env", b"dev")]


@pytest.mark.parametrize(("layers", "expected"), [
    pytest.param([rules(set={"X-Env": "prod"})],
                 [(b"Accept", b"*/*"), (b"X-Debug", b"1"), (b"x-debug", b"2"), (b"X-Env", b"prod")],
                 id="set-replaces"),
    pytest.param([rules(set={"x-env": "prod"})],
                 [(b"Accept", b"*/*"), (b"X-Debug", b"1"), (b"x-debug", b"2"), (b"x-env", b"prod")],
                 id="set-case-insensitive"),
    pytest.param([rules(remove=["X-DEBUG"])], [(b"Accept", b"*/*"), (b"X-Env", b"dev")],
                 id="remove-every-field-case-insensitive"),
    pytest.param([rules(add={"X-Env": "also"})], PAIRS + [(b"X-Env", b"also")], id="add-appends"),
    pytest.param([rules(remove=["X-Env"], set={"X-Env": "a"}, add={"X-Env": "b"})],
                 [(b"Accept", b"*/*"), (b"X-Debug", b"1"), (b"x-debug", b"2"), (b"X-Env", b"a"), (b"X-Env", b"b")],
                 id="remove-then-set-then-add"),
    pytest.param([rules(set={"X-Env": "global", "X-Global": "1"}), rules(set={"X-Env": "route"})],
                 [(b"Accept", b"*/*"), (b"X-Debug", b"1"), (b"x-debug", b"2"), (b"X-Env", b"route"),
                  (b"X-Global", b"1")], id="global-then-route-route-wins"),
    pytest.param([rules(set={"X-Client": "{client_ip}", "X-Id": "{request_id}", "X-Proto": "{scheme}"})],
                 PAIRS + [(b"X-Client", b"192.0.2.7"), (b"X-Id", b"req-1"), (b"X-Proto", b"http")],
                 id="placeholders"),
])
def test_request_headers(layers, expected):
    request = UpstreamRequest(b"GET", b"/", list(PAIRS))
    RequestHeaders(layers).on_upstream_request(FakeExchange(), request)
    assert request.headers.items() == expected


# -- response_headers ---------------------------------------------------------------------------
def test_response_headers_edit_the_head():
    head = ResponseHead(200, [b"HTTP/1.1 200 OK\r\n", b"Server: nginx\r\n", b"X-Served-By: backend\r\n",
                              b"Content-Length: 2\r\n"])
    edits = ResponseHeaders([rules(remove=["Server"], set={"X-Global": "1"}),
                             rules(set={"X-Served-By": "fulcrum {request_id}"}, add={"Vary": "X-Tenant"})])
    edits.on_response(FakeExchange(), head)
    assert head.lines == [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n", b"X-Global: 1\r\n",
                          b"X-Served-By: fulcrum req-1\r\n", b"Vary: X-Tenant\r\n"]


def test_response_headers_on_a_rejection_without_host():
    head = ResponseHead(400, [])
    ResponseHeaders([rules(set={"X-Host": "[{host}]", "X-Client": "{client_ip}"})]).on_response(Rejection(), head)
    assert head.lines == [b"X-Host: []\r\n", b"X-Client: 192.0.2.9\r\n"]


# -- redirect -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("to", "status", "exchange", "location"), [
    pytest.param("https://example.com/new{path}", 308, FakeExchange(target=b"/old/a?x=1"),
                 "https://example.com/new/old/a?x=1", id="path-with-query"),
    pytest.param("https://{host}{path}", 301, FakeExchange(target=b"/", host=b"shop.test:8080"),
                 "https://shop.test:8080/", id="host"),
    pytest.param("/moved", 302, FakeExchange(target=b"/old"), "/moved", id="constant"),
    pytest.param("{path}", 307, FakeExchange(target=b"//evil.com/x"), "/evil.com/x",
                 id="never-a-network-path"),
    pytest.param("{path}", 307, FakeExchange(target=b"/\\evil.com/x"), "/evil.com/x",
                 id="backslash-read-as-slash-by-browsers"),
    pytest.param("/a{{b}}{path}", 303, FakeExchange(target=b"/x"), "/a{b}/x", id="literal-braces"),
])
def test_redirect(to, status, exchange, location):
    reply = Redirect(RedirectConfig(to=to, status=status)).on_request(exchange)
    assert (reply.status, reply.detail, reply.headers) == (status, None, [("Location", location)])
    assert reply.header_bytes == b"Location: %s\r\n" % location.encode()


# -- allow / deny -------------------------------------------------------------------------------
@pytest.mark.parametrize(("allow", "deny", "client", "admitted"), [
    pytest.param(["10.0.0.0/8"], None, "10.1.2.3", True, id="allow-inside"),
    pytest.param(["10.0.0.0/8"], None, "192.0.2.1", False, id="allow-outside"),
    pytest.param(["10.0.0.0/8"], None, "::ffff:10.1.2.3", True, id="allow-ipv4-mapped"),
    pytest.param(["2001:db8::/32"], None, "2001:db8::1", True, id="allow-ipv6"),
    pytest.param(["10.0.0.0/8", "127.0.0.1"], None, "127.0.0.1", True, id="allow-single-address"),
    pytest.param(["10.0.0.0/8"], None, "", False, id="allow-unparseable-refused"),
    pytest.param(None, ["10.0.0.0/8"], "10.1.2.3", False, id="deny-inside"),
    pytest.param(None, ["10.0.0.0/8"], "192.0.2.1", True, id="deny-outside"),
    pytest.param(None, ["10.0.0.0/8"], "unknown", True, id="deny-unparseable-passes"),
])
def test_access_control(allow, deny, client, admitted):
    reply = AccessControl(allow, deny).on_request(FakeExchange(client_ip=client))
    if admitted:
        assert reply is None
    else:
        assert (reply.status, reply.detail) == (403, "client address not allowed on this route")


def test_access_control_takes_one_list():
    with pytest.raises(ValueError):
        AccessControl(["10.0.0.0/8"], ["10.0.0.0/8"])
    with pytest.raises(ValueError):
        AccessControl(None, None)


# -- composition --------------------------------------------------------------------------------
class Stamp(Filter):
    """A user filter on the upstream request: appends its class name and the target it saw to X-Order."""

    name = "stamp"

    def on_upstream_request(self, exchange, request) -> None:
        seen = request.headers.get(b"X-Order") or b""
        request.headers.set(b"X-Order", seen + b"|" + type(self).__name__.encode() + b":" + request.target)


class StampToo(Stamp):
    name = "stamp-too"


POOLS = {"web": {"backends": [{"url": "http://127.0.0.1:9001"}]}}


def build(routes, **top):
    config = Config.model_validate({"pools": POOLS, "routes": routes, **top})
    problems: list[str] = []
    builder = FilterBuilder(config, Resources(), "config.yaml", problems)
    chains = [builder.chain(None, "")] + [builder.chain(r, f"routes[{i}].") for i, r in enumerate(config.routes)]
    assert problems == []
    return chains


def test_builtins_sit_after_the_access_log_and_before_the_other_filters():
    _, route = build([{
        "path_prefix": "/api", "pool": "web", "allow": ["10.0.0.0/8"], "strip_prefix": True,
        "rewrite": {"pattern": "^/v1/(.*)", "replacement": "/v2/\\1"},
        "request_headers": {"set": {"X-Env": "prod"}}, "response_headers": {"remove": ["Server"]},
        "rate_limit": {"requests_per_second": 5}, "filters": [{"use": f"{HERE}:Stamp"}],
    }])
    assert route.names == ["access_log", "access_control", "rewrite", "request_headers", "response_headers",
                           "rate_limit", "stamp"]


def test_redirect_route_chain():
    _, route = build([{"path_prefix": "/old", "deny": ["10.0.0.0/8"], "redirect": {"to": "/new{path}"}}],
                     request_headers={"set": {"X-G": "1"}}, response_headers={"set": {"X-G": "1"}})
    # allow/deny first, then the redirect; no request rewrite: nothing is sent upstream.
    assert route.names == ["access_log", "access_control", "redirect", "response_headers"]
    assert route.upstream_request == ()


def test_upstream_request_order_builtins_then_global_then_route():
    global_chain, route = build(
        [{"path_prefix": "/api", "pool": "web", "strip_prefix": True,
          "request_headers": {"set": {"X-Order": "builtin"}}, "filters": [{"use": f"{HERE}:StampToo"}]}],
        filters=[{"use": f"{HERE}:Stamp"}], request_headers={"set": {"X-Order": "global-builtin"}},
    )
    request = UpstreamRequest(b"GET", b"/api/users", [])
    route.rewrite(FakeExchange(), request)
    assert request.target == b"/users"
    assert request.headers.get(b"X-Order") == b"builtin|Stamp:/users|StampToo:/users"
    plain = UpstreamRequest(b"GET", b"/x", [])
    global_chain.rewrite(FakeExchange(), plain)
    assert plain.headers.get(b"X-Order") == b"global-builtin|Stamp:/x"


def test_global_rules_shared_and_merged():
    global_chain, plain, own = build(
        [{"path_prefix": "/a", "pool": "web"},
         {"path_prefix": "/b", "pool": "web", "response_headers": {"set": {"X-Route": "b"}}}],
        response_headers={"set": {"X-G": "1", "X-Route": "global"}},
    )
    shared = [f for f in global_chain.filters if f.name == "response_headers"]
    assert shared and [f for f in plain.filters if f.name == "response_headers"] == shared
    assert own.respond(FakeExchange(), 200, []) == [b"X-G: 1\r\n", b"X-Route: b\r\n"]


def test_no_rewrites_no_hooks():
    global_chain, route = build([{"path_prefix": "/a", "pool": "web", "strip_prefix": False}])
    assert global_chain.upstream_request == () and route.upstream_request == ()
    # path_prefix "/" has nothing to strip
    _, root = build([{"path_prefix": "/", "pool": "web", "strip_prefix": True}])
    assert root.upstream_request == ()


def test_chain_collects_only_overridden_upstream_hooks():
    class Plain(Filter):
        def on_request(self, exchange):
            return None

    stamp = Stamp(None, Resources())
    chain = Chain([Plain(None, Resources()), stamp])
    assert chain.upstream_request == (stamp.on_upstream_request,)
    assert Chain([Plain(None, Resources())]).upstream_request == ()
