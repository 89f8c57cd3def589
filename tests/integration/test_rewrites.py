"""The rewriting features through a real Fulcrum and a backend that records every request head
it receives (tests/support/fake_backend.py): strip_prefix, rewrite, request and response
headers with placeholders (global rules before the route's), redirects (status and Location,
no backend contacted, still logged), allow/deny on the client address resolved through
trusted_proxies and X-Forwarded-For, routes matching on methods and query parameters, the
example plugin (examples/plugins/tenant_header.py) loaded by dotted path, and `fulcrum check`
refusing a header Fulcrum owns.

One Fulcrum serves the whole module: each request carries its own X-Request-ID, which finds
its head among those the backend recorded; every route names itself in X-Route.
"""
from __future__ import annotations

import pytest
import yaml

from tests.support.edge_client import ready, send
from tests.support.fake_backend import FakeBackend, wait_until
from tests.support.processes import PLAIN, Fulcrum, run_cli

EXIT_CONFIG = 2
ANSWER = b"HTTP/1.1 200 OK\r\nServer: fake-backend\r\nX-From-Backend: 1\r\nContent-Length: 2\r\n\r\n"
TRUSTED = "127.0.0.1"      # the peer whose X-Forwarded-For is believed
UNTRUSTED = "127.0.0.2"    # another loopback client, whose X-Forwarded-For is ignored
REWRITE = {"pattern": "^/v1/(.*)", "replacement": "/v2/\\1"}


def route(path_prefix: str, name: str, **keys) -> dict:
    """A route to the one pool that tells the backend its name in X-Route."""
    own = keys.pop("request_headers", {})
    headers = {**own, "set": {"X-Route": name, **own.get("set", {})}}
    return {"path_prefix": path_prefix, "pool": "web", "request_headers": headers, **keys}


def config(backend: FakeBackend) -> dict:
    return {
        "pools": {"web": {**PLAIN, "backends": [{"url": backend.url}]}},
        "access_log": {"format": "text"},
        "trusted_proxies": [f"{TRUSTED}/32"],
        "request_headers": {"set": {"X-Global": "g", "X-Route": "global"}},
        "response_headers": {"set": {"X-Global-Out": "g"}},
        "filters": [{"use": "examples.plugins.tenant_header:TenantHeader", "options": {"default": "public"}}],
        "routes": [
            route("/api", "api", strip_prefix=True),
            route("/v1", "v1", rewrite=REWRITE),
            route("/both", "both", strip_prefix=True, rewrite=REWRITE),
            route("/hdr", "hdr",
                  request_headers={"set": {"X-Env": "prod", "X-Client": "{client_ip}", "X-Req": "id={request_id}",
                                           "X-Origin": "{scheme}://{host}", "X-Brace": "{{literal}}"},
                                   "add": {"X-Added": "one"}, "remove": ["X-Debug"]},
                  response_headers={"set": {"X-Served-By": "fulcrum {request_id}"}, "remove": ["Server"]}),
            {"path_prefix": "/old", "redirect": {"to": "https://example.com/new{path}", "status": 308}},
            {"path_prefix": "/here", "redirect": {"to": "https://{host}/there{path}"}},
            {"path_prefix": "/guarded", "allow": ["10.0.0.0/8"], "redirect": {"to": "/inside"}},
            route("/internal", "internal", allow=["10.0.0.0/8"]),
            route("/public", "public", deny=["10.0.0.0/8"]),
            route("/m", "m-post", methods=["POST"]),
            route("/m", "m-v2", query={"version": "2"}),
            route("/m", "m-get", methods=["GET", "HEAD"]),
            route("/", "default"),
        ],
    }


def answer(head: bytes, index: int) -> bytes:
    return ANSWER if head.startswith(b"HEAD ") else ANSWER + b"ok"


@pytest.fixture(scope="module")
def lb(tmp_path_factory):
    with FakeBackend(answer) as backend:
        proc = ready(Fulcrum(config(backend), tmp_path_factory.mktemp("rewrites")))
        try:
            yield proc, backend
        finally:
            code = proc.stop()
            assert code == 0, f"fulcrum exited with {code}:\n{proc.output}"


class Head:
    """A request head as the backend received it."""

    def __init__(self, raw: bytes) -> None:
        lines = raw.decode("latin-1").split("\r\n")[:-2]
        self.method, self.target, _ = lines[0].split(" ")
        self.headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        assert len(values) <= 1, (name, values)
        return values[0] if values else None


_counter = iter(range(1, 1_000_000))


def call(lb, path: str, method: str = "GET", headers: dict | None = None, source: str = TRUSTED):
    """Send one request with a fresh X-Request-ID; its response and the head the backend
    received for it (None when it reached no backend)."""
    proc, backend = lb
    rid = f"rw-{next(_counter)}"
    before = len(backend.requests)
    response = send(proc.port, path, method, {**(headers or {}), "X-Request-ID": rid}, source=source)
    marker = f"\r\nX-Request-ID: {rid}\r\n".encode()
    heads = [h for h in backend.requests[before:] if marker in h]
    return response, (Head(heads[0]) if heads else None), rid


# -- strip_prefix and rewrite --------------------------------------------------------------------
@pytest.mark.parametrize(("path", "sent"), [
    pytest.param("/api/users?x=1", "/users?x=1", id="strip-prefix-keeps-query"),
    pytest.param("/api", "/", id="strip-whole-path"),
    pytest.param("/api?x=1", "/?x=1", id="strip-bare-prefix-with-query"),
    pytest.param("/api/", "/", id="strip-trailing-slash"),
    pytest.param("/v1/users?id=3", "/v2/users?id=3", id="rewrite-with-group"),
    pytest.param("/v1", "/v1", id="rewrite-no-match-unchanged"),
    pytest.param("/both/v1/users", "/v2/users", id="strip-then-rewrite"),
    pytest.param("/apiary", "/apiary", id="prefix-matches-whole-segments"),
])
def test_target_sent_to_the_backend(lb, path, sent):
    response, head, _ = call(lb, path)
    assert response.status == 200, response
    assert head.target == sent


# -- request and response headers ----------------------------------------------------------------
def test_request_headers_with_placeholders(lb):
    response, head, rid = call(lb, "/hdr/x", headers={
        "X-Debug": "1", "x-debug": "2", "X-Env": "dev", "X-Forwarded-For": "10.9.8.7"})
    assert response.status == 200, response
    assert head.get_all("X-Debug") == []                 # removed, every field, any case
    assert head.get("X-Env") == "prod"                    # set replaces the client's
    assert head.get("X-Client") == "10.9.8.7"             # {client_ip} through trusted_proxies
    assert head.get("X-Req") == f"id={rid}"
    assert head.get("X-Origin") == "http://edge.test"
    assert head.get("X-Brace") == "{literal}"
    assert head.get("X-Added") == "one"
    assert head.get("X-Global") == "g"                    # the global rules apply too
    assert head.get("X-Route") == "hdr"                   # ... before the route's, which win
    # What Fulcrum owns is untouched by the rewrites.
    assert head.get("Host") == "edge.test"
    assert head.get("X-Request-ID") == rid
    assert head.get("X-Forwarded-For") == f"10.9.8.7, {TRUSTED}"


def test_response_headers(lb):
    response, _, rid = call(lb, "/hdr/x")
    assert not response.has_header("Server")
    assert response.header("X-Served-By") == f"fulcrum {rid}"
    assert response.header("X-From-Backend") == "1"
    assert response.header("X-Global-Out") == "g"
    assert response.body == b"ok"


def test_response_headers_on_fulcrums_own_answers(lb):
    response, head, _ = call(lb, "/internal/x", source=UNTRUSTED)
    assert response.status == 403 and head is None
    assert response.header("X-Global-Out") == "g"


def test_routes_without_rules_get_the_global_ones(lb):
    response, head, _ = call(lb, "/plain")
    assert head.get("X-Global") == "g" and head.get("X-Route") == "default"
    assert response.header("X-Global-Out") == "g" and response.header("Server") == "fake-backend"


# -- redirects -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "status", "location"), [
    pytest.param("/old/a?x=1", 308, "https://example.com/new/old/a?x=1", id="path-with-query"),
    pytest.param("/old", 308, "https://example.com/new/old", id="bare-prefix"),
    pytest.param("/here/x", 302, "https://edge.test/there/here/x", id="host-and-default-302"),
])
def test_redirect_answers_without_a_backend(lb, path, status, location):
    response, head, rid = call(lb, path)
    assert (response.status, response.header("Location")) == (status, location), response
    assert head is None
    assert response.header("X-Request-ID") == rid


def test_redirects_and_refusals_are_logged(lb):
    proc, _ = lb
    _, _, redirected = call(lb, "/old/logged")
    _, _, refused = call(lb, "/internal/logged", source=UNTRUSTED)
    _, _, later = call(lb, "/plain")
    assert wait_until(lambda: any(line.endswith(f"request_id={later}") for line in list(proc.lines)), 10)
    lines = list(proc.lines)
    assert any(" 308 " in line and line.endswith(f"request_id={redirected}") for line in lines), proc.output
    assert any(" 403 " in line and line.endswith(f"request_id={refused}") for line in lines), proc.output


# -- allow / deny --------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "source", "forwarded_for", "status"), [
    pytest.param("/internal/x", TRUSTED, "10.1.2.3", 200, id="allow-client-inside-via-trusted-proxy"),
    pytest.param("/internal/x", TRUSTED, "192.0.2.1", 403, id="allow-client-outside"),
    pytest.param("/internal/x", TRUSTED, None, 403, id="allow-peer-itself-outside"),
    pytest.param("/internal/x", UNTRUSTED, "10.1.2.3", 403, id="allow-untrusted-peer-cannot-claim"),
    pytest.param("/public/x", TRUSTED, "10.1.2.3", 403, id="deny-client-inside"),
    pytest.param("/public/x", TRUSTED, "192.0.2.1", 200, id="deny-client-outside"),
    pytest.param("/public/x", UNTRUSTED, "10.1.2.3", 200, id="deny-untrusted-peer-judged-itself"),
    pytest.param("/guarded/x", TRUSTED, "192.0.2.1", 403, id="allow-before-redirect"),
    pytest.param("/guarded/x", TRUSTED, "10.1.2.3", 302, id="allowed-then-redirected"),
])
def test_allow_and_deny(lb, path, source, forwarded_for, status):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response, head, _ = call(lb, path, headers=headers, source=source)
    assert response.status == status, response
    assert (head is not None) is (status == 200)


# -- methods and query parameters ----------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "route_name"), [
    pytest.param("POST", "/m", "m-post", id="method"),
    pytest.param("POST", "/m?version=2", "m-post", id="first-match-wins"),
    pytest.param("GET", "/m?version=2", "m-v2", id="query"),
    pytest.param("GET", "/m/x?a=1&version=2", "m-v2", id="query-among-others"),
    pytest.param("GET", "/m?version=3", "m-get", id="other-query-value"),
    pytest.param("GET", "/m?version=2&version=3", "m-v2", id="first-value-counts"),
    pytest.param("HEAD", "/m", "m-get", id="head-listed"),
    pytest.param("DELETE", "/m", "default", id="no-method-matches"),
])
def test_methods_and_query(lb, method, path, route_name):
    response, head, _ = call(lb, path, method=method)
    assert response.status == 200, response
    assert head.method == method and head.get("X-Route") == route_name


# -- the example plugin --------------------------------------------------------------------------
@pytest.mark.parametrize(("headers", "tenant"), [
    pytest.param({"Cookie": "a=1; tenant=acme", "X-Tenant": "spoofed"}, "acme", id="cookie-replaces-clients"),
    pytest.param({"X-Tenant-Hint": "Globex"}, "globex", id="hint-header"),
    pytest.param({}, "public", id="default"),
])
def test_example_plugin_sets_the_tenant_and_logs_it(lb, headers, tenant):
    proc, _ = lb
    response, head, rid = call(lb, "/api/orders", headers=headers)
    assert response.status == 200, response
    assert head.get_all("X-Tenant") == [tenant]
    assert head.target == "/orders"  # runs after the built-in rewrites
    assert wait_until(lambda: any(" tenant " in line and f"request_id={rid}" in line and f"tenant={tenant}" in line
                                  and "status=200" in line for line in list(proc.lines)), 10), proc.output


# -- fulcrum check -------------------------------------------------------------------------------
@pytest.mark.parametrize(("routes", "line"), [
    pytest.param([{"path_prefix": "/api", "pool": "web", "request_headers": {"set": {"Host": "x"}}}],
                 "routes[0].request_headers.set.Host: Fulcrum writes this header itself; it cannot be set or removed",
                 id="request-host"),
    pytest.param([{"path_prefix": "/api", "pool": "web", "response_headers": {"remove": ["Connection"]}}],
                 "routes[0].response_headers.remove[0]: a hop-by-hop header describes one connection; "
                 "it cannot be set or removed (got 'Connection')", id="response-connection"),
    pytest.param([{"path_prefix": "/old", "pool": "web", "redirect": {"to": "/new"}}],
                 "routes[0].redirect: a route with a redirect answers itself and takes no pool (got pool 'web')",
                 id="redirect-with-pool"),
])
def test_check_names_the_field(tmp_path, routes, line):
    path = tmp_path / "fulcrum.yaml"
    path.write_text(yaml.safe_dump({"pools": {"web": {"backends": [{"url": "http://127.0.0.1:9"}]}},
                                    "routes": routes}))
    result = run_cli("check", "--config", str(path))
    assert result.returncode == EXIT_CONFIG, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [f"{path}: {line}"]
