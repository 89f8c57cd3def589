"""Graceful shutdown through a real process: SIGTERM stops accepting, closes idle
keep-alive connections, lets in-flight requests finish up to ``shutdown_timeout``, cuts
the rest and exits 0; a second signal exits at once."""
from __future__ import annotations

import signal
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.processes import Fulcrum, pool_config, stats
from tests.support.rawhttp import connect, read_until_close


def in_flight(pool: ThreadPoolExecutor, proc, backend, latency: float):
    pending = pool.submit(httpx.get, f"{proc.url}/slow", params={"latency": str(latency)}, timeout=30)
    while stats(backend)["requests"] < 1:  # wait until the backend has it
        assert not pending.done(), pending.result()
    return pending


def test_new_connections_are_refused_while_in_flight_requests_finish(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}})
    with ThreadPoolExecutor(1) as pool:
        pending = in_flight(pool, proc, b1, 1.5)
        proc.proc.send_signal(signal.SIGTERM)
        while not any("shutting down" in line for line in list(proc.lines)):
            assert not pending.done(), "the request ended before the drain began"
        with pytest.raises(ConnectionRefusedError):  # the listener is closed while draining
            socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        assert not pending.done(), "the drain did not wait for the request"
        response = pending.result()
    assert response.status_code == 200 and response.headers["connection"].lower() == "close"
    assert proc.proc.wait(timeout=10) == 0, proc.output


def test_idle_keep_alive_connections_are_closed_at_once(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}})
    sock = connect(proc.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    proc.proc.send_signal(signal.SIGTERM)
    assert read_until_close(sock) == b""  # closed by Fulcrum: no more bytes, then EOF
    sock.close()
    assert proc.proc.wait(timeout=10) == 0


def test_shutdown_timeout_cuts_what_is_still_running(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}, "shutdown_timeout": "1s"})
    with ThreadPoolExecutor(1) as pool:
        pending = in_flight(pool, proc, b1, 20)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=15) == 0, proc.output
        with pytest.raises(httpx.HTTPError):
            pending.result()


def test_a_second_signal_exits_at_once(backends, tmp_path):
    (b1,) = backends(1)
    proc = Fulcrum({"pools": {"web": pool_config(b1)}}, tmp_path)  # not the fixture: it expects exit 0
    with ThreadPoolExecutor(1) as pool:
        pending = in_flight(pool, proc, b1, 20)
        proc.proc.send_signal(signal.SIGTERM)
        while not any("shutting down" in line for line in list(proc.lines)):
            assert proc.proc.poll() is None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=10) == 1, proc.output  # not 0: it did not drain
        with pytest.raises(httpx.HTTPError):
            pending.result()
    assert any("second signal" in line for line in proc.lines)
