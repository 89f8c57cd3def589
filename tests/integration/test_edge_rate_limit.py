"""Rate limiting through real sockets and processes: a burst then 429s with Retry-After and
RateLimit headers while another client is unaffected; ``headers: false``; keys by header;
exempt networks; per-route limits against the shared global one; X-Forwarded-For believed
only from trusted proxies (right-most untrusted address); and the ``max_keys`` bound, whose
eviction gives a limited client a fresh bucket after a flood of distinct keys.

A second client is a second source address: the client socket is bound to 127.0.0.2 (all of
127.0.0.0/8 is loopback on Linux). Bursts are pipelined in one write on one connection, so
they reach the limiter back to back; refill rates are low enough that no token comes back
during a burst.
"""
from __future__ import annotations

import time

import pytest

from tests.support.edge_client import (
    OTHER_CLIENT,
    burst,
    json_lines,
    ready,
    request_bytes,
    send,
    statuses,
    wait_for_lines,
)
from tests.support.processes import pool_config, stats

RATELIMIT = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


@pytest.fixture
def edge(backends, fulcrum):
    """``edge(**sections)``: Fulcrum with those top-level sections in front of one backend."""

    def start(**sections):
        (backend,) = backends(1)
        config = {"pools": {"web": pool_config(backend)}, "admin": {"listen": "127.0.0.1:0"}, **sections}
        return ready(fulcrum(config)), backend

    return start


def has_ratelimit_headers(response) -> bool:
    return all(response.has_header(name) for name in RATELIMIT)


def with_xff(address: str, path: str = "/") -> bytes:
    return request_bytes(path, headers={"X-Forwarded-For": address})


# -- a burst, then 429s -------------------------------------------------------------------

def test_burst_of_40_gives_20_ok_then_429s_and_another_client_is_unaffected(edge):
    lb, backend = edge(rate_limit={"requests_per_second": 10, "burst": 20})
    responses = burst(lb.port, [request_bytes("/")] * 40)
    assert statuses(responses) == [200] * 20 + [429] * 20
    assert stats(backend)["requests"] == 20  # the refused ones never reached it

    for n, response in enumerate(responses[:20]):
        assert response.header("ratelimit-limit") == "20"
        assert response.header("ratelimit-remaining") == str(19 - n)
        assert int(response.header("ratelimit-reset")) >= 1
    for response in responses[20:]:
        assert int(response.header("retry-after")) >= 1
        assert response.header("ratelimit-limit") == "20"
        assert response.header("ratelimit-remaining") == "0"
        assert int(response.header("ratelimit-reset")) >= 1
        assert response.header("x-request-id")
        assert response.body.startswith(b"429 ")

    other = send(lb.port, source=OTHER_CLIENT)
    assert other.status == 200
    assert other.header("ratelimit-remaining") == "19"  # a full bucket of its own

    # Retry-After is honest: after it, the first client is served again.
    time.sleep(int(responses[-1].header("retry-after")))
    assert send(lb.port).status == 200


def test_headers_false_removes_ratelimit_headers_from_allowed_responses_only(edge):
    lb, _ = edge(rate_limit={"requests_per_second": 0.5, "burst": 2, "headers": False})
    first, second, refused = burst(lb.port, [request_bytes("/")] * 3)
    assert statuses([first, second, refused]) == [200, 200, 429]
    for response in (first, second):
        assert not any(response.has_header(name) for name in RATELIMIT), response
    assert has_ratelimit_headers(refused), refused
    assert refused.header("ratelimit-limit") == "2" and refused.header("ratelimit-remaining") == "0"
    assert int(refused.header("retry-after")) >= 1


def test_header_key_limits_each_key_separately_and_clients_without_it_by_address(edge):
    lb, _ = edge(rate_limit={"requests_per_second": 0.5, "burst": 2, "key": "header:X-Api-Key"})
    alpha = request_bytes("/", headers={"X-Api-Key": "alpha"})
    beta = request_bytes("/", headers={"x-api-key": "beta"})
    anonymous = request_bytes("/")
    # One connection, one address, three keys.
    got = statuses(burst(lb.port, [alpha] * 3 + [beta] * 3 + [anonymous] * 3))
    assert got == [200, 200, 429] * 3
    # Without the header, the address is the key: another address has its own bucket ...
    assert statuses(burst(lb.port, [anonymous] * 3, source=OTHER_CLIENT)) == [200, 200, 429]
    # ... and with the header, the address does not matter: alpha is spent everywhere.
    assert send(lb.port, headers={"X-Api-Key": "alpha"}, source=OTHER_CLIENT).status == 429


def test_exempt_networks_are_never_limited(edge):
    lb, _ = edge(rate_limit={"requests_per_second": 0.5, "burst": 2, "exempt": ["127.0.0.2/32"]})
    exempt = burst(lb.port, [request_bytes("/")] * 10, source=OTHER_CLIENT)
    assert statuses(exempt) == [200] * 10
    assert not any(r.has_header("ratelimit-limit") for r in exempt)
    assert statuses(burst(lb.port, [request_bytes("/")] * 3)) == [200, 200, 429]


def test_per_route_limits_differ_from_the_shared_global_one(edge):
    lb, backend = edge(
        rate_limit={"requests_per_second": 0.5, "burst": 5},
        routes=[
            {"path_prefix": "/strict", "pool": "web", "rate_limit": {"burst": 2}},
            {"path_prefix": "/open", "pool": "web", "rate_limit": {"enabled": False}},
            {"path_prefix": "/a", "pool": "web"},
            {"path_prefix": "/b", "pool": "web"},
        ],
    )
    strict = burst(lb.port, [request_bytes("/strict")] * 3)
    assert statuses(strict) == [200, 200, 429]
    assert {r.header("ratelimit-limit") for r in strict} == {"2"}

    unlimited = burst(lb.port, [request_bytes("/open")] * 8)
    assert statuses(unlimited) == [200] * 8
    assert not any(r.has_header("ratelimit-limit") for r in unlimited)

    # /a and /b have no section: they share the global filter and so one bucket of 5, which
    # the route with its own limit did not touch.
    shared = burst(lb.port, [request_bytes("/a")] * 3 + [request_bytes("/b")] * 3)
    assert statuses(shared) == [200] * 5 + [429]
    assert [r.header("ratelimit-remaining") for r in shared] == ["4", "3", "2", "1", "0", "0"]
    assert {r.header("ratelimit-limit") for r in shared} == {"5"}
    assert stats(backend)["requests"] == 2 + 8 + 5


# -- which client: trusted proxies ------------------------------------------------------------

def test_spoofed_x_forwarded_for_from_an_untrusted_peer_is_ignored(edge):
    lb, _ = edge(rate_limit={"requests_per_second": 0.5, "burst": 3, "trusted_proxies": ["10.0.0.0/8"]})
    rotating = [with_xff(f"203.0.113.{i}") for i in range(1, 7)]
    assert statuses(burst(lb.port, rotating)) == [200, 200, 200, 429, 429, 429]


@pytest.mark.parametrize("where", ["top-level", "rate_limit"])
def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client(edge, tmp_path, where):
    # The top-level trusted_proxies name the client for everything (the log too); a list in the
    # rate_limit section overrides it for the limiter only: the log keeps the peer then.
    log = tmp_path / "access.log"
    trusted = ["127.0.0.1/32", "10.0.0.0/8"]
    limit = {"requests_per_second": 0.5, "burst": 2}
    sections = ({"trusted_proxies": trusted, "rate_limit": limit} if where == "top-level"
                else {"rate_limit": {**limit, "trusted_proxies": trusted}})
    lb, _ = edge(access_log={"output": str(log), "format": "json"}, **sections)
    requests = [
        with_xff("203.0.113.10"),
        with_xff("203.0.113.10, 10.0.0.7"),           # through one more trusted hop: same client
        with_xff("198.51.100.99, 203.0.113.10"),      # a spoofed left part changes nothing
        with_xff("203.0.113.11"),                     # another client behind the same proxy
        with_xff("203.0.113.11"),
        with_xff("203.0.113.11"),
        request_bytes("/"),                           # no header: the proxy itself
    ]
    assert statuses(burst(lb.port, requests)) == [200, 200, 429, 200, 200, 429, 200]
    wait_for_lines(log, len(requests))
    lines = json_lines(log)
    clients = ["203.0.113.10"] * 3 + ["203.0.113.11"] * 3 + ["127.0.0.1"]
    assert [line["client"] for line in lines] == (clients if where == "top-level" else ["127.0.0.1"] * 7)
    assert [line["rate_limit"] for line in lines] == ["allowed", "allowed", "limited",
                                                       "allowed", "allowed", "limited", "allowed"]


# -- bounded memory ---------------------------------------------------------------------------------

def test_eviction_past_max_keys_gives_a_limited_client_a_fresh_bucket(edge):
    # A refill time of 200 s: no bucket expires idle during the test, so only the max_keys
    # bound can make the table forget a client.
    lb, _ = edge(rate_limit={"requests_per_second": 0.01, "burst": 2, "max_keys": 50,
                             "trusted_proxies": ["127.0.0.1/32"]})
    victim = with_xff("203.0.113.7")
    assert statuses(burst(lb.port, [victim] * 3)) == [200, 200, 429]

    # 40 other clients: 41 keys fit in 50, so the victim is remembered and still limited.
    few = [with_xff(f"10.1.0.{i}") for i in range(1, 41)]
    assert statuses(burst(lb.port, few)) == [200] * 40
    assert send(lb.port, headers={"X-Forwarded-For": "203.0.113.7"}).status == 429

    # A flood of 60 more distinct clients pushes the least recently used keys out, the
    # victim's among them: its next request starts a fresh bucket (the documented price).
    flood = [with_xff(f"10.2.{i // 250}.{i % 250 + 1}") for i in range(60)]
    assert statuses(burst(lb.port, flood)) == [200] * 60
    fresh = send(lb.port, headers={"X-Forwarded-For": "203.0.113.7"})
    assert fresh.status == 200
    assert fresh.header("ratelimit-remaining") == "1"
