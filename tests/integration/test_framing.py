"""Ambiguous or invalid requests are refused with 400 and the connection closes
(RFC 9112 §6.3, §11.2): Fulcrum never guesses where a message ends."""
from __future__ import annotations

import json

import pytest

from tests.support.processes import pool_config
from tests.support.rawhttp import connect, ResponseReader, request

H = b"Host: example.com\r\n"

REJECTED = [
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="cl-and-te"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", id="te-and-cl"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", id="duplicate-differing-cl"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", id="cl-list"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", id="cl-plus"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", id="cl-hex"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", id="cl-negative"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", id="te-gzip-chunked"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", id="te-chunked-not-final"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", id="te-gzip"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="te-twice"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", id="te-xchunked"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", id="chunk-size-not-hex"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", id="chunk-size-negative"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", id="chunk-size-overflow"),
    pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", id="chunk-missing-crlf"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A\t: 1\r\n\r\n", id="tab-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", id="bare-cr-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", id="obs-fold"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="missing-host"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"Host: other.com\r\n\r\n", id="duplicate-host"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", id="duplicate-same-host"),
    pytest.param(b"GET /\x7f HTTP/1.1\r\n" + H + b"\r\n", id="control-in-target"),
    pytest.param(b"GET / HTTP/1.1\n" + H + b"\r\n", id="bare-lf"),
    pytest.param(b"GET / HTTP/9.9\r\n" + H + b"\r\n", id="bad-version"),
    pytest.param(b"G@T / HTTP/1.1\r\n" + H + b"\r\n", id="bad-method"),
]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    from tests.support.processes import Backend, Fulcrum
    backend = Backend("b1")
    lb = Fulcrum({"pools": {"web": pool_config(backend)}}, tmp_path_factory.mktemp("framing"))
    yield lb, backend
    lb.stop()
    backend.stop()


@pytest.mark.parametrize("raw", REJECTED)
def test_ambiguous_request_is_rejected_and_connection_closed(proxy, raw):
    lb, backend = proxy
    before = _requests(lb)
    response, closed = request(lb.port, raw)
    assert response is not None and response.status == 400, response and response.body
    assert response.header("Connection") == "close"
    assert response.header("X-Request-ID")
    assert closed
    assert _requests(lb) == before  # nothing reached the backend


def test_smuggled_request_in_body_is_forwarded_as_body(proxy):
    lb, _ = proxy
    inner = b"GET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n"
    raw = (b"POST /?echo=1 HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(inner) + inner
           + b"GET /?echo=1 HTTP/1.1\r\n" + H + b"\r\n")
    sock = connect(lb.port)
    sock.sendall(raw)
    first, second = ResponseReader(sock).read(2)
    sock.close()
    echoed = json.loads(first.body)
    assert echoed["method"] == "POST" and echoed["body"] == inner.decode()
    assert json.loads(second.body)["target"] == "/?echo=1"  # the next real request, not /admin


def test_chunked_request_body_is_reframed_and_trailers_dropped(proxy):
    lb, _ = proxy
    raw = (b"POST /?echo=1 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    response, closed = request(lb.port, raw)
    echoed = json.loads(response.body)
    assert response.status == 200 and not closed
    assert echoed["body"] == "hello world"
    names = [n.lower() for n, _ in echoed["headers"]]
    assert "transfer-encoding" in names and "x-trailer" not in names


def _requests(lb) -> int:
    """How many requests Fulcrum's backend saw, via a fresh connection."""
    import httpx
    return httpx.get(f"{lb.url}/_stats").json()["requests"]
