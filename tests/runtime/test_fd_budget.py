"""The open-files budget without sockets: what a config may need, how many clients fit,
the warnings, the soft limit's target, and "too many open files" once per interval."""
from __future__ import annotations

import errno
import logging
import resource
import subprocess
import sys

import pytest

from fulcrum.config.model import Config
from fulcrum.runtime.fd_budget import RESERVE, FdBudget, FdExhaustionLog, Tally, budget_for, target_soft_limit

INF = resource.RLIM_INFINITY


def budget(limit, max_connections, backends=1, idle=64, health=0) -> FdBudget:
    return FdBudget(limit=limit, max_connections=max_connections, backends=backends,
                    idle_per_backend=idle, health_checks=health)


# -- arithmetic ---------------------------------------------------------------------------------

@pytest.mark.parametrize("b, clients, needed", [
    pytest.param(budget(0, 0, backends=1, idle=64), 1000, 2000 + 64 + RESERVE, id="idle-pools-full"),
    pytest.param(budget(0, 0, backends=3, idle=64, health=3), 10_000, 20_000 + 192 + 3 + RESERVE, id="defaults"),
    pytest.param(budget(0, 0, backends=10, idle=64), 5, 10 + 50 + RESERVE, id="fewer-clients-than-idle"),
    pytest.param(budget(0, 0, backends=4, idle=0), 100, 200 + RESERVE, id="no-idle-pool"),
    pytest.param(budget(0, 0, backends=0, idle=64), 7, 14 + RESERVE, id="no-backends"),
    pytest.param(budget(0, 0, backends=2, idle=64, health=2), 0, 2 + RESERVE, id="no-clients"),
])
def test_needed_counts_clients_backends_in_flight_idle_pools_checks_and_reserve(b, clients, needed):
    assert b.needed(clients) == needed


@pytest.mark.parametrize("b, capacity", [
    pytest.param(budget(128, 1000, backends=1, idle=64), 21, id="128-one-backend"),
    pytest.param(budget(256, 1000, backends=2, idle=64, health=2), 47, id="256-two-backends-checked"),
    pytest.param(budget(1024, 0, backends=1, idle=64), 448, id="1024-past-the-knee"),
    pytest.param(budget(20_000, 0, backends=3, idle=64, health=3), 9870, id="20000-defaults"),
    pytest.param(budget(1024, 0, backends=20, idle=64), 43, id="many-backends-before-the-knee"),
    pytest.param(budget(64, 0), 0, id="only-the-reserve"),
    pytest.param(budget(10, 0), 0, id="below-the-reserve"),
])
def test_capacity(b, capacity):
    assert b.capacity == capacity


@pytest.mark.parametrize("limit", [60, 64, 65, 67, 100, 128, 129, 256, 300, 1024, 4096])
@pytest.mark.parametrize("backends, idle, health", [(0, 64, 0), (1, 64, 1), (3, 8, 3), (20, 64, 0), (2, 0, 2)])
def test_capacity_is_the_most_clients_that_fit(limit, backends, idle, health):
    b = budget(limit, 0, backends=backends, idle=idle, health=health)
    capacity = b.capacity
    assert b.needed(capacity + 1) > limit
    if capacity > 0:
        assert b.needed(capacity) <= limit


@pytest.mark.parametrize("b, admitted", [
    pytest.param(budget(1024, 100), 100, id="fits"),
    pytest.param(budget(128, 1000), 21, id="lowered-to-capacity"),
    pytest.param(budget(128, 0), 21, id="unlimited-gets-capacity"),
    pytest.param(budget(64, 1000), 1, id="no-room-still-one-never-0-which-means-unlimited"),
    pytest.param(budget(64, 0), 1, id="unlimited-no-room"),
])
def test_max_clients(b, admitted):
    assert b.max_clients == admitted


# -- warnings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("b", [
    pytest.param(budget(1024, 100), id="fits"),
    pytest.param(budget(2000 + 64 + RESERVE, 1000), id="exactly-fits"),
    pytest.param(budget(128, 0), id="unlimited-with-room"),
])
def test_no_warning_when_it_fits(b):
    assert b.warnings() == []


def test_a_warning_names_the_numbers_and_what_to_do():
    (line,) = budget(256, 1000, backends=2, idle=64, health=2).warnings()
    assert line.startswith("limits.max_connections: 1000 client connections may need 2194 open files")
    for words in ("1000 backend connections in flight", "128 idle pooled", "upstream.max_idle_per_backend 64",
                  "2 health checks", f"{RESERVE} reserved", "the open-files limit is 256",
                  "admits at most 47", "ulimit -n 2194", "LimitNOFILE=2194",
                  "lower limits.max_connections to 47"):
        assert words in line, (words, line)


def test_unlimited_warns_only_when_not_even_the_reserve_fits():
    (line,) = budget(64, 0).warnings()
    assert "has no room for client connections" in line and "LimitNOFILE=" in line


def test_budget_for_a_config_counts_every_pool_and_only_checked_backends():
    config = Config.model_validate({
        "limits": {"max_connections": 500}, "upstream": {"max_idle_per_backend": 16},
        "pools": {
            "web": {"backends": [{"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9002"}]},
            "api": {"health_check": {"enabled": False}, "backends": [{"url": "http://127.0.0.1:9003"}]},
        },
        "routes": [{"path_prefix": "/api", "pool": "api"}, {"pool": "web"}],
    })
    assert budget_for(config, 4096) == FdBudget(limit=4096, max_connections=500, backends=3,
                                                idle_per_backend=16, health_checks=2)


# -- the soft limit -----------------------------------------------------------------------------

@pytest.mark.parametrize("soft, hard, ceiling, target", [
    pytest.param(1024, 4096, 1 << 20, 4096, id="up-to-hard"),
    pytest.param(1024, INF, 1 << 20, 1 << 20, id="unlimited-hard-up-to-nr_open"),
    pytest.param(4096, 4096, 1 << 20, 4096, id="already-there"),
    pytest.param(INF, INF, 1 << 20, INF, id="soft-unlimited-stays"),
])
def test_target_soft_limit(soft, hard, ceiling, target):
    assert target_soft_limit(soft, hard, ceiling) == target


def test_raise_open_files_limit_in_a_process_started_low():
    script = ("import resource; from fulcrum.runtime.fd_budget import raise_open_files_limit; "
              "print(*raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 128)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["64", "128", "128", "128"]  # before, after, and the limits now


# -- once per interval --------------------------------------------------------------------------

@pytest.mark.parametrize("times, logged", [
    pytest.param([0.0], [1], id="the-first-at-once"),
    pytest.param([0.0, 1.0, 2.0, 9.9, 10.0], [1, 0, 0, 0, 4], id="the-rest-counted-at-the-interval"),
    pytest.param([0.0, 25.0, 26.0, 36.0], [1, 1, 0, 2], id="a-quiet-spell-then-again"),
    pytest.param([5.0] * 1000 + [15.0], [1] + [0] * 999 + [1000], id="a-flood-is-one-line"),
])
def test_tally(times, logged):
    tally = Tally(10.0)
    assert [tally.note(now) for now in times] == logged


class LoopClock:
    """What the handler uses of a loop: its clock and its default handler."""

    def __init__(self) -> None:
        self.now = 100.0
        self.defaults: list[dict] = []

    def time(self) -> float:
        return self.now

    def default_exception_handler(self, context: dict) -> None:
        self.defaults.append(context)


def accept_failed(code: int) -> dict:
    # What asyncio's own loop reports when accept() fails for want of descriptors.
    return {"message": "socket.accept() out of system resource", "exception": OSError(code, "Too many open files")}


@pytest.fixture
def records():
    """What the ``fulcrum`` logger emits (on the logger itself: it may not propagate)."""
    logger, handler = logging.getLogger("fulcrum"), _ListHandler()
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_too_many_open_files_is_one_line_per_interval_with_the_count(records):
    loop, handler = LoopClock(), FdExhaustionLog()
    for _ in range(500):
        handler(loop, accept_failed(errno.EMFILE))
    loop.now += 10.0
    handler(loop, accept_failed(errno.ENFILE))
    lines = [r for r in records if r.getMessage() == "too many open files"]
    assert [r.fields["occurrences"] for r in lines] == [1, 500]
    assert lines[0].fields["what"] == "socket.accept() out of system resource"
    assert loop.defaults == []  # no traceback per accept


@pytest.mark.parametrize("context", [
    pytest.param({"message": "boom", "exception": RuntimeError("x")}, id="another-error"),
    pytest.param({"message": "refused", "exception": OSError(errno.ECONNREFUSED, "refused")}, id="another-oserror"),
    pytest.param({"message": "no exception"}, id="no-exception"),
])
def test_anything_else_goes_to_the_previous_handler_or_the_default(context):
    loop, seen = LoopClock(), []
    FdExhaustionLog()(loop, context)
    FdExhaustionLog(previous=lambda _loop, ctx: seen.append(ctx))(loop, context)
    assert loop.defaults == [context] and seen == [context]
