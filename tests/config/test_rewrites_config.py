# The rewriting keys of a route (strip_prefix, rewrite, request_headers, response_headers,
# redirect, allow/deny, methods, query) and the global header rules: what loads, and every
# refusal as the one line `fulcrum check` prints (file, field path with the key, message).
# The template syntax (split_template) has its own table.
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fulcrum.config import ConfigError, load_config_from_dict
from fulcrum.config.rewrites import HEADER_FIELDS, REDIRECT_FIELDS, split_template

POOLS = {"api": {"backends": [{"url": "http://127.0.0.1:9001"}]}}


def load(routes=(), **top):
    return load_config_from_dict({"pools": POOLS, "routes": list(routes), **top}, "config.yaml")


def problems(routes=(), **top) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(routes, **top)
    return info.value.problems


# -- what loads ---------------------------------------------------------------------------------
def test_the_contract_example_loads():
    config = load([
        {"path_prefix": "/api", "pool": "api", "strip_prefix": True,
         "rewrite": {"pattern": "^/v1/(.*)", "replacement": "/v2/\\1"},
         "request_headers": {"set": {"X-Env": "prod"}, "add": {}, "remove": ["X-Debug"]},
         "response_headers": {"set": {"X-Served-By": "fulcrum"}, "add": {}, "remove": ["Server"]}},
        {"path_prefix": "/old", "redirect": {"to": "https://example.com/new{path}", "status": 308}},
        {"path_prefix": "/internal", "pool": "api", "allow": ["10.0.0.0/8"],
         "methods": ["get", "HEAD", "GET"], "query": {"version": 2}},
    ], request_headers={"set": {"X-Request-Start": "{request_id}"}}, response_headers={"remove": ["Server"]})
    api, old, internal = config.routes
    assert api.strip_prefix and api.rewrite.replacement == "/v2/\\1"
    assert api.request_headers.set == {"X-Env": "prod"} and api.request_headers.remove == ["X-Debug"]
    assert old.pool is None and old.redirect.status == 308
    assert internal.methods == ["GET", "HEAD"]          # upper-cased, duplicates dropped
    assert internal.query == {"version": "2"}           # an unquoted number is its text
    assert config.request_headers.set == {"X-Request-Start": "{request_id}"}


def test_defaults_change_nothing():
    route = load([{"pool": "api"}]).routes[0]
    assert (route.strip_prefix, route.rewrite, route.request_headers, route.response_headers,
            route.redirect, route.allow, route.deny, route.methods, route.query) == (
        False, None, None, None, None, None, None, [], {})
    assert load().request_headers is None and load().response_headers is None


def test_redirect_status_defaults_to_302():
    assert load([{"redirect": {"to": "/new{path}"}}]).routes[0].redirect.status == 302


# -- refusals, one line each --------------------------------------------------------------------
ROUTE = {"path_prefix": "/api", "pool": "api"}


@pytest.mark.parametrize(("route", "line"), [
    pytest.param({**ROUTE, "request_headers": {"set": {"Host": "x"}}},
                 "config.yaml: routes[0].request_headers.set.Host: Fulcrum writes this header itself; "
                 "it cannot be set or removed", id="set-host"),
    pytest.param({**ROUTE, "request_headers": {"add": {"x-forwarded-for": "1.2.3.4"}}},
                 "config.yaml: routes[0].request_headers.add.x-forwarded-for: Fulcrum writes this header "
                 "itself; it cannot be set or removed", id="add-xff"),
    pytest.param({**ROUTE, "request_headers": {"remove": ["X-Debug", "Content-Length"]}},
                 "config.yaml: routes[0].request_headers.remove[1]: Fulcrum writes this header itself; "
                 "it cannot be set or removed (got 'Content-Length')", id="remove-content-length"),
    pytest.param({**ROUTE, "request_headers": {"set": {"Connection": "close"}}},
                 "config.yaml: routes[0].request_headers.set.Connection: a hop-by-hop header describes "
                 "one connection; it cannot be set or removed", id="set-connection"),
    pytest.param({**ROUTE, "request_headers": {"set": {"X-Request-ID": "{request_id}"}}},
                 "config.yaml: routes[0].request_headers.set.X-Request-ID: Fulcrum writes this header "
                 "itself; it cannot be set or removed", id="set-request-id"),
    pytest.param({**ROUTE, "request_headers": {"set": {"X-Real-IP": "{client_ip}"}}},
                 "config.yaml: routes[0].request_headers.set.X-Real-IP: passed on only by the "
                 "forwarded_headers policy; it cannot be set or removed", id="set-x-real-ip"),
    pytest.param({**ROUTE, "request_headers": {"set": {"X Env": "1"}}},
                 "config.yaml: routes[0].request_headers.set.X Env: not a valid header name (got 'X Env')",
                 id="bad-name"),
    pytest.param({**ROUTE, "request_headers": {"set": {"X-Env": "1", "x-env": "2"}}},
                 "config.yaml: routes[0].request_headers.set.x-env: given twice (header names are "
                 "case-insensitive)", id="twice"),
    pytest.param({**ROUTE, "response_headers": {"set": {"Transfer-Encoding": "chunked"}}},
                 "config.yaml: routes[0].response_headers.set.Transfer-Encoding: a hop-by-hop header "
                 "describes one connection; it cannot be set or removed", id="response-te"),
    pytest.param({**ROUTE, "response_headers": {"remove": ["X-Request-ID"]}},
                 "config.yaml: routes[0].response_headers.remove[0]: Fulcrum writes this header itself; "
                 "it cannot be set or removed (got 'X-Request-ID')", id="response-request-id"),
    pytest.param({**ROUTE, "request_headers": {"set": {"X-Env": "{env}"}}},
                 "config.yaml: routes[0].request_headers.set.X-Env: unknown placeholder {env} (known: "
                 "{client_ip}, {request_id}, {host}, {scheme}; write {{ and }} for literal braces; got '{env}')",
                 id="unknown-placeholder"),
    pytest.param({**ROUTE, "request_headers": {"set": {"X-Env": "a}b"}}},
                 "config.yaml: routes[0].request_headers.set.X-Env: single '}' at position 1 (write }} "
                 "for a literal brace; got 'a}b')", id="single-closing-brace"),
    pytest.param({**ROUTE, "request_headers": {"set": {"X-Env": "a\r\nX-Evil: 1"}}},
                 "config.yaml: routes[0].request_headers.set.X-Env: a header value may not hold CR, LF or "
                 "NUL (got 'a\\r\\nX-Evil: 1')", id="injection"),
    pytest.param({**ROUTE, "rewrite": {"pattern": "^/v1/(.*", "replacement": "/v2/"}},
                 "config.yaml: routes[0].rewrite.pattern: not a valid regular expression: missing ), "
                 "unterminated subpattern at position 5 (got '^/v1/(.*')", id="bad-regex"),
    pytest.param({**ROUTE, "rewrite": {"pattern": "^/v1/(.*)", "replacement": "\\1"}},
                 "config.yaml: routes[0].rewrite.replacement: must start with '/': the result is the "
                 "path sent to the backend (got '\\\\1')", id="replacement-not-a-path"),
    pytest.param({**ROUTE, "rewrite": {"pattern": "^/(.*)", "replacement": "/a b"}},
                 "config.yaml: routes[0].rewrite.replacement: must be visible ASCII, no spaces "
                 "(percent-encode the rest; got '/a b')", id="replacement-space"),
    pytest.param({**ROUTE, "rewrite": {"pattern": "^/v1/(.*)", "replacement": "/v2/\\2"}},
                 "config.yaml: routes[0].rewrite.replacement: invalid group reference 2 at position 5 "
                 "(pattern '^/v1/(.*)'; got '/v2/\\\\2')", id="missing-group"),
    pytest.param({"path_prefix": "/old", "redirect": {"to": "https://example.com{path}", "status": 305}},
                 "config.yaml: routes[0].redirect.status: must be one of 301, 302, 303, 307, 308 (got 305)",
                 id="redirect-status"),
    pytest.param({"path_prefix": "/old", "redirect": {"to": "https://{host}{path}?from={client_ip}"}},
                 "config.yaml: routes[0].redirect.to: unknown placeholder {client_ip} (known: {path}, "
                 "{host}; write {{ and }} for literal braces; got 'https://{host}{path}?from={client_ip}')",
                 id="redirect-placeholder"),
    pytest.param({"path_prefix": "/old", "redirect": {"to": "https://example.com/a b"}},
                 "config.yaml: routes[0].redirect.to: must be a URL or a path of visible ASCII, no spaces "
                 "(percent-encode the rest; got 'https://example.com/a b')", id="redirect-space"),
    pytest.param({"path_prefix": "/old", "pool": "api", "redirect": {"to": "/new"}},
                 "config.yaml: routes[0].redirect: a route with a redirect answers itself and takes no "
                 "pool (got pool 'api')", id="redirect-with-pool"),
    pytest.param({"path_prefix": "/old", "strip_prefix": True, "redirect": {"to": "/new"}},
                 "config.yaml: routes[0].strip_prefix: has no effect on a route with a redirect (no "
                 "request is sent to a backend)", id="redirect-with-strip-prefix"),
    pytest.param({"path_prefix": "/old"},
                 "config.yaml: routes[0].pool: required (only a route with a redirect has no pool)",
                 id="no-pool-no-redirect"),
    pytest.param({**ROUTE, "allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16"]},
                 "config.yaml: routes[0].deny: cannot be combined with allow (give one list)",
                 id="allow-and-deny"),
    pytest.param({**ROUTE, "allow": ["10.0.0.1/8"]},
                 "config.yaml: routes[0].allow: entry 0: '10.0.0.1/8' has host bits set; did you mean "
                 "10.0.0.0/8?", id="allow-host-bits"),
    pytest.param({**ROUTE, "deny": ["nope"]},
                 "config.yaml: routes[0].deny: entry 0: not a CIDR or an IP address (got 'nope')",
                 id="deny-not-cidr"),
    pytest.param({**ROUTE, "allow": []}, "config.yaml: routes[0].allow: must not be empty", id="allow-empty"),
    pytest.param({**ROUTE, "methods": ["GET", "GE T"]},
                 "config.yaml: routes[0].methods: not a method name (got 'GE T')", id="method-not-token"),
    pytest.param({**ROUTE, "query": {"version": ["1", "2"]}},
                 "config.yaml: routes[0].query.version: must be a string (got a list)", id="query-list"),
])
def test_route_refusals(route, line):
    assert problems([route]) == [line]


@pytest.mark.parametrize(("top", "line"), [
    pytest.param({"request_headers": {"set": {"Host": "x"}}},
                 "config.yaml: request_headers.set.Host: Fulcrum writes this header itself; it cannot be "
                 "set or removed", id="global-request"),
    pytest.param({"response_headers": {"remove": ["Content-Length"]}},
                 "config.yaml: response_headers.remove[0]: Fulcrum writes this header itself; it cannot be "
                 "set or removed (got 'Content-Length')", id="global-response"),
    pytest.param({"response_headers": {"sets": {}}},
                 "config.yaml: response_headers.sets: unknown key (did you mean 'set'?)", id="unknown-key"),
])
def test_global_refusals(top, line):
    assert problems(**top) == [line]


def test_response_headers_may_touch_what_requests_may_not():
    # Server, Host-like names and X-Forwarded-* are ordinary on a response.
    load([{**ROUTE, "response_headers": {"set": {"X-Forwarded-For": "x"}, "remove": ["Server", "Host"]}}])


def test_several_problems_each_on_its_line():
    assert problems([
        {"path_prefix": "/a", "pool": "api", "request_headers": {"set": {"Host": "x"}, "remove": ["TE"]}},
        {"path_prefix": "/b", "allow": ["10.0.0.0/8"], "deny": ["10.0.0.0/8"]},
    ]) == [
        "config.yaml: routes[0].request_headers.set.Host: Fulcrum writes this header itself; "
        "it cannot be set or removed",
        "config.yaml: routes[0].request_headers.remove[0]: a hop-by-hop header describes one connection; "
        "it cannot be set or removed (got 'TE')",
        "config.yaml: routes[1].pool: required (only a route with a redirect has no pool)",
        "config.yaml: routes[1].deny: cannot be combined with allow (give one list)",
    ]


# -- the template syntax ------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "parts"), [
    pytest.param("prod", ["prod"], id="literal"),
    pytest.param("", [""], id="empty"),
    pytest.param("{client_ip}", ["", "client_ip", ""], id="one-field"),
    pytest.param("ip={client_ip}; id={request_id}", ["ip=", "client_ip", "; id=", "request_id", ""],
                 id="fields-and-literals"),
    pytest.param("{scheme}://{host}", ["", "scheme", "://", "host", ""], id="adjacent"),
    pytest.param("{{client_ip}}", ["{client_ip}"], id="escaped-braces"),
    pytest.param("{{{host}}}", ["{", "host", "}"], id="escaped-around-field"),
    pytest.param("a}}b{{c", ["a}b{c"], id="escapes-anywhere"),
])
def test_split_template(text, parts):
    assert split_template(text, HEADER_FIELDS) == parts


@pytest.mark.parametrize(("text", "fields", "message"), [
    pytest.param("{path}", HEADER_FIELDS, "unknown placeholder {path}", id="redirect-field-in-header"),
    pytest.param("{client_ip}", REDIRECT_FIELDS, "unknown placeholder {client_ip}", id="header-field-in-redirect"),
    pytest.param("{}", HEADER_FIELDS, "unknown placeholder {}", id="empty-placeholder"),
    pytest.param("{host!r}", HEADER_FIELDS, "unknown placeholder {host!r}", id="conversion"),
    pytest.param("{ host }", HEADER_FIELDS, "unknown placeholder { host }", id="spaces"),
    pytest.param("a{host", HEADER_FIELDS, "unclosed '{' at position 1", id="unclosed"),
    pytest.param("}", HEADER_FIELDS, "single '}' at position 0", id="single-close"),
])
def test_split_template_refusals(text, fields, message):
    with pytest.raises(ValueError) as info:
        split_template(text, fields)
    assert str(info.value).startswith(message)


# -- the annotated config.yaml ------------------------------------------------------------------
def test_config_yaml_rewrite_example_loads_uncommented():
    """The commented-out rewriting routes of config.yaml, uncommented, load as documented."""
    lines = (Path(__file__).resolve().parents[2] / "config.yaml").read_text().splitlines()
    start = [i for i, line in enumerate(lines) if line == "# routes:"][-1]
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    routes = yaml.safe_load("\n".join(block))["routes"]
    config = load_config_from_dict({"pools": {"web": POOLS["api"]}, "routes": routes}, "config.yaml")
    api, old, internal = config.routes
    assert api.strip_prefix and api.rewrite.replacement == "/v2/\\1"
    assert api.request_headers.set == {"X-Env": "prod", "X-Client": "{client_ip}"}
    assert old.redirect.status == 308 and old.pool is None
    assert internal.allow == ["10.0.0.0/8"] and internal.methods == ["GET", "HEAD"]
    assert internal.query == {"version": "2"}
