"""``workers: 2`` through real processes: a supervisor, two workers sharing the listener, and
example backends. Each request goes on a connection of its own, so the kernel's SO_REUSEPORT
hash spreads them over both workers (the status rows prove both served).

What must be one across workers is checked from the outside: a rate limit counted once,
health results, admin changes and reloads obeyed by every worker, /metrics and status that
add the workers up, and a killed worker replaced with a log line.
"""
from __future__ import annotations

import glob
import http.client
import os
import shutil
import signal
import socket
from collections import Counter

import httpx
import pytest
import yaml

from tests.support.admin_client import TOKEN, AdminClient
from tests.support.fake_backend import wait_until
from tests.support.processes import Fulcrum, pool_config, run_cli


def get(port: int, path: str = "/") -> tuple[int, str | None]:
    """One request on a new connection: (status, X-Backend)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Backend")
    finally:
        conn.close()


def spread(port: int, n: int) -> list[tuple[int, str | None]]:
    return [get(port) for _ in range(n)]


def cluster_config(started, pool: dict | None = None, **config) -> dict:
    return {"workers": 2, "access_log": {"enabled": False}, "admin": {"listen": "127.0.0.1:0", "token": TOKEN},
            "pools": {"web": {**pool_config(*started), **(pool or {})}}, **config}


@pytest.fixture
def cluster(backends, fulcrum):
    """``cluster(n_backends, **config)``: Fulcrum with 2 workers in front of fresh backends
    (it must exit 0 when the test ends), its AdminClient and the backends."""
    clients: list[AdminClient] = []

    def start(n: int = 2, pool: dict | None = None, **config):
        started = backends(n)
        lb = fulcrum(cluster_config(started, pool, **config))
        clients.append(AdminClient(lb))
        return lb, clients[-1], started

    yield start
    for client in clients:
        client.close()


def workers(admin: AdminClient) -> list[dict]:
    return admin.status()["workers"]


def replaced(admin: AdminClient, index: int, old_pid: int):
    """A predicate: slot ``index`` serves from a process other than ``old_pid``."""
    def check() -> bool:
        row = workers(admin)[index]
        return row["state"] == "serving" and row["pid"] != old_pid
    return check


def test_two_workers_share_the_listener_and_status_and_metrics_add_them_up(cluster):
    lb, admin, _ = cluster()
    results = spread(lb.port, 40)
    assert [s for s, _ in results] == [200] * 40
    body = admin.status()
    rows = body["workers"]
    assert [w["state"] for w in rows] == ["serving", "serving"]
    assert len({w["pid"] for w in rows}) == 2 and lb.pid not in {w["pid"] for w in rows}
    assert all(w["requests_total"] > 0 for w in rows), rows  # both served
    assert sum(w["requests_total"] for w in rows) == body["requests_total"] == 40
    assert sum(b["requests"] for b in body["pools"][0]["backends"]) == 40
    metrics = admin.metrics()
    assert metrics.total("fulcrum_requests_total") == 40
    assert metrics.total("fulcrum_request_duration_seconds_count") == 40
    assert metrics.total("fulcrum_workers") == 2
    assert metrics.total("fulcrum_worker_restarts_total") == 0


def test_a_killed_worker_is_replaced_with_a_log_line_and_counters_keep_counting(cluster):
    lb, admin, _ = cluster()
    assert [s for s, _ in spread(lb.port, 20)] == [200] * 20
    admin.metrics()  # the supervisor's last look at the worker before it dies
    victim = workers(admin)[0]
    os.kill(victim["pid"], signal.SIGKILL)
    # At once: connections the kernel hashes to the dead worker's socket wait in its queue
    # for the replacement (the supervisor holds the socket); none is refused or reset.
    assert [s for s, _ in spread(lb.port, 20)] == [200] * 20

    assert wait_until(replaced(admin, 0, victim["pid"]), 15), "no replacement worker"
    assert workers(admin)[0]["restarts"] == 1
    assert any("worker exited; starting a replacement" in line and "worker=0" in line
               and f"pid={victim['pid']}" in line and "SIGKILL" in line for line in lb.lines), lb.output
    assert [s for s, _ in spread(lb.port, 20)] == [200] * 20
    metrics = admin.metrics()
    assert metrics.total("fulcrum_worker_restarts_total") == 1
    assert metrics.total("fulcrum_workers") == 2
    # The dead worker's counts were carried over from the scrape just before it died (it
    # served nothing after it), so every request is counted once: 20 + 20 + 20.
    assert metrics.total("fulcrum_requests_total") == 60


def test_rate_limit_holds_across_workers(cluster):
    lb, admin, _ = cluster(1, rate_limit={"requests_per_second": 0.01, "burst": 20})
    results = spread(lb.port, 40)
    assert Counter(s for s, _ in results) == {200: 20, 429: 20}
    rows = workers(admin)
    assert all(w["requests_total"] > 0 for w in rows), rows  # both workers limited it


def test_health_results_reach_every_worker(cluster):
    checks = {"health_check": {"enabled": True, "path": "/health", "interval": "200ms",
                               "unhealthy_threshold": 1, "healthy_threshold": 1}}
    lb, admin, (b1, b2) = cluster(pool=checks)
    httpx.get(f"{b1.url}/_control/health?ok=false")

    def row(b):
        return next(r for r in admin.backends("web") if r["url"] == b.url)

    assert wait_until(lambda: row(b1)["state"] == "unhealthy", 15), "b1 not unhealthy"
    # b1 still answers requests: only the pushed health result keeps a worker away from it.
    assert Counter(name for _, name in spread(lb.port, 30)) == {"b2": 30}
    httpx.get(f"{b1.url}/_control/health?ok=true")
    assert wait_until(lambda: row(b1)["state"] == "up", 15), "b1 not back up"
    assert Counter(name for _, name in spread(lb.port, 30))["b1"] > 0


def test_admin_changes_reach_every_worker(cluster, backends):
    lb, admin, (b1, b2) = cluster()
    b1_id = f"127.0.0.1:{b1.port}"
    assert admin.patch("web", b1_id, enabled=False).status_code == 200
    assert Counter(name for _, name in spread(lb.port, 30)) == {"b2": 30}
    (b3,) = backends(1, prefix="new")
    added = admin.add("web", b3.url, weight=1)
    assert added.status_code == 201, added.text
    names = Counter(name for _, name in spread(lb.port, 40))
    assert set(names) == {"b2", b3.name} and names[b3.name] > 0
    removed = admin.delete("web", b1_id)
    assert removed.status_code == 200, removed.text
    assert [r["url"] for r in admin.backends("web")] == [b2.url, b3.url]


def test_reload_reaches_every_worker_and_a_listen_change_is_refused(cluster):
    lb, admin, (b1, b2) = cluster()
    config = yaml.safe_load(lb.config_path.read_text())
    config["pools"]["web"]["backends"] = [{"url": b2.url}]
    lb.config_path.write_text(yaml.safe_dump(config))
    answer = admin.http.post("/api/v1/reload")
    assert answer.status_code == 200, answer.text
    assert "2 workers" in answer.json()["detail"]
    assert Counter(name for _, name in spread(lb.port, 30)) == {"b2": 30}

    config["listen"] = "127.0.0.1:1"
    lb.config_path.write_text(yaml.safe_dump(config))
    refused = admin.http.post("/api/v1/reload")
    assert refused.status_code == 422
    assert "listen: changing it needs a restart when workers > 1" in refused.json()["detail"]
    assert Counter(s for s, _ in spread(lb.port, 10)) == {200: 10}


def test_sigterm_stops_every_worker_and_removes_the_shared_state(cluster):
    lb, admin, _ = cluster(1, rate_limit={"requests_per_second": 100, "burst": 100})
    assert get(lb.port)[0] == 200
    pids = [w["pid"] for w in workers(admin)]
    shared = glob.glob(f"/dev/shm/fulcrum-{lb.pid}-*")
    assert len(shared) == 1 and os.listdir(shared[0]), "the rate limit's buckets live in shared memory"
    assert lb.stop() == 0
    # The supervisor waited for (and reaped) every worker before it exited.
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []
    assert not os.path.exists(shared[0])
    assert "stopped" in lb.output


def test_a_port_held_by_another_reuseport_group_is_refused(tmp_path, backends):
    (b1,) = backends(1)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    config = tmp_path / "workers.yaml"
    config.write_text(yaml.safe_dump({"listen": f"127.0.0.1:{port}", "workers": 2,
                                      "admin": {"listen": "127.0.0.1:0"}, "pools": {"web": pool_config(b1)}}))
    try:
        result = run_cli("run", "--config", str(config))
    finally:
        squatter.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout + result.stderr


def test_workers_sharing_an_access_log_file_never_tear_each_others_lines(cluster, tmp_path):
    import json
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "access.log"
    lb, admin, _ = cluster(1, access_log={"output": str(path), "format": "json"})
    # Long paths make every batch span several PIPE_BUF chunks.
    paths = [f"/{i}?{'x' * 300}" for i in range(400)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: get(lb.port, p)[0], paths))
    assert results == [200] * 400
    assert all(w["requests_total"] > 0 for w in workers(admin))
    assert wait_until(lambda: len(path.read_text().splitlines()) >= 400, 15), "fewer than 400 access-log lines"
    lines = path.read_text().splitlines()
    logged = sorted(json.loads(line)["path"] for line in lines)  # a torn line would not parse
    assert logged == sorted(paths)


def test_workers_drain_and_exit_when_the_supervisor_is_killed(cluster, backends, tmp_path):
    lb = Fulcrum(cluster_config(backends(1)), tmp_path)
    admin = AdminClient(lb)
    pids = [w["pid"] for w in workers(admin)]
    admin.close()
    shared = glob.glob(f"/dev/shm/fulcrum-{lb.pid}-*")
    assert lb.stop(signal.SIGKILL) == -signal.SIGKILL
    # Their control channels closed: each worker shuts down as on SIGTERM.
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in pids),
                      15), "workers still running"
    assert any("worker stopping" in line for line in lb.lines), lb.output
    with pytest.raises(OSError):
        get(lb.port)
    # The next supervisor removes the dead one's shared directory.
    assert shared and os.path.exists(shared[0])
    lb2, _, _ = cluster(1)
    assert wait_until(lambda: not os.path.exists(shared[0]), 15), "stale shared state not removed"
    assert any("removed a killed instance's shared state" in line for line in lb2.lines), lb2.output


def test_a_second_instance_removes_only_shared_state_whose_lock_is_free(cluster):
    from fulcrum.cluster import shared_dir

    from tests.cluster.test_shared_dir import renamed, unused_pid

    limited = {"rate_limit": {"requests_per_second": 0.01, "burst": 100}}
    lb1, admin1, _ = cluster(1, **limited)
    assert get(lb1.port)[0] == 200
    root = shared_dir.shared_root()
    (first,) = glob.glob(f"{root}/fulcrum-{lb1.pid}-*")
    tables = sorted(os.listdir(first))
    # An instance in another container: its PID means nothing here, its lock is held.
    foreign, foreign_lock = shared_dir.create(root)
    foreign = renamed(foreign, unused_pid())
    # A killed instance whose PID now belongs to a live process (this one).
    dead, dead_lock = shared_dir.create(root)
    os.close(dead_lock)
    dead = renamed(dead, os.getpid())
    try:
        lb2, _, _ = cluster(1, **limited)
        assert not os.path.exists(dead)
        assert any("removed a killed instance's shared state" in line and dead in line for line in lb2.lines)
        assert os.path.isdir(foreign)
        assert sorted(os.listdir(first)) == tables
        # The first instance's restarted worker finds its tables (it failed forever when they were gone).
        victim = workers(admin1)[0]
        os.kill(victim["pid"], signal.SIGKILL)
        assert wait_until(replaced(admin1, 0, victim["pid"]), 15), lb1.output
        assert Counter(s for s, _ in spread(lb1.port, 20)) == {200: 20}
        assert lb2.stop() == 0
    finally:
        os.close(foreign_lock)
        shutil.rmtree(foreign, ignore_errors=True)
    assert os.path.isdir(first)


def test_a_worker_that_cannot_start_leaves_the_listening_group(cluster, tmp_path):
    from tests.support.certs import self_signed

    cert, key = self_signed(tmp_path, "a", ["a.test"])
    lb, admin, _ = cluster(tls={"listen": "127.0.0.1:0", "certificates": [{"cert": str(cert), "key": str(key)}]})
    good = cert.read_bytes()
    cert.write_text("not a certificate\n")  # a replacement fails to provision; the running ones keep theirs
    victim = workers(admin)[0]
    os.kill(victim["pid"], signal.SIGKILL)
    assert wait_until(lambda: any("its sockets left the listening group" in line and "worker=0" in line
                                  for line in lb.lines), 30), lb.output
    assert any("worker failed to start" in line and "tls.certificates[0]" in line for line in lb.lines), lb.output
    # No connection waits in the queue of a socket nobody accepts from: every one is served
    # by the other worker (a stranded one would time out here).
    assert Counter(s for s, _ in spread(lb.port, 30)) == {200: 30}
    assert workers(admin)[0]["state"] != "serving"

    cert.write_bytes(good)
    assert wait_until(replaced(admin, 0, victim["pid"]), 30), "no replacement worker"
    assert Counter(s for s, _ in spread(lb.port, 30)) == {200: 30}
    assert all(w["requests_total"] > 0 for w in workers(admin)), workers(admin)  # slot 0 is back in the group


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_tls_listener_is_shared_by_the_workers_too(cluster, tmp_path):
    import ssl

    from tests.support.certs import self_signed

    cert, key = self_signed(tmp_path, "a", ["a.test"])
    lb, admin, _ = cluster(1, tls={"listen": "127.0.0.1:0", "certificates": [{"cert": str(cert), "key": str(key)}],
                                   "redirect_http": True})
    port = int(next(line for line in lb.lines if "listening tls" in line).rsplit(":", 1)[1])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with httpx.Client(verify=context, trust_env=False) as client:
        for _ in range(20):  # new connections: both workers
            response = client.get(f"https://127.0.0.1:{port}/", headers={"Connection": "close"})
            assert response.status_code == 200
    assert all(w["requests_total"] > 0 for w in workers(admin))
    # The plain listener redirects to the TLS port each worker learned from its socket.
    for _ in range(6):
        redirect = httpx.get(f"{lb.url}/x", headers={"Connection": "close", "Host": "a.test"}, trust_env=False)
        assert (redirect.status_code, redirect.headers["location"]) == (308, f"https://a.test:{port}/x")


def test_a_worker_that_exits_cleanly_is_replaced_on_the_socket_it_closed(cluster):
    lb, admin, _ = cluster()
    victim = workers(admin)[1]
    os.kill(victim["pid"], signal.SIGTERM)  # it drains and closes its listener (its copy of it)
    assert wait_until(replaced(admin, 1, victim["pid"]), 15), "no replacement worker"
    assert any("worker exited; starting a replacement" in line and 'exit="code 0"' in line for line in lb.lines)
    workers_before = {w["index"]: w["requests_total"] for w in workers(admin)}
    assert [s for s, _ in spread(lb.port, 30)] == [200] * 30
    after = {w["index"]: w["requests_total"] for w in workers(admin)}
    assert after[1] > workers_before[1], after  # the shared socket still reaches slot 1
