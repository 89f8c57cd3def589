# Consistent hashing: stable mapping, minimal movement when a backend joins, only the
# down owner's keys move, bounded load, header/cookie keys, options validation.
from __future__ import annotations

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from fulcrum.balancing.consistent_hash import ConsistentHash, cookie_value, stable_hash

ALGORITHMS = [pytest.param("ring", id="ring"), pytest.param("maglev", id="maglev")]


@pytest.fixture(scope="module")
def ips() -> list[str]:
    return [f"198.51.{i // 256}.{i % 256}" for i in range(10_000)]


def owners(ch: ConsistentHash, request_factory, ips: list[str]) -> list[str]:
    return [ch.pick(request_factory(ip)).id for ip in ips]


def test_stable_hash_is_fixed_across_processes():
    # blake2b, not hash(): every worker process and every release maps keys alike.
    assert stable_hash(b"fulcrum") == 0x07133C97058CE637
    assert stable_hash(b"a") != stable_hash(b"b")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_same_key_same_backend(backends_factory, request_factory, ips, algorithm):
    opts = {"algorithm": algorithm}
    first = owners(ConsistentHash(backends_factory(5), options=opts), request_factory, ips[:500])
    again = ConsistentHash(backends_factory(5), options=opts)
    assert owners(again, request_factory, ips[:500]) == first
    assert owners(again, request_factory, ips[:500]) == first
    assert len(set(first)) == 5


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("n", [pytest.param(5, id="5th"), pytest.param(10, id="10th")])
def test_adding_nth_backend_moves_about_one_nth(backends_factory, request_factory, ips, algorithm, n):
    opts = {"algorithm": algorithm}
    before = owners(ConsistentHash(backends_factory(n - 1), options=opts), request_factory, ips)
    after = owners(ConsistentHash(backends_factory(n), options=opts), request_factory, ips)
    moved = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(moved) <= 1.3 * len(ips) / n
    assert len(moved) >= 0.7 * len(ips) / n  # the new one does get its share
    if algorithm == "ring":
        assert all(b == f"b{n - 1}" for _, b in moved)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unavailable_owner_remaps_only_its_keys(backends_factory, request_factory, ips, algorithm):
    backends = backends_factory(5)
    ch = ConsistentHash(backends, options={"algorithm": algorithm})
    before = owners(ch, request_factory, ips)
    backends[2].available = False
    during = owners(ch, request_factory, ips)
    for a, b in zip(before, during):
        assert b == a if a != "b2" else b != "b2"
    # b2's keys spread over the others instead of piling onto one neighbour.
    spread = Counter(b for a, b in zip(before, during) if a == "b2")
    assert len(spread) == 4 and max(spread.values()) < 0.5 * sum(spread.values())
    backends[2].available = True
    assert owners(ch, request_factory, ips) == before


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_weight_gives_more_keys(backends_factory, request_factory, ips, algorithm):
    ch = ConsistentHash(backends_factory([1, 3]), options={"algorithm": algorithm})
    counts = Counter(owners(ch, request_factory, ips))
    assert counts["b0"] / len(ips) == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_weight_change_rebuilds(backends_factory, request_factory, ips, algorithm):
    backends = backends_factory([1, 1])
    ch = ConsistentHash(backends, options={"algorithm": algorithm})
    backends[1].weight = 3
    counts = Counter(owners(ch, request_factory, ips))
    assert counts["b0"] / len(ips) == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("weights", "load_factor"),
    [
        pytest.param([1, 1, 1, 1], 1.25, id="4-equal"),
        pytest.param([1] * 7, 1.1, id="7-equal-tight"),
        pytest.param([1, 1, 1, 1], 2.0, id="4-equal-loose"),
    ],
)
def test_bounded_load_when_one_key_is_hot(backends_factory, request_factory, algorithm, weights, load_factor):
    backends = backends_factory(weights)
    ch = ConsistentHash(backends, options={"algorithm": algorithm, "load_factor": load_factor})
    hot = request_factory("203.0.113.7")
    owner = ch.pick(hot)
    n = len(backends)
    for _ in range(500):
        ch.pick(hot).in_flight += 1
        total = sum(b.in_flight for b in backends)
        assert max(b.in_flight for b in backends) <= math.ceil(load_factor * total / n)
    assert owner.in_flight == max(b.in_flight for b in backends)
    for b in backends:  # all drained: the key goes home
        b.in_flight = 0
    assert ch.pick(hot) is owner


def test_bounded_load_is_weighted(backends_factory, request_factory, ips):
    # A hot key owned by the weight-1 backend: it may carry about a quarter of
    # the load (x load_factor), not half as an unweighted bound would allow.
    backends = backends_factory([1, 3])
    ch = ConsistentHash(backends, options={"load_factor": 1.25})
    hot = next(r for r in map(request_factory, ips) if ch.pick(r) is backends[0])
    for _ in range(400):
        ch.pick(hot).in_flight += 1
    assert 100 <= backends[0].in_flight <= math.ceil(1.25 * 400 / 4)


@pytest.mark.parametrize(
    ("key", "requests", "same"),
    [
        pytest.param(
            "header:X-User",
            [("10.0.0.1", {b"x-user": b"alice"}), ("10.9.9.9", {b"x-user": b"alice"})],
            True,
            id="header-overrides-ip",
        ),
        pytest.param(
            "cookie:session",
            [
                ("10.0.0.1", {b"cookie": b"theme=dark; session=abc123"}),
                ("10.9.9.9", {b"cookie": b'session="abc123"'}),
            ],
            True,
            id="cookie-overrides-ip",
        ),
    ],
)
def test_request_keys(backends_factory, request_factory, key, requests, same):
    ch = ConsistentHash(backends_factory(8), options={"key": key})
    picked = {ch.pick(request_factory(ip, h)).id for ip, h in requests}
    assert (len(picked) == 1) is same


@pytest.mark.parametrize(
    ("key", "headers", "hashed"),
    [
        pytest.param("client_ip", {b"x-user": b"u"}, b"10.1.2.3", id="client-ip"),
        pytest.param("header:X-User", {b"x-user": b"u1"}, b"u1", id="header-any-case"),
        pytest.param("header:X-User", {}, b"10.1.2.3", id="missing-header-falls-back"),
        pytest.param("header:X-User", {b"x-user": b""}, b"10.1.2.3", id="empty-header-falls-back"),
        pytest.param("cookie:sid", {b"cookie": b"a=1; sid=xyz"}, b"xyz", id="cookie"),
        pytest.param("cookie:sid", {b"cookie": b"xsid=1"}, b"10.1.2.3", id="cookie-name-must-match"),
        pytest.param("cookie:sid", {}, b"10.1.2.3", id="no-cookie-header"),
    ],
)
def test_key_extraction(backends_factory, request_factory, key, headers, hashed):
    ch = ConsistentHash(backends_factory(2), options={"key": key})
    assert ch.key(request_factory("10.1.2.3", headers)) == hashed


def test_header_key_spreads_users(backends_factory, request_factory):
    ch = ConsistentHash(backends_factory(4), options={"key": "header:x-user"})
    picked = Counter(
        ch.pick(request_factory("10.0.0.1", {b"x-user": f"user{i}".encode()})).id for i in range(2000)
    )
    assert len(picked) == 4 and min(picked.values()) > 300


@pytest.mark.parametrize(
    ("header", "name", "value"),
    [
        pytest.param(b"sid=1", b"sid", b"1", id="only"),
        pytest.param(b"a=b;sid=2 ; c=d", b"sid", b"2", id="middle-no-spaces"),
        pytest.param(b'sid="q v"', b"sid", b"q v", id="quoted"),
        pytest.param(b"SID=1", b"sid", None, id="case-sensitive"),
        pytest.param(b"sid", b"sid", None, id="no-equals"),
        pytest.param(None, b"sid", None, id="no-header"),
        pytest.param(b"a=sid", b"sid", None, id="name-only-in-value"),
    ],
)
def test_cookie_value(header, name, value):
    assert cookie_value(header, name) == value


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"key": "url"}, "must be 'client_ip'", id="unknown-key"),
        pytest.param({"key": "header:"}, "must be 'client_ip'", id="empty-header-name"),
        pytest.param({"key": "header:X User"}, "must be 'client_ip'", id="bad-header-name"),
        pytest.param({"key": "cookie"}, "must be 'client_ip'", id="cookie-without-name"),
        pytest.param({"algorithm": "rendezvous"}, "'ring' or 'maglev'", id="unknown-algorithm"),
        pytest.param({"load_factor": 1.0}, "greater than 1", id="load-factor-one"),
        pytest.param({"load_factor": float("inf")}, "finite", id="load-factor-inf"),
        pytest.param({"replicas": 0}, "greater than or equal to 1", id="no-replicas"),
        pytest.param({"table_size": 65536}, "must be a prime", id="table-not-prime"),
        pytest.param({"hash": "md5"}, "Extra inputs are not permitted", id="extra-field"),
    ],
)
def test_options_rejected(options, message):
    with pytest.raises(ValidationError, match=message):
        ConsistentHash.Options(**options)


def test_options_defaults_and_instance(backends_factory):
    opts = ConsistentHash.Options()
    assert (opts.key, opts.algorithm, opts.load_factor, opts.replicas, opts.table_size) == (
        "client_ip", "ring", 1.25, 160, 65537,
    )
    ch = ConsistentHash(backends_factory(2), options=ConsistentHash.Options(algorithm="maglev", table_size=101))
    assert ch.options.table_size == 101
    assert ConsistentHash(backends_factory(2)).options == opts


def test_table_smaller_than_pool_rejected(backends_factory):
    with pytest.raises(ValueError, match="table_size"):
        ConsistentHash(backends_factory(7), options={"algorithm": "maglev", "table_size": 5})


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_none_when_none_available(backends_factory, request_factory, algorithm):
    backends = backends_factory(3)
    for b in backends:
        b.available = False
    assert ConsistentHash(backends, options={"algorithm": algorithm}).pick(request_factory()) is None
    assert ConsistentHash([], options={"algorithm": algorithm}).pick(request_factory()) is None
