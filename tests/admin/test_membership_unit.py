"""runtime/membership.py without sockets: a provisioned pool takes new backends (with their
connection pool, breaker, outlier and health-check state), changes weights and enabled flags
at once, and removes a backend only once its requests in flight are done."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from fulcrum.config.load import load_config_from_dict
from fulcrum.runtime.provision import provision
from fulcrum.runtime import membership
from fulcrum.runtime.membership import BackendConflict, UnknownBackend

OFF = {"enabled": False}


class Request:
    client_ip = "127.0.0.1"

    def header(self, name: bytes) -> bytes | None:
        return None


def make_pool(strategy="round_robin", *, checks=False, n=2, **policies):
    pool = {"strategy": strategy, "backends": [{"url": f"http://127.0.0.1:{9001 + i}", "id": f"b{i + 1}"}
                                               for i in range(n)],
            "health_check": {"interval": "60s"} if checks else OFF, **policies}
    return provision(load_config_from_dict({"pools": {"web": pool}}), "<test>").pools["web"]


def picks(pool, n=12) -> Counter:
    return Counter(b.id if b else None for b in (pool.pick(Request()) for _ in range(n)))


def test_added_backend_is_picked_at_once_with_all_it_needs():
    pool = make_pool(outlier_detection={"consecutive_failures": 2})
    added = pool.add_backend("http://127.0.0.1:9003", weight=2, id="b3")
    assert [b.id for b in pool.backends] == ["b1", "b2", "b3"]
    assert picks(pool) == {"b1": 4, "b2": 4, "b3": 4}
    assert pool.connections["b3"].backend is added
    assert added.breaker is not None and added.breaker is not pool.backends[0].breaker
    assert pool.outliers.state("b3") is not None
    assert added.weight == 2 and added.available


def test_added_backend_may_start_drained():
    pool = make_pool()
    pool.add_backend("http://127.0.0.1:9003", id="b3", enabled=False)
    assert picks(pool) == {"b1": 6, "b2": 6}
    pool.set_enabled("b3", True)
    assert picks(pool) == {"b1": 4, "b2": 4, "b3": 4}


@pytest.mark.parametrize(("url", "backend_id"), [
    pytest.param("http://127.0.0.1:9001", None, id="same-address"),
    pytest.param("http://127.0.0.1:9009", "b1", id="same-id"),
])
def test_duplicates_are_refused_and_change_nothing(url, backend_id):
    pool = make_pool()
    with pytest.raises(BackendConflict, match="already has backend 'b1'"):
        pool.add_backend(url, id=backend_id)
    assert [b.id for b in pool.backends] == ["b1", "b2"] and set(pool.connections) == {"b1", "b2"}


def test_bad_url_is_a_value_error():
    with pytest.raises(ValueError, match="http://host:port"):
        make_pool().add_backend("ftp://127.0.0.1:1")


def test_weight_change_rebuilds_the_strategy():
    pool = make_pool("weighted_round_robin")
    pool.set_weight("b2", 3)
    assert picks(pool, 8) == {"b1": 2, "b2": 6}
    with pytest.raises(ValueError):
        pool.set_weight("b2", 0)


def test_drain_stops_new_picks_and_leaves_in_flight_alone():
    pool = make_pool()
    b1 = pool.backends[0]
    b1.in_flight = 2
    pool.drain("b1")
    assert picks(pool) == {"b2": 12}
    assert b1.in_flight == 2 and not b1.available and not b1.enabled


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(UnknownBackend, match=r"no backend 'nope' \(backends: b1, b2\)"):
        make_pool().drain("nope")


def test_remove_waits_for_in_flight_then_drops_everything(monkeypatch):
    monkeypatch.setattr(membership, "RETIRED_GRACE", 0.05)
    pool = make_pool(outlier_detection={"consecutive_failures": 2})
    b1 = pool.backends[0]

    async def scenario():
        b1.in_flight = 1
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, setattr, b1, "in_flight", 0)  # the last request finishes
        removing = asyncio.create_task(pool.remove_backend("b1", timeout=10))
        await asyncio.sleep(0.1)
        assert not removing.done() and not b1.enabled and b1 in pool.backends
        assert await removing is b1
        assert [b.id for b in pool.backends] == ["b2"] and pool.outliers.state("b1") is None
        assert pool.connections["b1"].closed  # kept briefly for a connect still under way
        await asyncio.sleep(0.1)
        assert "b1" not in pool.connections

    asyncio.run(scenario())
    assert picks(pool) == {"b2": 12}


def test_remove_gives_up_at_its_deadline_and_leaves_the_backend_drained():
    pool = make_pool()
    pool.backends[0].in_flight = 1
    with pytest.raises(BackendConflict, match="still has 1 requests in flight after 0.05s"):
        asyncio.run(pool.remove_backend("b1", timeout=0.05))
    assert [b.id for b in pool.backends] == ["b1", "b2"] and not pool.backends[0].enabled


def test_the_last_backend_stays():
    pool = make_pool(n=1)
    with pytest.raises(BackendConflict, match="last one of pool 'web'"):
        asyncio.run(pool.remove_backend("b1"))
    assert pool.backends[0].enabled  # refused before draining


def test_health_checks_follow_membership():
    pool = make_pool(checks=True)

    async def scenario():
        pool.start()
        pool.add_backend("http://127.0.0.1:9003", id="b3")
        assert set(pool.checker.states) == {"b1", "b2", "b3"}
        assert set(pool.checker._tasks) == {"b1", "b2", "b3"}
        task = pool.checker._tasks["b1"]
        await pool.remove_backend("b1")
        await asyncio.sleep(0)
        assert task.cancelled() and set(pool.checker._tasks) == {"b2", "b3"}
        assert "b1" not in pool.checker.states and [b.id for b in pool.checker.backends] == ["b2", "b3"]
        await pool.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("strategy", ["round_robin", "weighted_round_robin", "least_connections", "random",
                                      "power_of_two", "peak_ewma", "consistent_hash"])
def test_every_builtin_strategy_takes_a_new_member(strategy):
    pool = make_pool(strategy)
    pool.add_backend("http://127.0.0.1:9003", id="b3")
    pool.drain("b1")
    pool.drain("b2")
    assert picks(pool, 5) == {"b3": 5}
