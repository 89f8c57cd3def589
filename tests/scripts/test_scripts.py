"""scripts/start-backends.sh, stop-backends.sh and load-test.sh (with scripts/loadgen.py), run
as a person would: real processes on free 127.0.0.1 ports, outputs read as text.

Every test gets its own backends run directory (BACKENDS_RUN_DIR), so a developer's own
backends in .run/backends are never touched, and whatever a test started is stopped after it.
"""
from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import ROOT, pool_config

SCRIPTS = ROOT / "scripts"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def run_script(name: str, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPTS / name), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def free_ports(n: int) -> list[int]:
    """n distinct ports free right now (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def get(url: str) -> tuple[int, dict, bytes]:
    with NO_PROXY.open(url, timeout=5) as r:
        return r.status, dict(r.headers), r.read()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def bindable(port: int) -> bool:
    """True when a server could listen on the port now (SO_REUSEADDR, as servers bind)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def run_env(tmp_path):
    """Environment for the backend scripts: their own run directory; all its backends stopped after."""
    env = {"BACKENDS_RUN_DIR": str(tmp_path / "backends")}
    yield env
    run_script("stop-backends.sh", env=env)


# -- start-backends.sh / stop-backends.sh --------------------------------------------------


def test_start_backends_then_stop_them(run_env):
    ports = free_ports(2)
    started = run_script("start-backends.sh", *map(str, ports), env=run_env)
    assert started.returncode == 0, started.stderr
    run_dir = Path(run_env["BACKENDS_RUN_DIR"])
    pids = {}
    for port in ports:
        assert f"started b{port} on 127.0.0.1:{port}" in started.stdout
        pids[port] = int((run_dir / f"{port}.pid").read_text())
        assert alive(pids[port])
        status, _, body = get(f"http://127.0.0.1:{port}/health")
        assert (status, body) == (200, b"ok\n")
        _, headers, _ = get(f"http://127.0.0.1:{port}/")
        assert headers["X-Backend"] == f"b{port}"  # named after its port

    stopped = run_script("stop-backends.sh", env=run_env)
    assert stopped.returncode == 0, stopped.stderr
    for port in ports:
        assert f"stopped b{port} (pid {pids[port]}, port {port}" in stopped.stdout
        assert not (run_dir / f"{port}.pid").exists()
        assert not alive(pids[port])
        assert not listening(port) and bindable(port)
    again = run_script("stop-backends.sh", env=run_env)
    assert again.returncode == 0 and "nothing to stop" in again.stdout


def test_stop_backends_by_port_leaves_the_others(run_env):
    first, second = free_ports(2)
    assert run_script("start-backends.sh", str(first), str(second), env=run_env).returncode == 0
    stopped = run_script("stop-backends.sh", str(first), env=run_env)
    assert stopped.returncode == 0 and f"stopped b{first}" in stopped.stdout
    assert not listening(first)
    assert get(f"http://127.0.0.1:{second}/health")[0] == 200


def test_start_backends_refuses_a_port_in_use(run_env):
    free, taken = free_ports(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        result = run_script("start-backends.sh", str(free), str(taken), env=run_env)
    assert result.returncode != 0
    assert f"{taken} (Address already in use)" in result.stderr and "nothing started" in result.stderr
    assert not listening(free)  # refused before starting any
    assert not list(Path(run_env["BACKENDS_RUN_DIR"]).glob("*.pid"))


def test_start_backends_refuses_a_port_it_already_serves(run_env):
    (port,) = free_ports(1)
    assert run_script("start-backends.sh", str(port), env=run_env).returncode == 0
    again = run_script("start-backends.sh", str(port), env=run_env)
    assert again.returncode != 0
    assert f"backend b{port} is already running" in again.stderr


def test_stop_backends_removes_stale_pid_files(run_env):
    run_dir = Path(run_env["BACKENDS_RUN_DIR"])
    run_dir.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid is no longer running anything
    (run_dir / "9.pid").write_text(f"{gone.pid}\n")
    (run_dir / "10.pid").write_text(f"{os.getpid()}\n")  # running, but not a backend: left alone
    result = run_script("stop-backends.sh", env=run_env)
    assert result.returncode == 0, result.stderr
    assert "port 9: stale pid file" in result.stdout
    assert "port 10: pid" in result.stdout and "process left alone" in result.stdout
    assert not list(run_dir.glob("*.pid"))


@pytest.mark.parametrize("script", ["start-backends.sh", "stop-backends.sh", "load-test.sh"])
def test_scripts_explain_themselves(script):
    assert os.stat(SCRIPTS / script).st_mode & stat.S_IXUSR
    result = run_script(script, "-h")
    assert result.returncode == 0 and result.stdout.startswith("Usage: scripts/" + script)


def test_bad_arguments_are_refused_clearly(run_env):
    assert "not a port (1-65535): 'x'" in run_script("start-backends.sh", "x", env=run_env).stderr
    bad = run_script("load-test.sh", "-c", "0", "http://127.0.0.1:1/")
    assert bad.returncode == 2 and "-c wants a positive integer (got '0')" in bad.stderr


# -- load-test.sh ---------------------------------------------------------------------------


def table(output: str, title: str) -> dict[str, int]:
    """The rows of the summary table whose first column is headed `title`, as {key: count}."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() and line.split()[0] == title)
    rows = {}
    for line in lines[start + 2:]:  # past the header and its rule
        if not line.strip():
            break
        key, count, _share = line.split()
        rows[key] = int(count.replace(",", ""))
    return rows


def test_load_test_python_through_fulcrum(backends, fulcrum):
    b1, b2 = backends(2)
    proc = fulcrum({"pools": {"web": pool_config(b1, b2)}, "admin": {"listen": "127.0.0.1:0"}})
    result = run_script("load-test.sh", "--python", "-n", "200", "-c", "4", f"{proc.url}/")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^Responses +200 in [\d.]+ s = [\d,.]+ req/s$", out, re.M), out
    assert re.search(r"^Errors +0$", out, re.M), out
    assert re.search(r"^Latency +p50 [\d.]+ ms +p90 [\d.]+ ms +p99 [\d.]+ ms +max [\d.]+ ms$", out, re.M), out
    assert table(out, "status") == {"200": 200}
    distribution = table(out, "backend")
    assert set(distribution) == {"b1", "b2"} and sum(distribution.values()) == 200
    assert all(n > 0 for n in distribution.values())


def test_loadgen_progress_bar_and_duration_limit(backends):
    (b1,) = backends(1)
    result = subprocess.run([sys.executable, str(SCRIPTS / "loadgen.py"), "--progress", "-d", "300ms", "-c", "2",
                             f"{b1.url}/?status=503"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "[" + "#" * 30 + "] 100%" in result.stderr  # the bar, drawn full at the end
    assert table(result.stdout, "status").keys() == {"503"}  # statuses are counted, not judged
    assert table(result.stdout, "backend").keys() == {"b1"}


def test_loadgen_gives_up_when_nothing_answers():
    """A closed port: a few failed connects per connection, then exit 1 rather than all 10^6 requests."""
    (port,) = free_ports(1)
    result = subprocess.run([sys.executable, str(SCRIPTS / "loadgen.py"), "-n", "1000000", "-c", "2",
                             f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"stopped early: nothing answers at 127.0.0.1:{port}" in result.stderr
    assert "no response from" in result.stderr
    assert re.search(r"^Errors +\d+ \(connect \d+\)$", result.stdout, re.M), result.stdout


def test_load_test_prefers_wrk_unless_python_is_asked_for(tmp_path):
    """Which generator runs, with a stand-in wrk first on PATH that only prints its arguments."""
    fake = tmp_path / "bin" / "wrk"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "fake wrk $*"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}"}
    (port,) = free_ports(1)  # nothing listens: the Python runs end at once, with no response
    url = f"http://127.0.0.1:{port}/"

    with_wrk = run_script("load-test.sh", "-c", "3", "-d", "2s", url, env=env)
    assert with_wrk.returncode == 0
    assert f"fake wrk -t 2 -c 3 -d 2s --timeout 10s --latency -s {SCRIPTS}/wrk-report.lua {url}" in with_wrk.stdout

    for args in (["--python", "-d", "200ms"], ["-n", "3"]):  # -n: wrk cannot count requests
        python = run_script("load-test.sh", *args, "-c", "1", url, env=env)
        assert "fake wrk" not in python.stdout
        assert "python load generator" in python.stdout and python.returncode == 1
