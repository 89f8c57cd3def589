"""Client-side, response and pool timeouts through real sockets: a slow or stalled head gets
408 and a close (also behind a pipelined request), an idle keep-alive connection is closed, a
stalled request body closes the connection, idle pooled backend connections are closed, slow
clients do not stop others being served, and the response timeout counts only the backend's
silence (never a slow upload, a slow reader, or a body Fulcrum itself has not read yet).

Timeouts are configured short (0.5 s) and every read has a 10 s socket timeout, so a proxy
that never times out fails the test instead of hanging it; nothing asserts how fast it was.
"""
from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest

from tests.support.fake_backend import RawClient, wait_until
from tests.support.processes import pool_config, stats

PARTIAL_HEAD = b"GET /?echo=1 HTTP/1.1\r\nHost: test\r\n"
PATTERN = b"0123456789abcdef"  # what the example backend's size=N bodies repeat


@pytest.fixture
def proxy(backends, fulcrum):
    """``proxy(**timeouts)``: Fulcrum with those timeouts in front of one example backend."""

    def start(limits: dict | None = None, **timeouts) -> tuple:
        (backend,) = backends(1)
        config = {"pools": {"web": pool_config(backend)}, "timeouts": timeouts, "limits": limits or {}}
        return fulcrum(config), backend

    return start


def assert_408_then_closed(client: RawClient) -> None:
    resp = client.read_response()  # socket.timeout (10 s) here means no 408 came
    assert resp.status == 408, resp
    assert resp.header("x-request-id"), resp.headers
    assert resp.header("connection") == "close"
    assert "408" in resp.body.decode()
    assert client.closed_by_peer()


# -- client_header: the whole head must arrive in time ------------------------------------

def test_partial_head_gets_408_and_close(proxy):
    lb, _ = proxy(client_header="0.5s")
    with RawClient(lb.port) as client:
        client.send(PARTIAL_HEAD)  # ... and never the blank line
        assert_408_then_closed(client)


def test_head_trickled_a_byte_at_a_time_still_gets_408(proxy):
    # Slowloris: every byte resets nothing; the head has client_header in total.
    lb, _ = proxy(client_header="0.5s")
    trickle = PARTIAL_HEAD + b"X-Slow: " + b"a" * 200
    with RawClient(lb.port) as client:
        sent = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not client.buf and not client.eof:
            if sent < len(trickle):
                with contextlib.suppress(OSError):
                    client.send(trickle[sent:sent + 1])
                    sent += 1
            client.poll(0.05)
        assert sent < len(trickle), "the whole trickle went through without a 408"
        assert_408_then_closed(client)


def test_second_request_head_on_a_keep_alive_connection_is_timed_too(proxy):
    lb, _ = proxy(client_header="0.5s")
    with RawClient(lb.port) as client:
        client.send(PARTIAL_HEAD + b"\r\n")
        assert client.read_response().status == 200
        client.send(PARTIAL_HEAD)
        assert_408_then_closed(client)


def test_partial_head_pipelined_behind_a_slow_response_is_timed_out(proxy):
    # The second head starts while the first request is still being answered (the backend
    # takes 1 s); it must not escape client_header because the timer fired during that wait.
    lb, _ = proxy(client_header="0.5s")
    with RawClient(lb.port, timeout=5) as client:
        client.send(b"GET /?latency=1 HTTP/1.1\r\nHost: test\r\n\r\n" + PARTIAL_HEAD)
        assert client.read_response().status == 200
        assert_408_then_closed(client)


def test_connection_that_sends_nothing_is_closed(proxy):
    lb, _ = proxy(client_header="0.5s", client_idle="0.5s")
    with RawClient(lb.port) as client:
        data = client.read_to_eof()  # socket.timeout (10 s) here means it stayed open
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data


# -- client_idle: between requests ----------------------------------------------------------

def test_idle_keep_alive_connection_is_closed(proxy):
    lb, _ = proxy(client_idle="0.5s")
    with RawClient(lb.port) as client:
        client.send(PARTIAL_HEAD + b"\r\n")
        resp = client.read_response()
        assert resp.status == 200
        assert resp.header("connection") is None  # it was kept alive ...
        assert client.read_to_eof() == b""  # ... and then closed without a word


def test_busy_keep_alive_connection_outlives_the_idle_timeout(proxy):
    lb, backend = proxy(client_idle="0.5s")
    with RawClient(lb.port) as client:
        for _ in range(8):  # ~1.2 s of use, never idle for 0.5 s
            client.send(PARTIAL_HEAD + b"\r\n")
            assert client.read_response().status == 200
            time.sleep(0.15)
    assert stats(backend)["requests"] == 8


# -- client_body: silence inside a request body -----------------------------------------

def test_stalled_request_body_closes_the_connection(proxy):
    lb, backend = proxy(client_body="0.5s")
    with RawClient(lb.port) as client:
        client.send(b"POST /?echo=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        data = client.read_to_eof()  # socket.timeout (10 s) here means it stayed open
    assert not data.startswith(b"HTTP/1.1 2"), data
    assert stats(backend)["requests"] == 0  # the backend never saw a complete request


def test_pipelined_body_fulcrum_has_not_read_yet_is_not_a_stall(proxy):
    # Fulcrum stops reading while the first request (1 s at the backend) is answered, so
    # the second request's body waits in the socket: that is not the client being silent.
    lb, _ = proxy(client_body="0.5s")
    with RawClient(lb.port) as client:
        client.send(b"GET /?latency=1 HTTP/1.1\r\nHost: test\r\n\r\n"
                    b"POST /?echo=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n")
        time.sleep(0.2)
        client.send(b"0123456789")
        first = client.read_response()
        assert first.status == 200, first
        second = client.read_response()
    assert second.status == 200, second
    assert json.loads(second.body)["body"] == "0123456789"


def test_slow_but_steady_request_body_is_not_cut(proxy):
    # ~83 bytes/s: below the default limits.min_body_rate, which is what cuts a body that
    # trickles; this test is about the stall timeout alone.
    lb, _ = proxy(client_body="0.5s", limits={"min_body_rate": 0})
    with RawClient(lb.port) as client:
        client.send(b"POST /?echo=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n")
        for i in range(10):  # ~1.2 s in all, never 0.5 s of silence
            time.sleep(0.12)
            client.send(b"%d" % i * 10)
        resp = client.read_response()
    assert resp.status == 200
    echoed = json.loads(resp.body)
    assert echoed["body_length"] == 100
    assert echoed["body"] == "".join(str(i) * 10 for i in range(10))


# -- pool_idle: pooled backend connections ------------------------------------------------------

def test_idle_pooled_backend_connection_is_closed(proxy):
    lb, backend = proxy(pool_idle="0.5s")
    assert httpx.get(lb.url + "/").status_code == 200
    assert stats(backend)["connections"] == 2  # Fulcrum's and this stats query's
    # Only the stats query's own connection remains once the pool let its idle one go.
    assert wait_until(lambda: stats(backend)["open_connections"] == 1, timeout=10, interval=0.2)
    assert httpx.get(lb.url + "/").status_code == 200  # and a new one is opened when needed


# -- slow clients do not starve others --------------------------------------------------------

def test_many_slow_header_connections_do_not_stop_a_normal_client(proxy):
    lb, backend = proxy(client_header="2s")
    slow: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", lb.port), timeout=10)
            sock.sendall(PARTIAL_HEAD)
            slow.append(sock)
        with httpx.Client(base_url=lb.url, timeout=10) as normal:
            for _ in range(3):
                r = normal.get("/?echo=1")
                assert r.status_code == 200
                assert json.loads(r.text)["method"] == "GET"
        # In time, every slow connection gets its own 408 and is closed.
        for sock in slow:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 408 "), data
    finally:
        for sock in slow:
            sock.close()
    assert stats(backend)["requests"] == 3


# -- response: counts the backend's silence, not the client's --------------------------------

def test_slow_upload_is_not_a_silent_backend(proxy):
    # The backend waits for the whole body before it answers; while the client is still
    # sending it, the backend is not "silent" (config: response counts once the request was sent).
    lb, _ = proxy(response="0.5s")
    with RawClient(lb.port) as client:
        client.send(b"POST /?echo=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n")
        for i in range(10):  # ~1.2 s of upload
            time.sleep(0.12)
            with contextlib.suppress(OSError):  # a proxy that gave up closes on us
                client.send(b"%d" % i * 10)
        resp = client.read_response()
    assert resp.status == 200, resp
    assert json.loads(resp.body)["body_length"] == 100


def test_slow_reading_client_is_not_a_silent_backend(backends, fulcrum):
    # Fulcrum stops reading from the backend while the client's buffer is full; the backend
    # has been sending all along, so the response timeout must not cut the download.
    (backend,) = backends(1)
    lb = fulcrum({"pools": {"web": pool_config(backend)}, "timeouts": {"response": "0.5s"},
                  "buffers": {"high_water": "64KB", "low_water": "16KB"}})
    size = 32 * 1024 * 1024
    with RawClient(lb.port, rcvbuf=16 * 1024) as client:
        client.send(b"GET /?size=%d HTTP/1.1\r\nHost: test\r\n\r\n" % size)
        time.sleep(1.2)  # not reading: every buffer on the way fills and Fulcrum pauses the backend
        resp = client.read_head()
        assert (resp.status, resp.header("content-length")) == (200, str(size))
        body = client.read_exact(size)
    got = len(body)
    assert got == size, f"download cut after {got} of {size} bytes"
    assert body == PATTERN * (size // len(PATTERN))
