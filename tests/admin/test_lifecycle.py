"""The admin listener's place in Fulcrum's life: `fulcrum check` binds nothing, a taken admin
port stops start-up with the reason, /ready turns 503 as soon as shutdown begins while the
admin API stays up to watch the drain, and the process still exits 0."""
from __future__ import annotations

import json
import signal
import socket
import threading

import httpx

from tests.support.fake_backend import FakeBackend, wait_until
from tests.support.processes import admin_url, pool_config, run_cli


def taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def write(tmp_path, config: dict):
    path = tmp_path / "fulcrum.yaml"
    path.write_text(json.dumps(config))
    return path


def test_check_binds_nothing(tmp_path, backends):
    (b1,) = backends(1)
    with taken_port() as proxy, taken_port() as admin:
        path = write(tmp_path, {"listen": f"127.0.0.1:{proxy.getsockname()[1]}",
                                "admin": {"listen": f"127.0.0.1:{admin.getsockname()[1]}"},
                                "pools": {"web": pool_config(b1)}})
        result = run_cli("check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_taken_admin_port_stops_start_up_with_the_reason(tmp_path, backends):
    (b1,) = backends(1)
    with taken_port() as admin:
        port = admin.getsockname()[1]
        path = write(tmp_path, {"listen": "127.0.0.1:0", "admin": {"listen": f"127.0.0.1:{port}"},
                                "pools": {"web": pool_config(b1)}})
        result = run_cli("run", "--config", str(path))
    assert result.returncode == 1, result
    line = next((ln for ln in result.stdout.splitlines() if "cannot start" in ln), None)
    assert line is not None, result.stdout + result.stderr
    assert f"admin listener 127.0.0.1:{port}" in line and "address already in use" in line.lower(), line


def test_ready_turns_503_at_shutdown_while_the_drain_is_watched(fulcrum):
    release = threading.Event()

    def held(head: bytes, index: int) -> bytes:
        release.wait(30)  # the request stays in flight until the test lets it go
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    with FakeBackend(held) as backend:
        lb = fulcrum({"pools": {"web": pool_config(backend)}})
        url = admin_url(lb)
        assert httpx.get(url + "/ready", trust_env=False).json() == {"ready": True, "pools": {"web": 1}, "problems": []}
        result: list[int] = []
        request = threading.Thread(target=lambda: result.append(
            httpx.get(lb.url + "/", trust_env=False, timeout=30).status_code))
        request.start()
        assert backend.wait_for_requests(1)
        lb.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: httpx.get(url + "/ready", trust_env=False).status_code == 503, 10)
        ready = httpx.get(url + "/ready", trust_env=False).json()
        assert ready["ready"] is False and ready["problems"][0] == "shutting down"
        assert httpx.get(url + "/api/v1/status", trust_env=False).json()["pools"][0]["in_flight"] == 1
        release.set()
        request.join(30)
        assert result == [200]
        assert lb.proc.wait(15) == 0, lb.output
