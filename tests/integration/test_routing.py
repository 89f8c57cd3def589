# Routing through a running Fulcrum: every pool is its own example backend, so the
# X-Backend header says which pool answered. Host (exact, wildcard, with a port),
# path prefix on whole segments, header matches, first match wins, and the 404.
from __future__ import annotations

import socket

import httpx
import pytest

from tests.support.processes import Backend, Fulcrum, pool_config

POOLS = ("canary", "exact", "wild", "v6", "api", "static")

# Order matters: the first route whose conditions all hold wins.
ROUTES = [
    {"headers": {"X-Canary": "1"}, "pool": "canary"},
    {"host": "api.example.com", "pool": "exact"},
    {"host": "*.example.com", "pool": "wild"},
    {"host": "[::1]", "pool": "v6"},
    {"path_prefix": "/api", "pool": "api"},
    {"path_prefix": "/static/", "pool": "static"},
]


class Routed:
    """A running Fulcrum with one single-backend pool per entry in POOLS."""

    def __init__(self, tmp_path) -> None:
        self.backends: dict[str, Backend] = {}
        self.proc: Fulcrum | None = None
        try:
            for pool in POOLS:
                self.backends[pool] = Backend(f"pool-{pool}")
            self.proc = Fulcrum({
                "pools": {pool: pool_config(b) for pool, b in self.backends.items()},
                "routes": ROUTES,
            }, tmp_path)
        except BaseException:
            self.close()
            raise
        self.client = httpx.Client(base_url=self.proc.url, trust_env=False)

    def get(self, host: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.client.get(path, headers={"Host": host, **(headers or {})})

    def close(self) -> int:
        code = 0
        if self.proc is not None:
            self.client.close()
            code = self.proc.stop()
        for b in self.backends.values():
            b.stop()
        return code


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    running = Routed(tmp_path_factory.mktemp("routing"))
    yield running
    code = running.close()
    assert code == 0, f"fulcrum exited with {code}:\n{running.proc.output}"


def answered_by(response: httpx.Response) -> str | None:
    """The pool whose backend answered, or None when Fulcrum answered itself."""
    name = response.headers.get("x-backend")
    if name is None:
        return None
    assert response.json()["backend"] == name
    return name.removeprefix("pool-")


@pytest.mark.parametrize(("host", "path", "headers", "pool"), [
    # exact host
    pytest.param("api.example.com", "/", {}, "exact", id="exact-host"),
    pytest.param("API.Example.COM", "/", {}, "exact", id="exact-host-case-insensitive"),
    pytest.param("api.example.com:8080", "/", {}, "exact", id="exact-host-with-port"),
    pytest.param("api.example.com", "/api/x", {}, "exact", id="exact-host-before-path-route"),
    # wildcard
    pytest.param("a.example.com", "/", {}, "wild", id="wildcard-one-label"),
    pytest.param("a.b.example.com", "/", {}, "wild", id="wildcard-two-labels"),
    pytest.param("a.example.com:443", "/", {}, "wild", id="wildcard-host-with-port"),
    pytest.param("A.EXAMPLE.com", "/", {}, "wild", id="wildcard-case-insensitive"),
    pytest.param("example.com", "/api", {}, "api", id="wildcard-not-apex"),
    pytest.param("badexample.com", "/api", {}, "api", id="wildcard-label-boundary"),
    # IPv6 literal host, with and without port
    pytest.param("[::1]", "/", {}, "v6", id="ipv6-host"),
    pytest.param("[::1]:8080", "/", {}, "v6", id="ipv6-host-with-port"),
    # path prefix, whole segments
    pytest.param("other.org", "/api", {}, "api", id="path-exact"),
    pytest.param("other.org", "/api/", {}, "api", id="path-trailing-slash"),
    pytest.param("other.org", "/api/x", {}, "api", id="path-sub-path"),
    pytest.param("other.org", "/api/x/y?z=1", {}, "api", id="path-deep-with-query"),
    pytest.param("other.org", "/api?q=1", {}, "api", id="path-query"),
    pytest.param("other.org", "/static/app.js", {}, "static", id="slash-prefix-sub-path"),
    # headers
    pytest.param("other.org", "/", {"X-Canary": "1"}, "canary", id="header-match"),
    pytest.param("other.org", "/", {"x-canary": "1"}, "canary", id="header-name-case-insensitive"),
    pytest.param("other.org", "/api", {"X-Canary": "0"}, "api", id="header-other-value-falls-through"),
    pytest.param("other.org", "/api", {"X-Canary": "11"}, "api", id="header-value-exact"),
    # first match wins
    pytest.param("api.example.com", "/api", {"X-Canary": "1"}, "canary", id="first-route-beats-exact-host"),
    pytest.param("a.example.com", "/api/x", {}, "wild", id="wildcard-beats-later-path-route"),
])
def test_route_picks_pool(routed, host, path, headers, pool):
    response = routed.get(host, path, headers)
    assert response.status_code == 200, response.text
    assert answered_by(response) == pool


@pytest.mark.parametrize(("host", "path"), [
    pytest.param("other.org", "/", id="root"),
    pytest.param("other.org", "/apiary", id="partial-segment"),
    pytest.param("other.org", "/ap", id="shorter-than-prefix"),
    pytest.param("other.org", "/v1/api", id="prefix-not-at-start"),
    pytest.param("other.org", "/static", id="slash-prefix-needs-the-slash"),
    pytest.param("example.com", "/", id="apex-of-wildcard"),
    pytest.param("[::2]", "/", id="other-ipv6"),
])
def test_no_matching_route_is_404_with_request_id(routed, host, path):
    response = routed.get(host, path)
    assert response.status_code == 404
    assert "x-backend" not in response.headers
    request_id = response.headers.get("x-request-id")
    assert request_id
    assert request_id in response.text
    assert "no route" in response.text


def test_404_keeps_the_clients_request_id(routed):
    response = routed.get("other.org", "/nowhere", {"X-Request-ID": "trace-42"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-42"
    assert "trace-42" in response.text


def test_404_request_ids_are_distinct(routed):
    ids = {routed.get("other.org", "/nowhere").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_connection_serves_again_after_a_404(routed):
    assert routed.get("other.org", "/").status_code == 404
    response = routed.get("other.org", "/api")
    assert response.status_code == 200
    assert answered_by(response) == "api"


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[bytes, bytes]]:
    """Send one raw request, return the status and the (lower-cased) response headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


@pytest.mark.parametrize(("request_", "pool"), [
    # RFC 9112 §3.2.2: a server MUST accept the absolute-form, and then MUST ignore the
    # Host header and use the authority of the request target; the path is the one in it.
    pytest.param(b"GET http://api.example.com/ HTTP/1.1\r\nHost: other.org\r\n\r\n",
                 "exact", id="authority-wins-over-host-header"),
    pytest.param(b"GET http://other.org/api/x HTTP/1.1\r\nHost: other.org\r\n\r\n",
                 "api", id="path-prefix-on-the-path-part"),
    pytest.param(b"GET http://a.example.com:8080/ HTTP/1.1\r\nHost: a.example.com:8080\r\n\r\n",
                 "wild", id="authority-with-port"),
])
def test_absolute_form_target_routes_by_its_authority_and_path(routed, request_, pool):
    status, headers = raw_exchange(routed.proc.port, request_)
    assert status == 200, (status, headers)
    assert headers.get(b"x-backend", b"").decode().removeprefix("pool-") == pool


def test_http10_request_without_host_routes_by_path(routed):
    status, headers = raw_exchange(routed.proc.port, b"GET /api/x HTTP/1.0\r\n\r\n")
    assert status == 200
    assert headers[b"x-backend"] == b"pool-api"
    status, headers = raw_exchange(routed.proc.port, b"GET /elsewhere HTTP/1.0\r\n\r\n")
    assert status == 404
    assert headers.get(b"x-request-id")


# -- route order and the single-pool default, each with its own Fulcrum ---------------------
def test_order_matters_broad_route_first_takes_everything(backends, fulcrum):
    broad, narrow = backends(2)
    proc = fulcrum({
        "pools": {"broad": pool_config(broad), "narrow": pool_config(narrow)},
        "routes": [{"path_prefix": "/", "pool": "broad"}, {"path_prefix": "/api", "pool": "narrow"}],
    })
    with httpx.Client(base_url=proc.url, trust_env=False) as client:
        for path in ("/", "/api", "/api/x"):
            assert client.get(path).headers["x-backend"] == broad.name


def test_order_matters_narrow_route_first(backends, fulcrum):
    broad, narrow = backends(2)
    proc = fulcrum({
        "pools": {"broad": pool_config(broad), "narrow": pool_config(narrow)},
        "routes": [{"path_prefix": "/api", "pool": "narrow"}, {"path_prefix": "/", "pool": "broad"}],
    })
    with httpx.Client(base_url=proc.url, trust_env=False) as client:
        assert client.get("/api/x").headers["x-backend"] == narrow.name
        assert client.get("/apiary").headers["x-backend"] == broad.name
        assert client.get("/").headers["x-backend"] == broad.name


def test_one_pool_no_routes_takes_everything(backends, fulcrum):
    b1, b2 = backends(2)
    proc = fulcrum({"pools": {"only": pool_config(b1, b2)}})
    seen = set()
    with httpx.Client(base_url=proc.url, trust_env=False) as client:
        for host, path in [("a.example.com", "/"), ("other.org", "/api/x?q=1"), ("[::1]:80", "/deep/path"),
                           ("localhost", "/static/x.css"), ("x", "/"), ("y", "/")]:
            response = client.get(path, headers={"Host": host})
            assert response.status_code == 200, (host, path, response.text)
            seen.add(response.headers["x-backend"])
    assert seen == {b1.name, b2.name}


def test_one_pool_with_routes_still_404s_when_none_match(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"only": pool_config(b1)}, "routes": [{"path_prefix": "/api", "pool": "only"}]})
    with httpx.Client(base_url=proc.url, trust_env=False) as client:
        assert client.get("/api/x").headers["x-backend"] == b1.name
        response = client.get("/other")
        assert response.status_code == 404
        assert response.headers.get("x-request-id")
