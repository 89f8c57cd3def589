"""Slow and abusive clients through real sockets: 200 slow-header connections neither stop
normal clients from being served nor outlive the header timeout; limits.max_connections
answers the connection over the limit 503 and closes it, and admits a new one once another
has closed; limits.max_connections_per_ip does the same per peer address while another
address is still served; limits.min_body_rate closes a connection whose body trickles
while a body at full speed, or steady above the minimum, passes.

Nothing asserts how fast anything happened: waits have generous deadlines, and a proxy that
never acts fails on them instead of hanging the test.
"""
from __future__ import annotations

import json
import selectors
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.edge_client import (
    OTHER_CLIENT,
    Client,
    json_lines,
    ready,
    request_bytes,
    send,
)
from tests.support.fake_backend import wait_until
from tests.support.processes import pool_config, stats

PARTIAL_HEAD = b"GET /slow HTTP/1.1\r\nHost: edge.test\r\nX-Slow: "


@pytest.fixture
def edge(backends, fulcrum):
    """``edge(**sections)``: Fulcrum with those top-level sections in front of one backend."""

    def start(**sections):
        (backend,) = backends(1)
        config = {"pools": {"web": pool_config(backend)}, "admin": {"listen": "127.0.0.1:0"},
                  "access_log": {"enabled": False}, **sections}
        return ready(fulcrum(config)), backend

    return start


def still_open_and_silent(sock: socket.socket) -> bool:
    """True if nothing has arrived on ``sock`` and it is not closed."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # data, or b"" at EOF: either way not silent and open
        return False
    except BlockingIOError:
        return True  # nothing to read, not closed
    except OSError:
        return False
    finally:
        sock.setblocking(True)


# -- slowloris ------------------------------------------------------------------------------------

def test_200_slow_header_connections_do_not_stop_normal_clients_and_are_closed(edge):
    lb, backend = edge(timeouts={"client_header": "3s"})
    slow = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", lb.port), timeout=10)
        sock.sendall(PARTIAL_HEAD)
        slow.append(sock)
    try:
        for sock in slow:  # still trickling: a byte each
            sock.sendall(b"a")

        # Normal clients are served while all 200 wait for their heads ...
        for i in range(20):
            response = send(lb.port, f"/normal/{i}")
            assert response.status == 200, response
        assert stats(backend)["requests"] == 20
        # ... (they were: not one slow connection has been answered or closed yet).
        assert all(still_open_and_silent(sock) for sock in slow)

        # Then each slow connection gets a 408 or a bare close, however it keeps trickling.
        answers: dict[socket.socket, bytes] = {sock: b"" for sock in slow}
        open_ = set(slow)
        selector = selectors.DefaultSelector()
        for sock in slow:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + 20  # generous: the header timeout is 3 s
        rounds = 0
        while open_ and time.monotonic() < deadline:
            rounds += 1
            for sock in list(open_) if rounds <= 4 else ():  # a byte each per 0.5 s, for ~2 s
                try:
                    sock.send(b"a")
                except OSError:
                    pass  # closed under us (or a full buffer): the read below sees it
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    answers[sock] += data
                else:
                    open_.discard(sock)
                    selector.unregister(sock)
        assert not open_, f"{len(open_)} slow-header connections still open"
        for data in answers.values():
            assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]
        assert sum(data.startswith(b"HTTP/1.1 408 ") for data in answers.values()) > 0
        assert stats(backend)["requests"] == 20  # no slow head ever reached the backend
    finally:
        for sock in slow:
            sock.close()
    # And the proxy is as good as new.
    assert send(lb.port, "/after").status == 200


# -- connection limits -------------------------------------------------------------------------------

def served(client: Client, path: str = "/") -> int:
    client.send(request_bytes(path))
    return client.read_response().status


def assert_refused_503(client: Client, words: str):
    response = client.read_response()
    assert response.status == 503, response
    assert response.header("Connection") == "close"
    assert words in response.body.decode(), response
    assert client.closed_by_peer()
    return response


def admitted_again(port: int, source: str = "127.0.0.1") -> bool:
    """A new connection is served (retried until the proxy has seen an earlier one close)."""
    def attempt() -> bool:
        with Client(port, source) as client:
            client.send(request_bytes("/again"))
            return client.read_response().status == 200
    return wait_until(attempt, timeout=10, interval=0.1)


def test_max_connections_refuses_the_one_over_the_limit_then_admits_after_a_close(edge, tmp_path):
    log = tmp_path / "access.log"
    lb, _ = edge(limits={"max_connections": 3}, access_log={"output": str(log), "format": "json"})
    held = [Client(lb.port) for _ in range(3)]
    try:
        assert [served(client) for client in held] == [200, 200, 200]
        with Client(lb.port, OTHER_CLIENT) as extra:  # the limit is global: any address
            extra.send(request_bytes("/extra"))  # may be refused before it is read
            refused = assert_refused_503(extra, "too many open connections")
        # The refusal is in the access log, like any answer of Fulcrum's own.
        request_id = refused.header("X-Request-ID")
        assert wait_until(lambda: any(line["request_id"] == request_id for line in json_lines(log)))
        (line,) = [line for line in json_lines(log) if line["request_id"] == request_id]
        assert (line["status"], line["method"], line["client"]) == (503, "-", OTHER_CLIENT)
        # The connections inside the limit are unaffected.
        assert [served(client) for client in held] == [200, 200, 200]
        held.pop().close()
        assert admitted_again(lb.port)
    finally:
        for client in held:
            client.close()


def test_max_connections_per_ip_refuses_the_extra_one_while_another_address_is_served(edge):
    lb, _ = edge(limits={"max_connections_per_ip": 2})
    mine = [Client(lb.port) for _ in range(2)]
    theirs = [Client(lb.port, OTHER_CLIENT) for _ in range(2)]
    try:
        assert [served(client) for client in mine + theirs] == [200] * 4
        with Client(lb.port) as extra:
            extra.send(request_bytes("/extra"))
            assert_refused_503(extra, "too many connections from 127.0.0.1")
        with Client(lb.port, OTHER_CLIENT) as extra:
            extra.send(request_bytes("/extra"))
            assert_refused_503(extra, "too many connections from 127.0.0.2")
        assert [served(client) for client in mine + theirs] == [200] * 4
        mine.pop().close()
        assert admitted_again(lb.port)
    finally:
        for client in mine + theirs:
            client.close()


# -- min_body_rate ------------------------------------------------------------------------------------

def steady_upload(port: int, chunks: int, size: int = 400, gap: float = 0.1):
    """A body of ``chunks`` x ``size`` bytes, one chunk per ``gap`` seconds; its response."""
    with Client(port) as client:
        client.send(b"POST /?echo=1 HTTP/1.1\r\nHost: edge.test\r\nContent-Length: %d\r\n\r\n" % (chunks * size))
        for _ in range(chunks):
            client.send(b"z" * size)
            time.sleep(gap)
        return client.read_response()


def test_min_body_rate_closes_a_trickling_body_and_passes_fast_or_steady_ones(edge):
    lb, backend = edge(timeouts={"client_body": "1s"}, limits={"min_body_rate": "1KB"})

    with ThreadPoolExecutor(1) as pool:
        # Meanwhile, a body at ~4 KB/s for ~3.5 s: longer than the trickle below survives,
        # and never cut, because the rate is what counts, not the time.
        steady = pool.submit(steady_upload, lb.port, 35)

        # ~50 bytes/s, never silent for long: only the rate can end it.
        closed = False
        sent = 0
        with Client(lb.port) as client:
            client.send(b"POST /?echo=1 HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5000\r\n\r\n")
            deadline = time.monotonic() + 15  # generous: the grace is 1 s
            while time.monotonic() < deadline and sent < 5000:
                try:
                    client.send(b"x" * 5)
                    sent += 5
                except OSError:
                    closed = True
                    break
                client.poll(0.1)
                if client.eof:
                    closed = True
                    break
            assert closed, f"a body trickling at ~50 B/s was not cut ({sent} bytes sent)"
            assert not bytes(client.buf).startswith(b"HTTP/1.1 2"), bytes(client.buf)
        assert sent < 5000
        assert wait_until(lambda: any("request body too slow" in line for line in list(lb.lines))), lb.output

        response = steady.result(timeout=30)
    assert response.status == 200, response
    assert json.loads(response.body)["body_length"] == 35 * 400

    # A body at full speed passes.
    big = b"y" * (1 << 20)
    fast = send(lb.port, "/?echo=1", method="POST", body=big)
    assert fast.status == 200 and json.loads(fast.body)["body_length"] == len(big)
    # The backend saw the two complete bodies, never the trickled one.
    assert stats(backend)["requests"] == 2
