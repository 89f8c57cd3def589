"""Recovery follows the active health checks, through real processes and sockets: a killed
backend is ejected and its breaker opens on real traffic; restarted on the same port, it serves
again once its checks pass, long before the ejection and the breaker's reset timeout (60 s
each here) would have let it back. With one process and with two workers (checks in the
supervisor, ejections and breakers in each worker, the lift carried by the sync).

Two ways down: the checks see it too (unhealthy, then healthy again: a transition), or only
the traffic does (unhealthy_threshold out of reach: the checks fail below it, so coming back is
a passing check of a backend that never stopped being healthy). Tests wait with generous
deadlines and assert no timing beyond them.
"""
from __future__ import annotations

import re

import pytest

from tests.integration.test_resilience import Traffic, respawn  # noqa: F401 (a fixture, see restart)
from tests.support.fake_backend import wait_until
from tests.support.processes import pool_config

LONG = "60s"   # ejection and breaker reset: a backend back before this was lifted by its checks
BOUND = 20.0   # what the tests wait for; well under LONG
# `backend ejected [worker=N] pool=web backend=127.0.0.1:PORT until=...`, `backend ejection lifted ...`,
# `circuit breaker [worker=N] pool=web backend=127.0.0.1:PORT old=open new=half_open reason=...`
EJECTION = re.compile(r"backend (ejected|ejection lifted) (?:worker=(\d+) )?pool=\S+ backend=127\.0\.0\.1:(\d+)")
BREAKER = re.compile(r"circuit breaker (?:worker=\d+ )?pool=\S+ backend=127\.0\.0\.1:(\d+) old=(\w+) new=(\w+)"
                     r" reason=\"?([^\"]+)")


@pytest.fixture
def restart(request):
    """``restart(name, port)``: test_resilience's ``respawn``, an example backend on a given port."""
    return request.getfixturevalue("respawn")


def ejections(lb, port: int) -> list[tuple[str, str | None]]:
    """(``ejected`` or ``ejection lifted``, worker index or None) for the backend on ``port``."""
    return [(m.group(1), m.group(2)) for line in list(lb.lines)
            if (m := EJECTION.search(line)) and int(m.group(3)) == port]


def breaker(lb, port: int) -> list[tuple[str, str, str]]:
    """(old, new, reason) of the breaker transitions of the backend on ``port`` (all processes)."""
    return [(m.group(2), m.group(3), m.group(4)) for line in list(lb.lines)
            if (m := BREAKER.search(line)) and int(m.group(1)) == port]


def recovery_config(started, unhealthy_threshold: int, **config) -> dict:
    return {"access_log": {"enabled": False}, **config, "pools": {"web": pool_config(
        *started, resilience=True,
        health_check={"interval": "0.2s", "timeout": "0.5s", "healthy_threshold": 2,
                      "unhealthy_threshold": unhealthy_threshold},
        outlier_detection={"base_ejection_time": LONG, "max_ejection_time": "300s"},
        circuit_breaker={"reset_timeout": LONG},
        retry={"attempts": 3, "tries_header": True},
    )}}


def kill_eject_restart_and_serve(lb, started, restart):
    b1, b2, b3 = started
    port = b1.port
    with Traffic(lb.url, clients=3) as traffic:
        assert wait_until(lambda: all(traffic.served_by(b.name) for b in started), BOUND), lb.output
        b1.stop()
        assert wait_until(lambda: ejections(lb, port), BOUND), lb.output
        assert wait_until(lambda: any(t[:2] == ("closed", "open") for t in breaker(lb, port)), BOUND), lb.output

        restart("b1-again", port)
        assert wait_until(lambda: traffic.served_by("b1-again") >= 5, BOUND), lb.output
        traffic.stop()

    events = ejections(lb, port)
    ejected = {worker for what, worker in events if what == "ejected"}
    assert ejected == {worker for what, worker in events if what == "ejection lifted"}, lb.output  # each process
    moves = breaker(lb, port)
    assert ("open", "half_open", "health check passed") in moves, moves  # not its reset timeout
    assert ("half_open", "closed", "probe succeeded") in moves, moves


@pytest.mark.parametrize("unhealthy_threshold", [
    pytest.param(2, id="checks-see-it-down-too"),
    pytest.param(1000, id="only-traffic-sees-it-down"),
])
def test_a_restarted_backend_serves_once_its_checks_pass(backends, fulcrum, restart, unhealthy_threshold):
    started = backends(3)
    lb = fulcrum(recovery_config(started, unhealthy_threshold))
    kill_eject_restart_and_serve(lb, started, restart)


def test_with_workers_the_supervisors_passing_checks_lift_the_workers_ejections(backends, fulcrum, restart):
    started = backends(3)
    lb = fulcrum(recovery_config(started, 1000, workers=2))
    kill_eject_restart_and_serve(lb, started, restart)
