"""What Fulcrum forwards and returns: forwarding headers, request ids, hop-by-hop
stripping, keep-alive reuse to backends, pipelining and HTTP/1.0 clients."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.support.processes import pool_config, stats
from tests.support.rawhttp import ResponseReader, connect, read_until_close, request


@pytest.fixture
def one(backends, fulcrum):
    (b1,) = backends(1)
    return fulcrum({"pools": {"web": pool_config(b1)}}), b1


def _echo(lb, headers=None, path="/?echo=1"):
    r = httpx.get(lb.url + path, headers=headers or {})
    return r, json.loads(r.text)


def _headers(echoed) -> dict[str, str]:
    return {n.lower(): v for n, v in echoed["headers"]}


def test_forwarding_headers_are_set(one):
    lb, _ = one
    r, echoed = _echo(lb, {"Host": "shop.example.com:8443", "X-Forwarded-Proto": "https",
                           "X-Forwarded-Host": "spoofed"})
    sent = _headers(echoed)
    assert sent["host"] == "shop.example.com:8443"  # Host is kept
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"  # set by the proxy, not trusted from the client
    assert sent["x-forwarded-host"] == "shop.example.com:8443"
    assert sent["x-request-id"] == r.headers["x-request-id"]


def test_x_forwarded_for_is_appended(one):
    lb, _ = one
    _, echoed = _echo(lb, {"X-Forwarded-For": "203.0.113.7, 198.51.100.2"})
    assert _headers(echoed)["x-forwarded-for"] == "203.0.113.7, 198.51.100.2, 127.0.0.1"


def test_request_id_is_kept_when_present_and_unique_otherwise(one):
    lb, _ = one
    r, echoed = _echo(lb, {"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert _headers(echoed)["x-request-id"] == "abc-123"
    ids = {httpx.get(lb.url + "/").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_hop_by_hop_request_headers_are_stripped(one):
    lb, _ = one
    raw = (b"GET /?echo=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\n"
           b"X-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
           b"Trailer: X-T\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-Kept: yes\r\n\r\n")
    response, closed = request(lb.port, raw)
    sent = _headers(json.loads(response.body))
    for name in ("connection", "x-secret", "keep-alive", "proxy-connection", "te", "trailer",
                 "upgrade", "http2-settings"):
        assert name not in sent, name
    assert sent["x-kept"] == "yes"


def test_hop_by_hop_response_headers_are_stripped(one):
    lb, _ = one
    r = httpx.get(lb.url + "/", params=[("header", "Connection:X-Private"), ("header", "X-Private:p"),
                                        ("header", "Keep-Alive:timeout=5"), ("header", "X-End:e"),
                                        ("header", "Proxy-Connection:keep-alive")])
    assert r.status_code == 200
    assert "x-private" not in r.headers and "keep-alive" not in r.headers
    assert "proxy-connection" not in r.headers
    assert r.headers["x-end"] == "e"


def test_backend_connections_are_reused(one):
    lb, b1 = one
    with httpx.Client() as client:
        for _ in range(50):
            assert client.get(lb.url + "/").status_code == 200
    s = stats(b1)  # this request itself uses a direct connection
    assert s["requests"] == 50
    assert s["connections"] <= 2  # one pooled connection (+ this stats request)


def test_pipelined_requests_are_answered_in_order(one):
    lb, _ = one
    sock = connect(lb.port)
    paths = [b"/p%d?echo=1&latency=%s" % (i, b"0.05" if i == 0 else b"0") for i in range(5)]
    sock.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % p for p in paths))
    responses = ResponseReader(sock).read(5)
    sock.close()
    assert [json.loads(r.body)["target"].encode() for r in responses] == paths


def test_pipelined_post_bodies_stay_with_their_requests(one):
    lb, _ = one
    sock = connect(lb.port)
    raw = b"".join(
        b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in (b"first", b"second body", b"")
    )
    sock.sendall(raw)
    responses = ResponseReader(sock).read(3)
    sock.close()
    assert [json.loads(r.body)["body"] for r in responses] == ["first", "second body", ""]


def test_http10_client_gets_close_by_default(one):
    lb, _ = one
    sock = connect(lb.port)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = read_until_close(sock)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in data


def test_http10_keep_alive_client(one):
    lb, _ = one
    sock = connect(lb.port)
    for _ in range(2):
        sock.sendall(b"GET /?size=100&chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    # The chunked backend response cannot be chunked to a 1.0 client: it is sent
    # until close, so only the first request on this connection is answered.
    data = read_until_close(sock)
    sock.close()
    assert data.count(b"HTTP/1.1 200") == 1
    assert data.endswith((b"0123456789abcdef" * 7)[:100])


def test_expect_100_continue_is_relayed(one):
    lb, _ = one
    sock = connect(lb.port)
    sock.sendall(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    interim = sock.recv(1024)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
    sock.sendall(b"hello")
    (response,) = ResponseReader(sock).read(1)
    sock.close()
    assert response.status == 200 and json.loads(response.body)["body"] == "hello"


def test_client_half_close_still_gets_its_response(one):
    lb, _ = one
    sock = connect(lb.port)
    sock.sendall(b"GET /?latency=0.1 HTTP/1.1\r\nHost: a\r\n\r\n")
    import socket as _s
    sock.shutdown(_s.SHUT_WR)
    data = read_until_close(sock)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")


def test_pipelined_request_with_body_split_across_reads(one):
    """The second request's body arrives after it started: reading must go on."""
    lb, _ = one
    sock = connect(lb.port)
    sock.sendall(b"GET /?latency=0.1 HTTP/1.1\r\nHost: a\r\n\r\n"
                 b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
    import time
    time.sleep(0.3)  # the first response is out and the POST has started by now
    sock.sendall(b"world")
    first, second = ResponseReader(sock).read(2)
    sock.close()
    assert first.status == 200
    assert json.loads(second.body)["body"] == "helloworld"


def test_declined_websocket_upgrade_is_answered_then_closed(one):
    # The WebSocket upgrade is passed on; a backend that answers 200 instead of 101 is
    # relayed, and nothing after the upgrade request is read as HTTP.
    lb, _ = one
    sock = connect(lb.port)
    sock.sendall(b"GET /?echo=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                 b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    data = read_until_close(sock)
    sock.close()
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in data
    head, _, body = data.partition(b"\r\n\r\n")
    sent = {n.lower(): v for n, v in json.loads(body)["headers"]}
    assert sent["upgrade"] == "websocket" and sent["connection"] == "Upgrade"
