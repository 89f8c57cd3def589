"""Peers that hold what they share: clients that never read their response, backends that
flood or trickle heads, TLS clients that never finish their handshake. Each is bounded by a
timeout or a size, and releases what it held (backend connection, in-flight slot, a place
under max_connections) when it is cut.
"""
from __future__ import annotations

import socket
import ssl
import time

import httpx
import pytest

from tests.integration.test_tls import tls_port
from tests.support.admin_client import AdminClient
from tests.support.certs import self_signed
from tests.support.fake_backend import FakeBackend, RawClient, Reply, wait_until
from tests.support.processes import PLAIN

BIG = 8 * 1024 * 1024


def big_response(head: bytes, index: int) -> bytes:
    if head.startswith(b"GET /big "):
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"x" * BIG
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_clients_that_never_read_are_cut_and_free_their_slots(fulcrum):
    with FakeBackend(big_response) as fake:
        lb = fulcrum({
            "pools": {"web": {**PLAIN, "circuit_breaker": {"enabled": True, "max_in_flight": 3},
                              "backends": [{"url": fake.url}]}},
            "timeouts": {"client_send": "1s"},
        })
        stalled = [RawClient(lb.port, rcvbuf=4096) for _ in range(3)]
        try:
            for client in stalled:
                client.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
            # While they hold every slot, another client is refused ...
            assert wait_until(lambda: httpx.get(lb.url + "/small").status_code == 503, timeout=5)
            # ... until client_send cuts them, and their slots come back.
            assert wait_until(lambda: httpx.get(lb.url + "/small").status_code == 200, timeout=15)
            assert "client not reading" in lb.output
        finally:
            for client in stalled:
                client.close()


def test_a_client_reading_slowly_is_not_cut(fulcrum):
    with FakeBackend(big_response) as fake:
        lb = fulcrum({"pools": {"web": {**PLAIN, "backends": [{"url": fake.url}]}},
                      "timeouts": {"client_send": "1s"}})
        with RawClient(lb.port, rcvbuf=65536) as client:
            client.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < BIG:
                data = client.sock.recv(256 * 1024)
                assert data, f"cut after {got} bytes"
                got += len(data)
                time.sleep(0.005)  # slower than the proxy writes, but never a second without reading
            assert "client not reading" not in lb.output


@pytest.mark.parametrize("reply, words", [
    pytest.param(b"HTTP/1.1 200 OK\r\nX-Flood: " + b"a" * (256 * 1024), "larger than", id="head-never-ends"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n" * 50 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                 "informational", id="1xx-flood"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: " + b"a" * (256 * 1024),
                 None, id="trailer-never-ends"),
    # Trailers over the limit that end, sent with the head in one write (one read, where the
    # read budget does not charge what follows the head): still cut.
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: "
                 + b"a" * 12000 + b"\r\nX-U: " + b"a" * 12000 + b"\r\n\r\n", None, id="trailers-over-the-limit-with-the-head"),
])
def test_a_backend_that_floods_its_head_is_cut_off(fulcrum, reply, words):
    with FakeBackend(lambda head, i: Reply(reply, "hang")) as fake:
        lb = fulcrum({"pools": {"web": {**PLAIN, "backends": [{"url": fake.url}]}},
                      "limits": {"max_header_bytes": 16384}})
        with RawClient(lb.port) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if words is None:  # the head was sent: the client sees the response cut
                resp = client.read_head()
                assert resp.status == 200
                rest = client.read_to_eof()
                assert rest.startswith(b"2\r\nok\r\n") and not rest.endswith(b"0\r\n\r\n"), rest  # a cut, no invented end
                return
            resp = client.read_response()
            assert resp.status == 502, resp
            assert words in resp.body.decode()


def test_informational_responses_do_not_restart_the_response_timeout(fulcrum):
    # An Early Hints every 0.3 s: the final head never comes, and timeouts.response
    # (1 s) runs from the request, whatever the backend trickles meanwhile.
    trickle = Reply((b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",) * 5, "hang", gap=0.3)
    with FakeBackend(lambda head, i: trickle) as fake:
        lb = fulcrum({"pools": {"web": {**PLAIN, "backends": [{"url": fake.url}]}},
                      "timeouts": {"response": "1s"}})
        with RawClient(lb.port) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            heads = []
            while True:
                resp = client.read_head()
                heads.append(resp.status)
                if resp.status >= 200:
                    break
            assert heads[-1] == 504, heads
            assert len(heads) <= 5


def test_tls_handshakes_count_as_open_connections_and_are_bounded(fulcrum, tmp_path):
    cert, key = self_signed(tmp_path, "localhost", ["localhost"])
    with FakeBackend(lambda head, i: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as fake:
        lb = fulcrum({
            "pools": {"web": {**PLAIN, "backends": [{"url": fake.url}]}},
            "tls": {"listen": "127.0.0.1:0", "certificates": [{"cert": str(cert), "key": str(key)}]},
            "timeouts": {"client_header": "1s"},
            "limits": {"max_connections": 3},
        })
        admin = AdminClient(lb, token=None)
        port = tls_port(lb)
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]  # no ClientHello
        try:
            assert wait_until(lambda: admin.status()["open_connections"] == 3)
            # They count against max_connections: a plain client is refused meanwhile.
            assert httpx.get(lb.url + "/").status_code == 503
            # The handshake is bounded by timeouts.client_header: they are closed, and uncounted.
            for sock in silent:
                sock.settimeout(10)
                assert sock.recv(1024) == b""
            assert wait_until(lambda: admin.status()["open_connections"] == 0)
            assert httpx.get(lb.url + "/").status_code == 200
            context = ssl.create_default_context(cafile=str(cert))
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    assert tls.recv(1024).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in silent:
                sock.close()
