# The models on their own: defaults, derived properties and value normalisation.
import pytest
from pydantic import ValidationError

from fulcrum.config.model import (
    AdminConfig,
    BackendConfig,
    Config,
    RouteConfig,
    annotation_at,
    parse_host_port,
)

ONE_POOL = {"web": {"backends": [{"url": "http://127.0.0.1:9001"}]}}


def test_defaults():
    config = Config(pools=ONE_POOL)
    assert config.listen_addr == ("127.0.0.1", 8080)
    assert config.admin.listen_addr == ("127.0.0.1", 9090)
    assert config.admin.token is None
    assert (config.log.format, config.log.level) == ("text", "info")
    t = config.timeouts
    assert (t.connect, t.response, t.client_header, t.client_idle, t.pool_idle, t.client_body) == (
        2.0, 30.0, 10.0, 60.0, 60.0, 60.0)
    lim = config.limits
    assert (lim.max_header_bytes, lim.max_header_count, lim.max_url_length, lim.max_body_size) == (
        65536, 100, 8192, 1 << 30)
    assert (config.upstream.max_idle_per_backend, config.upstream.max_requests_per_connection) == (64, 0)
    assert (config.buffers.high_water, config.buffers.low_water) == (262144, 65536)
    pool = config.pools["web"]
    assert (pool.strategy, pool.options, pool.backends[0].weight, pool.backends[0].id) == (
        "round_robin", {}, 1, None)
    assert config.routes == []


def test_defaults_are_not_shared():
    a, b = Config(pools=ONE_POOL), Config(pools=ONE_POOL)
    assert a.timeouts is not b.timeouts
    assert a.pools["web"].options is not b.pools["web"].options


@pytest.mark.parametrize("given, addr", [
    pytest.param("127.0.0.1:8080", ("127.0.0.1", 8080), id="ipv4"),
    pytest.param("0.0.0.0:1", ("0.0.0.0", 1), id="lowest-port"),
    pytest.param("localhost:65535", ("localhost", 65535), id="name-highest-port"),
    pytest.param("[::1]:8080", ("::1", 8080), id="ipv6"),
    pytest.param("[::]:80", ("::", 80), id="ipv6-any"),
])
def test_parse_host_port(given, addr):
    assert parse_host_port(given) == addr
    assert AdminConfig(listen=given).listen_addr == addr


@pytest.mark.parametrize("given", [
    pytest.param("8080", id="port-only"),
    pytest.param(":8080", id="no-host"),
    pytest.param("127.0.0.1", id="no-port"),
    pytest.param("127.0.0.1:65536", id="port-too-high"),
    pytest.param("127.0.0.1:http", id="port-name"),
    pytest.param("::1:8080", id="ipv6-without-brackets"),
])
def test_parse_host_port_rejects(given):
    with pytest.raises(ValueError, match="must be host:port"):
        parse_host_port(given)


@pytest.mark.parametrize("url, host, port", [
    pytest.param("http://127.0.0.1:9001", "127.0.0.1", 9001, id="explicit-port"),
    pytest.param("http://backend", "backend", 80, id="default-port"),
    pytest.param("http://backend:8080/", "backend", 8080, id="trailing-slash"),
    pytest.param("HTTP://Backend:81", "backend", 81, id="case"),
    pytest.param("http://[::1]:9001", "::1", 9001, id="ipv6"),
])
def test_backend_host_port(url, host, port):
    backend = BackendConfig(url=url)
    assert (backend.host, backend.port, backend.key) == (host, port, f"{host}:{port}")


def test_backend_key_prefers_id():
    assert BackendConfig(url="http://a:1", id="blue").key == "blue"


@pytest.mark.parametrize("host, stored", [
    pytest.param("API.Example.com", "api.example.com", id="lower-cased"),
    pytest.param("*.example.com", "*.example.com", id="wildcard"),
    pytest.param("localhost", "localhost", id="single-label"),
    pytest.param("[::1]", "[::1]", id="ipv6-literal"),
    pytest.param(None, None, id="any-host"),
])
def test_route_host(host, stored):
    assert RouteConfig(host=host, pool="web").host == stored


@pytest.mark.parametrize("host, message", [
    pytest.param("api.example.com:8080", "must not include a port", id="port"),
    pytest.param("a.*.example.com", "must be a host name", id="inner-wildcard"),
    pytest.param("*", "must be a host name", id="bare-star"),
    pytest.param("exa mple.com", "must be a host name", id="space"),
    pytest.param("[::1]:80", "bracketed IPv6 address without a port", id="ipv6-port"),
])
def test_route_host_rejects(host, message):
    with pytest.raises(ValidationError, match=message):
        RouteConfig(host=host, pool="web")


def test_route_header_names_are_lower_cased():
    route = RouteConfig(headers={"X-Canary": "1"}, pool="web")
    assert route.headers == {"x-canary": "1"}


def test_route_header_names_clash_case_insensitively():
    with pytest.raises(ValidationError, match="given twice"):
        RouteConfig(headers={"X-A": "1", "x-a": "2"}, pool="web")


def test_log_level_is_case_insensitive():
    assert Config(pools=ONE_POOL, log={"level": "WARNING"}).log.level == "warning"


def test_cross_check_runs_on_direct_construction():
    with pytest.raises(ValidationError, match="no pool named 'api'"):
        Config(pools=ONE_POOL, routes=[{"pool": "api"}])


@pytest.mark.parametrize("path, expected", [
    pytest.param(["timeouts", "connect"], float, id="duration-field"),
    pytest.param(["admin", "token"], str, id="optional-unwrapped"),
    pytest.param(["pools", "any", "backends", 0, "weight"], int, id="through-dict-and-list"),
    pytest.param(["routes", 0, "headers", "x-a"], str, id="dict-value"),
    pytest.param(["nope"], None, id="unknown"),
    pytest.param(["listen", "x"], None, id="below-scalar"),
])
def test_annotation_at(path, expected):
    found = annotation_at(path)
    assert (found[0] if found else None) is expected
