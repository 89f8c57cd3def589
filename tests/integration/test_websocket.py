"""WebSocket through Fulcrum: the upgrade is passed on, the 101 relayed, and the two
connections become a tunnel (proxy/tunnel.py) — with a real client and a real echo server,
both from the ``websockets`` library."""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.support.processes import PYTHON, Process, pool_config, stats


class WsEcho(Process):
    """``tests/support/ws_echo.py`` on a free port."""

    def __init__(self) -> None:
        super().__init__([PYTHON, "-m", "tests.support.ws_echo", "--port", "0"],
                         re.compile(r"listening on ([\d.]+):(\d+)"))
        self.port = int(self.match.group(2))
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
def echo():
    server = WsEcho()
    yield server
    server.stop()


@pytest.fixture
def lb(echo, fulcrum):
    return fulcrum({"pools": {"web": pool_config(echo)}, "timeouts": {"tunnel_idle": "2s"}})


def ws_url(proc, path: str = "/chat") -> str:
    return f"ws://127.0.0.1:{proc.port}{path}"


def test_messages_echo_both_ways_through_the_tunnel(lb):
    with ws_connect(ws_url(lb), max_size=None) as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers["X-Request-ID"]
        for message in ("hello", "ünïcode", b"\x00\x01binary\xff"):
            ws.send(message)
            assert ws.recv(timeout=5) == message


def test_large_messages_pass_with_backpressure(lb):
    big = bytes(range(256)) * 16384  # 4 MiB, well past every write-buffer mark
    with ws_connect(ws_url(lb), max_size=None) as ws:
        for _ in range(3):
            ws.send(big)
            assert ws.recv(timeout=30) == big


def test_many_tunnels_at_once_stay_apart(lb):
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(ws_connect(ws_url(lb, f"/room/{i}"))) for i in range(20)]
        for i, ws in enumerate(clients):
            ws.send(f"from {i}")
        for i, ws in enumerate(clients):
            assert ws.recv(timeout=5) == f"from {i}"


def test_idle_tunnel_is_closed_after_tunnel_idle(lb):
    with ws_connect(ws_url(lb)) as ws:
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=15)  # nothing either way: Fulcrum closes after timeouts.tunnel_idle (2 s)


def test_tunnel_is_logged_once_with_its_bytes_when_it_ends(echo, fulcrum, tmp_path):
    log_path = tmp_path / "access.log"
    proxy = fulcrum({"pools": {"web": pool_config(echo)},
                     "access_log": {"output": str(log_path), "format": "json"}})
    payload = os.urandom(1000)  # incompressible: permessage-deflate may be negotiated
    with ws_connect(ws_url(proxy)) as ws:
        request_id = ws.response.headers["X-Request-ID"]
        ws.send(payload)
        assert ws.recv(timeout=5) == payload
    assert proxy.stop() == 0  # flushes the access log
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    mine = [line for line in lines if line["request_id"] == request_id]
    assert len(mine) == 1, lines
    assert mine[0]["status"] == 101
    assert mine[0]["bytes_in"] > 1000 and mine[0]["bytes_out"] > 1000  # the frames, both ways


def test_shutdown_closes_open_tunnels(echo, fulcrum):
    proxy = fulcrum({"pools": {"web": pool_config(echo)}})
    with ws_connect(ws_url(proxy)) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        assert proxy.stop() == 0  # SIGTERM: the tunnel is closed and Fulcrum exits cleanly
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)


def test_backend_that_declines_the_upgrade_answers_and_the_connection_closes(backends, fulcrum):
    (plain,) = backends(1)  # the example backend speaks no WebSocket: it answers 200
    proxy = fulcrum({"pools": {"web": pool_config(plain)}})
    with pytest.raises(InvalidStatus) as declined:
        ws_connect(ws_url(proxy, "/?echo=1"))
    assert declined.value.response.status_code == 200
    assert stats(plain)["requests"] == 1


def test_non_websocket_upgrade_is_not_passed_on(backends, fulcrum):
    (plain,) = backends(1)
    proxy = fulcrum({"pools": {"web": pool_config(plain)}})
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(b"GET /?echo=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    names = [name.lower() for name, _ in json.loads(body)["headers"]]
    assert "upgrade" not in names and "connection" not in names


def test_a_client_that_writes_but_never_reads_is_cut(echo, fulcrum):
    # The echo server answers every frame; the client never reads its answers. Once the
    # client side's write buffer has been full for timeouts.client_send, the tunnel ends,
    # although bytes keep arriving from the client (tunnel_idle alone would never fire).
    lb = fulcrum({"pools": {"web": pool_config(echo)},
                  "timeouts": {"tunnel_idle": "300s", "client_send": "1s"}})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", lb.port))
    sock.settimeout(10)
    sock.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    payload = b"x" * 60000
    frame = b"\x82\xfe" + len(payload).to_bytes(2, "big") + b"\x00\x00\x00\x00" + payload  # zero mask
    outcome = "kept taking bytes"
    for _ in range(2000):  # at most ~120 MB, far more than the buffers hold
        try:
            sock.sendall(frame)
        except socket.timeout:
            outcome = "stalled"  # held open, neither side moving: what client_send prevents
            break
        except OSError:
            outcome = "cut"
            break
    sock.close()
    assert outcome == "cut"
