"""The open-files limit, through real processes started with a low RLIMIT_NOFILE: ``fulcrum
check`` warns when limits.max_connections cannot fit (judged by the limit ``run`` raises to)
and still exits 0; ``fulcrum run`` raises the soft limit to the hard one, says so once, warns
once, and then admits only the client connections that fit: the others get 503 at once,
never a hang, and the admin API keeps answering. With workers, they inherit the raised limit.
"""
from __future__ import annotations

import re
import resource
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.edge_client import Client, ready, request_bytes
from tests.support.processes import PYTHON, ROOT, Process, admin_url, pool_config

LISTENING = re.compile(r"listening address=([\d.]+):(\d+)")
FD_WARNING = "open files limit too low"


def lowered(soft: int, hard: int):
    """A ``preexec_fn`` that lowers the child's open-files limits before it runs."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / f"fulcrum-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# -- fulcrum check --------------------------------------------------------------------------------

TWO_BACKENDS = {"web": {"backends": [{"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9002"}]}}


@pytest.mark.parametrize("soft, hard, max_connections, warning", [
    # 2 backends, health-checked, 64 idle each: 1000 clients need 2000 + 128 + 2 + 64; 256 fit 47.
    pytest.param(256, 256, 1000, ["limits.max_connections: 1000 client connections may need 2194 open files",
                                  "the open-files limit is 256", "admits at most 47", "LimitNOFILE=2194",
                                  "lower limits.max_connections to 47"], id="does-not-fit"),
    pytest.param(256, 256, 40, None, id="fits"),
    pytest.param(256, 4096, 1000, None, id="fits-the-hard-limit-run-raises-to"),
    pytest.param(256, 256, 0, None, id="unlimited-with-room-for-the-reserve"),
])
def test_check_warns_when_max_connections_cannot_fit_and_exits_0(tmp_path, soft, hard, max_connections, warning):
    path = write_config(tmp_path, {"pools": TWO_BACKENDS, "limits": {"max_connections": max_connections}})
    result = subprocess.run([PYTHON, "-m", "fulcrum", "check", "--config", str(path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=30, preexec_fn=lowered(soft, hard))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    summary, *warnings = result.stdout.splitlines()
    assert summary.startswith(f"{path}: configuration is valid")
    if warning is None:
        assert warnings == []
    else:
        (line,) = warnings
        assert line.startswith(f"{path}: warning: ")
        for words in warning:
            assert words in line, (words, line)


# -- fulcrum run ----------------------------------------------------------------------------------

@pytest.fixture
def limited(tmp_path):
    """``limited(config, soft, hard)``: ``fulcrum run`` in a process whose open-files limits
    were lowered before it started (as ``prlimit`` or a systemd LimitNOFILE= would)."""
    started: list[Process] = []

    def start(config: dict, soft: int, hard: int) -> Process:
        config = {"listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"}, "log": {"level": "info"},
                  "access_log": {"enabled": False}, **config}
        launch = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
                  "from fulcrum.cli import main; sys.exit(main())")
        proc = Process([PYTHON, "-c", launch, "run", "--config", str(write_config(tmp_path, config))], LISTENING)
        started.append(proc)
        return ready(proc)

    yield start
    for proc in started:
        code = proc.stop()
        assert code == 0, f"fulcrum exited with {code}:\n{proc.output}"


def answer(port: int) -> tuple[Client, int]:
    """A new connection with one request sent; the status it was answered with (0: closed
    without an answer). A connection that hangs fails on the client's timeout."""
    client = Client(port, timeout=10)
    try:
        client.send(request_bytes("/"))
        return client, client.read_response().status
    except ConnectionError:  # closed (or reset) before a response head
        return client, 0


def lines_with(proc: Process, words: str) -> list[str]:
    return [line for line in list(proc.lines) if words in line]


def test_run_raises_the_limit_and_admits_only_what_fits_keeping_the_admin_api(backends, limited):
    (backend,) = backends(1)
    # Raised from 64 to 128: one backend with 64 idle pooled and a 64 reserve leave room for
    # 21 clients (21 + 21 in flight + 21 idle + 64 <= 128), far below max_connections.
    lb = limited({"pools": {"web": pool_config(backend)}, "limits": {"max_connections": 1000}}, soft=64, hard=128)
    port = int(lb.match.group(2))
    (raised,) = lines_with(lb, "open files limit before=")
    assert "before=64 now=128 client_connections=21" in raised, raised
    (warning,) = lines_with(lb, FD_WARNING)
    assert "1000 client connections" in warning and "the open-files limit is 128" in warning, warning

    held = []
    try:
        statuses = []
        for _ in range(40):
            client, status = answer(port)
            held.append(client)
            statuses.append(status)
        assert statuses == [200] * 21 + [503] * 19, statuses
        refused = held[-1]
        assert refused.closed_by_peer()

        # The admin API answers with every client slot taken.
        health = httpx.get(admin_url(lb) + "/health", timeout=10)
        assert health.status_code == 200, health.text
        # The connections inside the limit are still served.
        for client in held[:21]:
            client.send(request_bytes("/again"))
            assert client.read_response().status == 200
    finally:
        for client in held:
            client.close()
    # One warning at start; no line per refused connection, no "too many open files" flood.
    assert len(lines_with(lb, FD_WARNING)) == 1
    assert not [line for line in lb.lines if "Too many open files" in line or "Traceback" in line], lb.output


def test_workers_inherit_the_raised_limit_and_every_client_gets_an_answer(backends, limited):
    (backend,) = backends(1)
    lb = limited({"workers": 2, "pools": {"web": pool_config(backend)}, "limits": {"max_connections": 1000}},
                 soft=64, hard=128)
    port = int(lb.match.group(2))
    (raised,) = lines_with(lb, "open files limit before=")
    assert "before=64 now=128 client_connections=21" in raised, raised  # per worker
    workers = [int(pid) for pid in Path(f"/proc/{lb.pid}/task/{lb.pid}/children").read_text().split()]
    assert len(workers) == 2
    for pid in workers:
        (line,) = [ln for ln in Path(f"/proc/{pid}/limits").read_text().splitlines() if ln.startswith("Max open files")]
        assert line.split()[3:5] == ["128", "128"], line

    held = []
    try:
        statuses = []
        for _ in range(60):
            client, status = answer(port)
            held.append(client)
            statuses.append(status)
        # The kernel spreads connections over the two workers; each admits its 21.
        assert set(statuses) <= {200, 503}, statuses
        assert 21 <= statuses.count(200) <= 42, statuses
        health = httpx.get(admin_url(lb) + "/health", timeout=10)
        assert health.status_code == 200, health.text
    finally:
        for client in held:
            client.close()
    assert not [line for line in lb.lines if "Too many open files" in line or "Traceback" in line], lb.output
