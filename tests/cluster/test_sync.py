"""The membership sync between a supervisor's runtime and a worker's, both provisioned from
one config as the real processes do: whatever the supervisor's pools look like after admin
changes and health transitions, applying its ``membership`` makes the worker's look the same,
and applying it again changes nothing. A passing check in the supervisor lifts the ejections and
open breakers the worker had before it, never one that began after it."""
from __future__ import annotations

import asyncio
import json
import time

from fulcrum.cluster import sync
from fulcrum.config.load import load_config_from_dict
from fulcrum.runtime.provision import provision
from fulcrum.health.state import Health

CONFIG = {
    "pools": {"web": {
        "backends": [{"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9002", "weight": 2}],
        "health_check": {"enabled": True, "path": "/health", "slow_start": "10s"},
    }},
}


def pair():
    config = load_config_from_dict(CONFIG)
    return provision(config), provision(config)


def view(runtime) -> list[tuple]:
    pool = runtime.pools["web"]
    return [(b.id, b.url, b.weight, b.enabled, b.healthy, b.available) for b in pool.backends]


def roundtrip(supervisor, worker) -> dict:
    # Through JSON, as on the channel.
    pools = json.loads(json.dumps(sync.membership(supervisor)))
    sync.apply(worker, pools)
    return pools


def test_admin_changes_are_reconciled_and_applying_twice_changes_nothing():
    async def run():
        supervisor, worker = pair()
        pool = supervisor.pools["web"]
        pool.add_backend("http://127.0.0.1:9003", weight=5, id="third")
        pool.set_weight("127.0.0.1:9001", 3)
        pool.drain("127.0.0.1:9002")
        roundtrip(supervisor, worker)
        assert view(worker) == view(supervisor)
        before = view(worker)
        strategy = worker.pools["web"].strategy
        roundtrip(supervisor, worker)
        assert view(worker) == before
        assert worker.pools["web"].strategy is strategy  # nothing rebuilt for a no-op

    asyncio.run(run())


def test_a_removed_backend_leaves_the_worker_once_its_requests_are_done():
    async def run():
        supervisor, worker = pair()
        supervisor.pools["web"].add_backend("http://127.0.0.1:9003")
        roundtrip(supervisor, worker)
        busy = worker.pools["web"].backend("127.0.0.1:9001")
        busy.in_flight = 1
        await supervisor.pools["web"].remove_backend("127.0.0.1:9001", timeout=0)
        roundtrip(supervisor, worker)
        await asyncio.sleep(0.2)
        assert "127.0.0.1:9001" in [b.id for b in worker.pools["web"].backends]  # still busy
        assert not busy.enabled  # but drained
        busy.in_flight = 0
        await asyncio.sleep(0.2)
        assert [b.id for b in worker.pools["web"].backends] == ["127.0.0.1:9002", "127.0.0.1:9003"]

    asyncio.run(run())


def test_health_transitions_reach_the_worker_with_slow_start():
    async def run():
        supervisor, worker = pair()
        pool = supervisor.pools["web"]
        state = pool.checker.state("127.0.0.1:9001")
        now = time.monotonic()
        for _ in range(3):
            transition = state.record(False, now, "status 503")
        pool.health_changed(pool.backend("127.0.0.1:9001"), transition)
        roundtrip(supervisor, worker)
        backend = worker.pools["web"].backend("127.0.0.1:9001")
        assert (backend.healthy, backend.available) == (False, False)
        assert worker.pools["web"].checker.state(backend.id).last_reason == "status 503"

        for _ in range(2):
            transition = state.record(True, time.monotonic(), "status 200")
        assert transition.new is Health.HEALTHY
        pool.health_changed(pool.backend("127.0.0.1:9001"), transition)
        roundtrip(supervisor, worker)
        assert backend.healthy and backend.available
        assert 0.1 <= backend.ramp < 1.0  # slow start ramps in the worker too

    asyncio.run(run())


def test_a_pool_the_worker_does_not_have_yet_is_skipped():
    async def run():
        supervisor, worker = pair()
        sync.apply(worker, {"api": [{"id": "x", "url": "http://127.0.0.1:1", "weight": 1, "enabled": True,
                                     "health": None}]})
        assert list(worker.pools) == ["web"]

    asyncio.run(run())


def fail_in_worker(worker, backend_id: str):
    """Five gateway failures on the worker's own traffic (the defaults eject and open at 5)."""
    pool = worker.pools["web"]
    backend = pool.backend(backend_id)
    for _ in range(5):
        if backend.breaker.state.value == "half_open":
            assert backend.breaker.allow(pool.clock())  # the request is the probe
        pool.record(backend, False, pool.clock())
    assert backend.ejected and not backend.available
    return backend


def test_a_passing_check_lifts_the_workers_ejection_and_open_breaker():
    async def run():
        supervisor, worker = pair()
        roundtrip(supervisor, worker)
        backend = fail_in_worker(worker, "127.0.0.1:9001")
        assert backend.breaker.state.value == "open"
        # The supervisor never saw the backend unhealthy: no transition, just a passing check.
        state = supervisor.pools["web"].checker.state("127.0.0.1:9001")
        assert state.record(True, time.monotonic(), "status 200") is None
        message = roundtrip(supervisor, worker)
        assert not backend.ejected and backend.breaker.state.value == "half_open" and backend.available

        # The worker fails it again; the same message again (or late) lifts nothing new.
        fail_in_worker(worker, "127.0.0.1:9001")
        assert backend.breaker.state.value == "open"
        sync.apply(worker, message)
        assert backend.ejected and backend.breaker.state.value == "open"

        state.record(True, time.monotonic(), "status 200")  # the next passing check does
        roundtrip(supervisor, worker)
        assert backend.available

    asyncio.run(run())


def test_a_pass_below_the_healthy_threshold_lifts_nothing():
    async def run():
        supervisor, worker = pair()
        pool = supervisor.pools["web"]
        state = pool.checker.state("127.0.0.1:9001")
        now = time.monotonic()
        for _ in range(3):
            transition = state.record(False, now, "connect refused")
        pool.health_changed(pool.backend("127.0.0.1:9001"), transition)
        roundtrip(supervisor, worker)
        # Unhealthy, yet ejected too (it took traffic in panic mode, or before the checks saw it).
        backend = fail_in_worker(worker, "127.0.0.1:9001")
        state.record(True, time.monotonic(), "status 200")  # 1 of healthy_threshold 2
        roundtrip(supervisor, worker)
        assert backend.ejected and not backend.healthy
        state.record(True, time.monotonic(), "status 200")
        roundtrip(supervisor, worker)
        assert backend.healthy and not backend.ejected and backend.available

    asyncio.run(run())


def test_a_pool_the_supervisor_no_longer_has_pushes_nothing():
    supervisor, _ = pair()
    assert sync.membership(supervisor, "gone") == {}
