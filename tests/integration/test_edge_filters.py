"""The filter chain in a real Fulcrum process: user filters loaded by dotted path (global ones,
then the route's; a local reply), `fulcrum check` naming bad filter options and unknown
modules; recovery (a filter raising in on_request, on_response or on_log costs that request
a 500, or nothing at all for on_log, is logged once with the request id, and the next request
succeeds); CORS (preflights answered here and never forwarded, origin matching, the allow
headers on proxied responses, credentials, per route); security headers on proxied and on
Fulcrum's own responses, a backend's own value kept unless ``override``, no HSTS on plain HTTP.

Filters keep no per-request state, so each group of tests shares one Fulcrum (module scope);
what reached the backend is counted by the example backend's /_stats, before and after.
"""
from __future__ import annotations

import json
import socket

import pytest
import yaml

from tests.support.edge_client import burst, lines_through, request_bytes, send, started, stopped
from tests.support.fake_backend import RawClient
from tests.support.processes import PLAIN, pool_config, run_cli, stats

EDGE = "tests.support.edge_filters"
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "content-security-policy": "default-src 'self'",
}


def requests_seen(backend) -> int:
    return stats(backend)["requests"]


# -- user filters and recovery ---------------------------------------------------------------

@pytest.fixture(scope="module")
def chain_lb(tmp_path_factory):
    def config(backend):
        return {
            "pools": {"web": pool_config(backend)},
            "admin": {"listen": "127.0.0.1:0"},
            "access_log": {"format": "text"},  # on stdout, where lines_through finds it
            "filters": [{"use": f"{EDGE}:Tag", "options": {"value": "global"}}],
            "routes": [
                {"path_prefix": "/req-boom", "pool": "web",
                 "filters": [{"use": f"{EDGE}:Boom", "options": {"phase": "request", "path": "/req-boom"}}]},
                {"path_prefix": "/resp-boom", "pool": "web",
                 "filters": [{"use": f"{EDGE}:Boom", "options": {"phase": "response", "path": "/resp-boom"}}]},
                {"path_prefix": "/log-boom", "pool": "web",
                 "filters": [{"use": f"{EDGE}:Boom", "options": {"phase": "log", "path": "/log-boom"}}]},
                {"path_prefix": "/log-then-mark", "pool": "web",
                 "filters": [{"use": f"{EDGE}:Boom", "options": {"phase": "log", "path": "/log-then-mark/boom"}},
                             {"use": f"{EDGE}:LogMarker"}]},
                {"path_prefix": "/tagged", "pool": "web",
                 "filters": [{"use": f"{EDGE}:Deny", "options": {"path": "/tagged/denied"}},
                             {"use": f"{EDGE}:Tag", "options": {"value": "route"}}]},
                {"path_prefix": "/", "pool": "web"},
            ],
        }

    lb, backend = started(tmp_path_factory, "chain", config)
    yield lb, backend
    stopped(lb, backend)


def test_user_filters_by_dotted_path_run_global_then_route(chain_lb):
    lb, _ = chain_lb
    routed = send(lb.port, "/tagged/x")
    assert routed.status == 200, routed
    # Response hooks run innermost first: the route's Tag, then the global one.
    assert routed.header_all("X-Edge-Tag") == ["route", "global"]
    plain = send(lb.port, "/other")
    assert plain.status == 200 and plain.header_all("X-Edge-Tag") == ["global"]


def test_user_filter_reply_answers_from_the_proxy(chain_lb):
    lb, backend = chain_lb
    before = requests_seen(backend)
    denied = send(lb.port, "/tagged/denied/1")
    assert denied.status == 451, denied
    assert denied.header("X-Denied-By") == "edge-deny"
    assert b"denied by the edge test filter" in denied.body
    assert denied.header_all("X-Edge-Tag") == ["route", "global"]  # local replies pass response hooks too
    assert requests_seen(backend) == before


def internal_error_lines(lines: list[str], request_id: str) -> list[str]:
    return [line for line in lines if "internal error" in line and request_id in line]


def assert_logged_once(lb, request_id: str, phase_field: str, later_request_id: str) -> None:
    """One "internal error" line naming the request and its phase, and one traceback."""
    lines = lines_through(lb, later_request_id)
    errors = internal_error_lines(lines, request_id)
    assert len(errors) == 1, "\n".join(lines)
    assert phase_field in errors[0], errors
    # The traceback is there, once: its last line is the exception, which names the request.
    raised = [line for line in lines if "RuntimeError: edge-boom in on_" in line and request_id in line]
    assert len(raised) == 1, "\n".join(lines)
    assert sum("Traceback (most recent call last)" in line for line in lines) >= 1


def test_filter_raising_in_on_request_costs_that_request_a_500(chain_lb):
    lb, backend = chain_lb
    before = requests_seen(backend)
    with RawClient(lb.port) as client:
        client.send(request_bytes("/req-boom"))
        failed = client.read_response()
        assert failed.status == 500, failed
        request_id = failed.header("X-Request-ID")
        assert request_id and request_id.encode() in failed.body
        # The connection is still good for the next request ...
        client.send(request_bytes("/"))
        assert client.read_response().status == 200
    # ... and so is a new one.
    after = send(lb.port, "/")
    assert after.status == 200
    assert requests_seen(backend) == before + 2  # the failed request never reached it
    assert_logged_once(lb, request_id, "phase=start", after.header("X-Request-ID"))


def test_filter_raising_in_on_response_costs_that_request_a_500(chain_lb):
    lb, backend = chain_lb
    before = requests_seen(backend)
    failed = send(lb.port, "/resp-boom?size=5000")
    assert failed.status == 500, failed
    assert failed.header("X-Backend") is None  # nothing of the backend's response leaked
    assert requests_seen(backend) == before + 1
    request_id = failed.header("X-Request-ID")
    after = send(lb.port, "/")
    assert after.status == 200 and after.header("X-Backend") == backend.name
    assert_logged_once(lb, request_id, 'phase="response filter"', after.header("X-Request-ID"))


def test_filter_raising_on_the_response_of_a_keep_alive_connection_leaves_it_usable(chain_lb):
    lb, _ = chain_lb
    with RawClient(lb.port) as client:
        client.send(request_bytes("/resp-boom"))
        assert client.read_response().status == 500
        client.send(request_bytes("/?size=100"))
        after = client.read_response()
    assert after.status == 200 and len(after.body) == 100


def test_filter_raising_in_on_log_does_not_change_the_response(chain_lb):
    lb, backend = chain_lb
    response = send(lb.port, "/log-boom/x?header=X-Mine:kept")
    assert response.status == 200, response
    assert response.header("X-Backend") == backend.name
    assert response.header("X-Mine") == "kept"
    assert response.header_all("X-Edge-Tag") == ["global"]
    assert json.loads(response.body) == {"backend": backend.name, "method": "GET", "path": "/log-boom/x"}
    request_id = response.header("X-Request-ID")
    after = send(lb.port, "/")
    assert after.status == 200
    assert_logged_once(lb, request_id, "phase=log", after.header("X-Request-ID"))
    lines = list(lb.lines)
    # The access log ran before the failing hook: the request is still in it, as a 200.
    access = [line for line in lines if line.endswith(f" request_id={request_id}") and " in=" in line]
    assert len(access) == 1 and '"GET /log-boom/x?header=X-Mine:kept" 200 ' in access[0], access


def test_a_log_hook_that_raises_does_not_skip_the_log_hooks_after_it(chain_lb):
    # "An exception in any phase ... costs nothing else": the next filter's on_log still runs.
    lb, _ = chain_lb
    ok = send(lb.port, "/log-then-mark/ok")
    failing = send(lb.port, "/log-then-mark/boom")
    after = send(lb.port, "/")
    assert (ok.status, failing.status, after.status) == (200, 200, 200)
    lines = lines_through(lb, after.header("X-Request-ID"))
    ok_id, failing_id = ok.header("X-Request-ID"), failing.header("X-Request-ID")
    assert len(internal_error_lines(lines, failing_id)) == 1, "\n".join(lines)

    def marked(request_id: str) -> bool:
        return any("edge-log-marker" in line and f"request_id={request_id}" in line for line in lines)

    assert marked(ok_id), "\n".join(lines)  # the marker filter works ...
    assert marked(failing_id), "\n".join(lines)  # ... and ran after the hook that raised


# -- fulcrum check -------------------------------------------------------------------------------

def check(tmp_path, config: dict):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_cli("check", "--config", str(path))
    return result, [line for line in result.stderr.splitlines() if line.strip()], path


def test_check_names_the_field_path_of_bad_user_filter_options(tmp_path):
    result, lines, path = check(tmp_path, {
        "pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001"}]}},
        "routes": [{"pool": "web", "filters": [{"use": f"{EDGE}:Strict", "options": {"x": "lots"}}]}],
    })
    assert result.returncode == 2, result
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: routes[0].filters[0].options.x: "), lines
    assert "integer" in lines[0]


def test_check_names_an_unknown_filter_module(tmp_path):
    result, lines, path = check(tmp_path, {
        "pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001"}]}},
        "filters": [{"use": "tests.support.no_such_edge_module:Thing"}],
        "routes": [{"pool": "web", "filters": [{"use": f"{EDGE}:Strict", "options": {"x": 1, "nope": 2}}]}],
    })
    assert result.returncode == 2, result
    assert len(lines) == 2, lines
    unknown = [line for line in lines if line.startswith(f"{path}: filters[0].use: ")]
    assert len(unknown) == 1 and "tests.support.no_such_edge_module" in unknown[0], lines
    extra = [line for line in lines if line.startswith(f"{path}: routes[0].filters[0].options.nope: ")]
    assert len(extra) == 1, lines


def test_check_accepts_valid_user_filters(tmp_path):
    result, problems, _ = check(tmp_path, {
        "pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001"}]}},
        "filters": [{"use": f"{EDGE}:Tag", "options": {"value": "v"}}],
        "routes": [{"pool": "web", "filters": [{"use": f"{EDGE}:Strict", "options": {"x": 3}}]}],
    })
    assert result.returncode == 0 and problems == [], result.stderr
    assert "configuration is valid" in result.stdout
    assert "filters: access_log, tag" in result.stdout  # the global chain, by name


# -- CORS -------------------------------------------------------------------------------------------

APP = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_lb(tmp_path_factory):
    def config(backend):
        return {
            "pools": {"web": pool_config(backend)},
            "admin": {"listen": "127.0.0.1:0"},
            "access_log": {"enabled": False},
            "cors": {"allow_origins": [APP, "https://*.example.org"], "allow_methods": ["GET", "PUT"],
                     "max_age": 123, "expose_headers": ["X-Total"]},
            "routes": [
                {"path_prefix": "/public", "pool": "web", "cors": {"allow_origins": ["*"]}},
                {"path_prefix": "/creds", "pool": "web", "cors": {"allow_origins": ["*"], "allow_credentials": True}},
                {"path_prefix": "/nocors", "pool": "web", "cors": {"enabled": False}},
                {"path_prefix": "/limited", "pool": "web",
                 "rate_limit": {"requests_per_second": 0.01, "burst": 1}},
                {"path_prefix": "/", "pool": "web"},
            ],
        }

    lb, backend = started(tmp_path_factory, "cors", config)
    yield lb, backend
    stopped(lb, backend)


def preflight(port: int, origin: str, path: str = "/api", method: str = "PUT", headers: str | None = None):
    hdrs = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        hdrs["Access-Control-Request-Headers"] = headers
    return send(port, path, method="OPTIONS", headers=hdrs)


def test_preflight_from_an_allowed_origin_is_answered_here(cors_lb):
    lb, backend = cors_lb
    before = requests_seen(backend)
    response = preflight(lb.port, APP, headers="X-Custom, Content-Type")
    assert response.status == 204, response
    assert response.header_all("Access-Control-Allow-Origin") == [APP]
    assert response.header("Access-Control-Allow-Methods") == "GET, PUT"
    assert response.header("Access-Control-Max-Age") == "123"
    assert response.header("Access-Control-Allow-Headers") == "x-custom, content-type"
    assert "Origin" in response.header("Vary")
    assert response.body == b""
    assert requests_seen(backend) == before  # never forwarded


@pytest.mark.parametrize(("origin", "method", "status"), [
    pytest.param("https://evil.example.net", "PUT", 403, id="other-origin"),
    pytest.param(APP, "DELETE", 403, id="method-not-allowed"),
    pytest.param("https://a.example.org", "GET", 204, id="wildcard-subdomain"),
    pytest.param("https://x.y.example.org", "GET", 204, id="wildcard-deeper-subdomain"),
    pytest.param("https://example.org", "GET", 403, id="wildcard-not-the-apex"),
    pytest.param("http://a.example.org", "GET", 403, id="wildcard-other-scheme"),
    pytest.param("https://a.example.org.evil.net", "GET", 403, id="wildcard-suffix-trick"),
])
def test_preflight_origin_and_method_matching(cors_lb, origin, method, status):
    lb, backend = cors_lb
    before = requests_seen(backend)
    response = preflight(lb.port, origin, method=method)
    assert response.status == status, response
    if status == 204:
        assert response.header("Access-Control-Allow-Origin") == origin
    elif origin != APP:
        assert not response.has_header("Access-Control-Allow-Origin"), response
    assert requests_seen(backend) == before


def test_a_preflight_answer_keeps_the_connection_usable(cors_lb):
    # A 204 has no body: the next response on the connection must parse right after it.
    lb, backend = cors_lb
    hdrs = {"Origin": APP, "Access-Control-Request-Method": "GET"}
    first, second = burst(lb.port, [request_bytes("/api", "OPTIONS", hdrs), request_bytes("/api?size=10")],
                          methods=["OPTIONS", "GET"])
    assert first.status == 204 and first.body == b""
    assert second.status == 200 and second.header("X-Backend") == backend.name and len(second.body) == 10


def test_a_429_carries_the_cors_headers_too(cors_lb):
    # A page must be able to read that it was limited: the 429 passes the CORS filter.
    lb, _ = cors_lb
    responses = [send(lb.port, "/limited", headers={"Origin": APP}) for _ in range(2)]
    assert [r.status for r in responses] == [200, 429]
    assert responses[1].header_all("Access-Control-Allow-Origin") == [APP]


def test_plain_options_without_a_request_method_goes_to_the_backend(cors_lb):
    lb, backend = cors_lb
    before = requests_seen(backend)
    response = send(lb.port, "/api", method="OPTIONS", headers={"Origin": APP})
    assert response.status == 200 and response.header("X-Backend") == backend.name
    assert requests_seen(backend) == before + 1


def test_allowed_origin_gets_allow_origin_on_the_proxied_response_replacing_the_backends(cors_lb):
    lb, backend = cors_lb
    response = send(lb.port, "/?header=Access-Control-Allow-Origin:https://evil.example.net",
                    headers={"Origin": APP})
    assert response.status == 200 and response.header("X-Backend") == backend.name
    assert response.header_all("Access-Control-Allow-Origin") == [APP]
    assert "Origin" in response.header("Vary")
    assert response.header("Access-Control-Expose-Headers") == "X-Total"
    assert not response.has_header("Access-Control-Allow-Credentials")


def test_other_origin_gets_no_allow_origin(cors_lb):
    lb, _ = cors_lb
    response = send(lb.port, "/", headers={"Origin": "https://evil.example.net"})
    assert response.status == 200
    assert not response.has_header("Access-Control-Allow-Origin")


def test_credentials_echo_the_origin_with_vary(cors_lb):
    lb, _ = cors_lb
    response = send(lb.port, "/creds", headers={"Origin": "https://any.test"})
    assert response.status == 200
    assert response.header_all("Access-Control-Allow-Origin") == ["https://any.test"]
    assert response.header("Access-Control-Allow-Credentials") == "true"
    assert "Origin" in response.header("Vary")


def test_per_route_cors(cors_lb):
    lb, backend = cors_lb
    # /public allows any origin, without credentials: "*".
    public = preflight(lb.port, "https://other.test", path="/public/x")
    assert public.status == 204 and public.header("Access-Control-Allow-Origin") == "*"
    # The max_age and methods not set on the route are the global ones.
    assert public.header("Access-Control-Max-Age") == "123"
    assert public.header("Access-Control-Allow-Methods") == "GET, PUT"
    assert send(lb.port, "/public", headers={"Origin": "https://other.test"}).header(
        "Access-Control-Allow-Origin") == "*"
    # The same origin is refused where the global section applies.
    assert preflight(lb.port, "https://other.test", path="/api").status == 403
    # And /nocors has no CORS at all: its preflight is just an OPTIONS for the backend.
    before = requests_seen(backend)
    off = preflight(lb.port, APP, path="/nocors")
    assert off.status == 200 and off.header("X-Backend") == backend.name
    assert not off.has_header("Access-Control-Allow-Origin")
    assert requests_seen(backend) == before + 1


# -- security headers ------------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def security_lb(tmp_path_factory):
    def config(backend):
        return {
            "pools": {"web": pool_config(backend),
                      "dead": {**PLAIN, "backends": [{"url": f"http://127.0.0.1:{closed_port()}"}]}},
            "admin": {"listen": "127.0.0.1:0"},
            "access_log": {"enabled": False},
            "security_headers": {"content_security_policy": "default-src 'self'", "hsts": {"max_age": 600}},
            "routes": [
                {"path_prefix": "/app", "pool": "web"},
                {"path_prefix": "/override", "pool": "web", "security_headers": {"override": True}},
                {"path_prefix": "/limited", "pool": "web",
                 "rate_limit": {"requests_per_second": 0.01, "burst": 1}},
                {"path_prefix": "/dead", "pool": "dead"},
            ],
        }

    lb, backend = started(tmp_path_factory, "sec", config)
    yield lb, backend
    stopped(lb, backend)


def assert_security_headers(response) -> None:
    for name, value in SECURITY.items():
        assert response.header_all(name) == [value], (name, response)
    assert not response.has_header("Strict-Transport-Security"), response  # plain HTTP


def test_security_headers_on_a_proxied_response(security_lb):
    lb, backend = security_lb
    response = send(lb.port, "/app")
    assert response.status == 200 and response.header("X-Backend") == backend.name
    assert_security_headers(response)


def test_security_headers_on_fulcrums_own_404_429_and_502(security_lb):
    lb, _ = security_lb
    not_found = send(lb.port, "/nowhere")
    assert not_found.status == 404, not_found
    assert_security_headers(not_found)
    first = send(lb.port, "/limited")
    limited = send(lb.port, "/limited")
    assert (first.status, limited.status) == (200, 429)
    assert_security_headers(limited)
    bad_gateway = send(lb.port, "/dead")
    assert bad_gateway.status == 502, bad_gateway
    assert_security_headers(bad_gateway)


def test_a_header_the_backend_set_is_kept(security_lb):
    lb, _ = security_lb
    response = send(lb.port, "/app?header=X-Frame-Options:SAMEORIGIN&header=Referrer-Policy:no-referrer")
    assert response.status == 200
    assert response.header_all("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.header_all("Referrer-Policy") == ["no-referrer"]
    assert response.header_all("X-Content-Type-Options") == ["nosniff"]


def test_override_replaces_the_backends_header(security_lb):
    lb, _ = security_lb
    response = send(lb.port, "/override?header=X-Frame-Options:SAMEORIGIN")
    assert response.status == 200
    assert response.header_all("X-Frame-Options") == ["DENY"]
    assert_security_headers(response)  # the rest inherited from the global section


def test_security_headers_on_a_connection_level_rejection(security_lb):
    # config.yaml: "Every response, proxied or Fulcrum's own (404, 429, 503 ...), passes the
    # response side of every filter." A malformed request is answered by Fulcrum itself.
    lb, _ = security_lb
    with RawClient(lb.port) as client:
        client.send(b"GET /app HTTP/1.1\r\nHost: edge.test\r\nContent-Length: nope\r\n\r\n")
        rejected = client.read_response()
    assert rejected.status == 400, rejected
    assert_security_headers(rejected)
