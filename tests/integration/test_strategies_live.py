# Every built-in strategy, and a user strategy named by dotted path, balancing real
# example backends behind a running Fulcrum. Who answered is read from X-Backend.
from __future__ import annotations

import collections
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml

from tests.support.processes import ROOT, Backend, pool_config, run_cli

BUILTIN = ["round_robin", "weighted_round_robin", "least_connections", "random",
           "power_of_two", "peak_ewma", "consistent_hash"]


@pytest.fixture(scope="module")
def three():
    """Three fast example backends shared by the tests of this module."""
    started: list[Backend] = []
    try:
        for name in ("s1", "s2", "s3"):
            started.append(Backend(name))
        yield started
    finally:
        for b in started:
            b.stop()


def one_pool(*backends: Backend, strategy: str, **extra) -> dict:
    return {"pools": {"web": pool_config(*backends, strategy=strategy, **extra)}}


def send(url: str, n: int, headers: dict[str, str] | None = None, path: str = "/") -> collections.Counter:
    """n sequential requests on one keep-alive connection; counts per answering backend."""
    counts: collections.Counter = collections.Counter()
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        for _ in range(n):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.text
            counts[response.headers["x-backend"]] += 1
    return counts


def send_concurrently(url: str, n: int, clients: int, path: str = "/") -> collections.Counter:
    """n requests spread over ``clients`` concurrent keep-alive connections."""
    share = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        parts = list(pool.map(lambda k: send(url, k, path=path), share))
    return sum(parts, collections.Counter())


def stats(backend: Backend, reset: bool = False) -> dict:
    return httpx.get(f"{backend.url}/_stats", params={"reset": "1"} if reset else None, trust_env=False).json()


def wait_until(predicate, what: str, deadline: float = 10.0) -> None:
    """Poll ``predicate`` (synchronisation only; nothing is asserted about time)."""
    stop = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > stop:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# -- every built-in: 300 requests, all 200, every backend used ---------------------------
# Sequential requests on one connection, so the outcome does not depend on scheduling.
@pytest.mark.parametrize("strategy", [pytest.param(s, id=s) for s in BUILTIN if s != "consistent_hash"])
def test_builtin_strategy_uses_every_backend(three, fulcrum, strategy):
    proc = fulcrum(one_pool(*three, strategy=strategy))
    counts = send(proc.url, 300)
    assert sum(counts.values()) == 300
    assert set(counts) == {b.name for b in three}, counts


@pytest.mark.parametrize("strategy", [
    pytest.param("round_robin", id="round_robin"),
    pytest.param("weighted_round_robin", id="weighted_round_robin-equal-weights"),
])
def test_round_robin_is_exactly_even(three, fulcrum, strategy):
    proc = fulcrum(one_pool(*three, strategy=strategy))
    counts = send(proc.url, 300)
    assert counts == {b.name: 100 for b in three}


def test_round_robin_ignores_weights(three, fulcrum):
    config = one_pool(*three, strategy="round_robin")
    config["pools"]["web"]["backends"][0]["weight"] = 5
    proc = fulcrum(config)
    assert send(proc.url, 300) == {b.name: 100 for b in three}


def test_weighted_round_robin_1_to_3_is_exactly_25_75(three, fulcrum):
    light, heavy = three[:2]
    config = one_pool(light, heavy, strategy="weighted_round_robin")
    config["pools"]["web"]["backends"][1]["weight"] = 3
    proc = fulcrum(config)
    counts = send(proc.url, 400)
    assert counts == {light.name: 100, heavy.name: 300}


# -- consistent_hash -----------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    pytest.param({}, id="default-client-ip"),
    pytest.param({"algorithm": "maglev"}, id="maglev-client-ip"),
    pytest.param({"key": "header:X-User"}, id="header-key-without-header"),
])
def test_consistent_hash_one_key_one_backend(three, fulcrum, options):
    proc = fulcrum(one_pool(*three, strategy="consistent_hash", options=options))
    counts = send(proc.url, 300)
    assert sum(counts.values()) == 300
    assert len(counts) == 1, counts


@pytest.mark.parametrize(("options", "carry"), [
    pytest.param({"key": "header:X-User"}, "header", id="header-ring"),
    pytest.param({"key": "header:x-user", "algorithm": "maglev"}, "header", id="header-maglev"),
    pytest.param({"key": "cookie:user"}, "cookie", id="cookie-ring"),
])
def test_consistent_hash_users_spread_and_stick(three, fulcrum, options, carry):
    proc = fulcrum(one_pool(*three, strategy="consistent_hash", options=options))
    placed: dict[str, set[str]] = collections.defaultdict(set)
    with httpx.Client(base_url=proc.url, trust_env=False) as client:
        for rnd in range(5):
            for user in range(60):
                key = f"user-{user}"
                headers = {"X-User": key} if carry == "header" else {"Cookie": f"theme=dark; user={key}"}
                response = client.get(f"/r{rnd}", headers=headers)
                assert response.status_code == 200
                placed[key].add(response.headers["x-backend"])
    assert all(len(where) == 1 for where in placed.values()), placed
    per_backend = collections.Counter(next(iter(where)) for where in placed.values())
    assert set(per_backend) == {b.name for b in three}, per_backend


def test_consistent_hash_placement_survives_a_restart(three, fulcrum):
    """The hash is stable across processes: a second Fulcrum places users the same way."""
    config = one_pool(*three, strategy="consistent_hash", options={"key": "header:X-User"})
    placements = []
    for _ in range(2):
        proc = fulcrum(config)
        with httpx.Client(base_url=proc.url, trust_env=False) as client:
            placements.append({u: client.get("/", headers={"X-User": f"u{u}"}).headers["x-backend"]
                               for u in range(30)})
        assert proc.stop() == 0
    assert placements[0] == placements[1]


# -- latency-aware strategies against one slow backend ---------------------------------------
@pytest.fixture(scope="module")
def slow_and_fast():
    """One backend answering after 50 ms and two fast ones."""
    started: list[Backend] = []
    try:
        started.append(Backend("slow", "--latency", "0.05"))
        started.append(Backend("fast1"))
        started.append(Backend("fast2"))
        yield started
    finally:
        for b in started:
            b.stop()


@pytest.mark.parametrize("strategy", [
    pytest.param("peak_ewma", id="peak_ewma"),
    pytest.param("least_connections", id="least_connections"),
    pytest.param("power_of_two", id="power_of_two"),
])
def test_slow_backend_gets_clearly_less_than_its_share(slow_and_fast, fulcrum, strategy):
    proc = fulcrum(one_pool(*slow_and_fast, strategy=strategy))
    counts = send_concurrently(proc.url, 300, clients=8)
    assert sum(counts.values()) == 300
    # An even split would give it 100; "clearly less" is under 60 % of that.
    assert counts["slow"] < 60, counts
    assert counts["fast1"] > 0 and counts["fast2"] > 0, counts


def test_least_connections_avoids_backends_holding_requests(three, fulcrum):
    """Two requests that never finish (?hang=1) hold two backends; new ones go to the third."""
    proc = fulcrum(one_pool(*three, strategy="least_connections"))
    for b in three:
        stats(b, reset=True)
    parked = []
    try:
        for n in (1, 2):
            sock = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
            sock.sendall(b"GET /?hang=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            parked.append(sock)
            wait_until(lambda: sum(stats(b)["requests"] for b in three) == n, f"{n} parked request(s)")
        holding = {b.name for b in three if stats(b)["requests"] == 1}
        assert len(holding) == 2  # ties rotate, so the two parked requests went to different backends
        (idle,) = {b.name for b in three} - holding
        assert send(proc.url, 60) == {idle: 60}
    finally:
        for sock in parked:  # reset, not FIN: a FIN is a half-close and Fulcrum would wait for the answer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


# -- a user strategy named by dotted path ------------------------------------------------------
@pytest.mark.parametrize("path", [
    pytest.param("tests.support.custom_strategy:LastBackend", id="module-colon-class"),
    pytest.param("tests.support.custom_strategy.LastBackend", id="module-dot-class"),
])
def test_user_strategy_by_dotted_path(three, fulcrum, path):
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = fulcrum(one_pool(*three, strategy=path), env=env)
    counts = send_concurrently(proc.url, 300, clients=4)
    assert counts == {three[-1].name: 300}


def test_check_resolves_user_strategy_and_rejects_non_strategies(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"pools": {"web": {
        "strategy": "tests.support.custom_strategy:LastBackend",
        "backends": [{"url": "http://127.0.0.1:9001"}]}}}))
    result = run_cli("check", "--config", str(good), env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "last_backend" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"pools": {"web": {
        "strategy": "tests.support.custom_strategy:NotAStrategy",
        "backends": [{"url": "http://127.0.0.1:9001"}]}}}))
    result = run_cli("check", "--config", str(bad), env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: pools.web.strategy: "), lines
    assert "not a Strategy subclass" in lines[0]
