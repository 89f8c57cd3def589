# ActiveChecker against real example-backend processes: health flipped through /_control/health,
# a killed backend, a slow /health, a body mismatch. States are polled up to a generous deadline.
from __future__ import annotations

import asyncio
import random

import httpx
import pytest
import uvloop

from fulcrum.balancing.backend import Backend
from fulcrum.health.checker import ActiveChecker
from fulcrum.health.state import Health
from tests.support.processes import stats

DEADLINE = 10.0  # seconds a state may take to appear; checks run every 0.1 s, so it is never near
FAST = {"interval": 0.1, "timeout": 0.5, "healthy_threshold": 2, "unhealthy_threshold": 2}
LOOPS = [pytest.param(uvloop.new_event_loop, id="uvloop"), pytest.param(None, id="asyncio")]


def run(scenario, loop_factory=uvloop.new_event_loop) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(asyncio.wait_for(scenario(), 30))


async def wait_for_state(checker: ActiveChecker, backend_id: str, want: Health) -> None:
    state = checker.state(backend_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while state.state is not want:
        if loop.time() > deadline:
            pytest.fail(f"{backend_id} not {want.value} after {DEADLINE}s: {state!r}")
        await asyncio.sleep(0.02)


async def set_health(url: str, ok: bool) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/_control/health", params={"ok": int(ok)})
        assert response.json()["healthy"] is ok


def checker_for(procs, changes: list | None = None, **kwargs) -> tuple[ActiveChecker, list[Backend]]:
    targets = [Backend(p.url, id=p.name) for p in procs]
    on_change = None if changes is None else lambda b, t: changes.append((b.id, t.old, t.new, t.reason))
    return ActiveChecker(targets, rng=random.Random(3), on_change=on_change, **{**FAST, **kwargs}), targets


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_flip_health_off_and_on(backends, loop_factory):
    b1, b2 = backends(2)
    changes: list = []
    checker, _ = checker_for([b1, b2], changes)

    async def scenario():
        checker.start()
        try:
            await wait_for_state(checker, "b1", Health.HEALTHY)
            while checker.state("b2").consecutive_ok < 2:  # both checked and fine
                await asyncio.sleep(0.02)
            assert checker.state("b1").healthy and changes == []
            await set_health(b1.url, False)
            await wait_for_state(checker, "b1", Health.UNHEALTHY)
            await set_health(b1.url, True)
            await wait_for_state(checker, "b1", Health.HEALTHY)
        finally:
            await checker.stop()

    run(scenario, loop_factory)
    assert changes == [
        ("b1", Health.HEALTHY, Health.UNHEALTHY, "2 consecutive failures: status 503 not in 200-399"),
        ("b1", Health.UNHEALTHY, Health.HEALTHY, "2 consecutive successes"),
    ]
    assert checker.state("b2").healthy and checker.state("b2").changed_at is None
    assert not checker.running


def test_killed_backend_is_unhealthy_with_connect_reason(backends):
    b1, b2 = backends(2)
    changes: list = []
    checker, _ = checker_for([b1, b2], changes)

    async def scenario():
        checker.start()
        try:
            while checker.state("b1").consecutive_ok < 1:
                await asyncio.sleep(0.02)
            await asyncio.to_thread(b1.stop)
            await wait_for_state(checker, "b1", Health.UNHEALTHY)
            fails_then = checker.state("b1").consecutive_fail
            while checker.state("b1").consecutive_fail <= fails_then:  # the loop keeps checking
                await asyncio.sleep(0.02)
        finally:
            await checker.stop()

    run(scenario)
    assert [(c[0], c[2]) for c in changes] == [("b1", Health.UNHEALTHY)]
    assert changes[0][3] == "2 consecutive failures: connect refused"
    assert checker.state("b1").last_reason == "connect refused"
    assert checker.state("b2").healthy


def test_slow_health_endpoint_fails_with_timeout(backends):
    (b1,) = backends(1)
    changes: list = []
    checker, _ = checker_for([b1], changes, path="/health?latency=2", timeout=0.3)

    async def scenario():
        checker.start()
        try:
            await wait_for_state(checker, "b1", Health.UNHEALTHY)
        finally:
            await checker.stop()

    run(scenario)
    assert changes == [("b1", Health.HEALTHY, Health.UNHEALTHY, "2 consecutive failures: timeout after 0.3s")]


def test_expect_body_mismatch_is_unhealthy(backends):
    (b1,) = backends(1)
    changes: list = []
    checker, _ = checker_for([b1], changes, expect_body=b"ready")

    async def scenario():
        checker.start()
        try:
            await wait_for_state(checker, "b1", Health.UNHEALTHY)
        finally:
            await checker.stop()

    run(scenario)
    assert changes == [("b1", Health.HEALTHY, Health.UNHEALTHY,
                        "2 consecutive failures: body does not contain 'ready'")]


def test_each_check_uses_its_own_connection_and_sends_its_headers(backends):
    (b1,) = backends(1)
    checker, (target,) = checker_for([b1])
    echo = ActiveChecker([target], path="/probe?echo=1",
                         expect_body=b'["User-Agent","fulcrum-health-check"],["Connection","close"]')

    async def scenario():
        results = [await checker.check_now(target) for _ in range(3)]
        assert results == [(True, "status 200")] * 3
        assert await echo.check_now(target) == (True, "status 200")

    run(scenario)
    seen = stats(b1)
    assert seen["health_requests"] == 3
    assert seen["connections"] == 5  # 3 checks + the echo check + this /_stats request


def test_on_change_error_does_not_stop_checks(backends):
    (b1,) = backends(1)
    calls: list = []

    def on_change(backend, transition):
        calls.append(transition.new)
        raise RuntimeError("callback bug")

    targets = [Backend(b1.url, id="b1")]
    checker = ActiveChecker(targets, rng=random.Random(1), on_change=on_change, **FAST)

    async def scenario():
        checker.start()
        try:
            await set_health(b1.url, False)
            await wait_for_state(checker, "b1", Health.UNHEALTHY)
            await set_health(b1.url, True)
            await wait_for_state(checker, "b1", Health.HEALTHY)
        finally:
            await checker.stop()

    run(scenario)
    assert calls == [Health.UNHEALTHY, Health.HEALTHY]
