"""Request size limits through real sockets: too many header bytes or fields → 431, a long
request target → 414, a body over max_body_size (declared or chunked) → 413. Each refusal
carries X-Request-ID, says Connection: close and is followed by the close, and never reaches
the backend; requests just under each limit pass (the example backend's echo=1 shows them).
"""
from __future__ import annotations

import json

import pytest

from tests.support.fake_backend import RawClient
from tests.support.processes import Backend, Fulcrum, pool_config, stats

MAX_HEADER_BYTES = 1024
MAX_HEADER_COUNT = 10
MAX_URL_LENGTH = 256
MAX_BODY_SIZE = 1000


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """One Fulcrum with small limits in front of one example backend, shared by the module."""
    backend = Backend("b1")
    lb = Fulcrum({
        "pools": {"web": pool_config(backend)},
        "limits": {"max_header_bytes": "1KB", "max_header_count": MAX_HEADER_COUNT,
                   "max_url_length": MAX_URL_LENGTH, "max_body_size": MAX_BODY_SIZE},
    }, tmp_path_factory.mktemp("limits"))
    yield lb, backend
    code = lb.stop()
    backend.stop()
    assert code == 0, lb.output


def head(target: str = "/?echo=1", headers: list[bytes] = (), method: str = "GET") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: test\r\n%s\r\n" % (method.encode(), target.encode(), b"".join(headers))


def assert_refused(limited, raw: bytes, status: int) -> None:
    lb, backend = limited
    before = stats(backend)["requests"]
    with RawClient(lb.port) as client:
        client.send(raw)
        resp = client.read_response()
        assert resp.status == status, resp
        assert resp.header("x-request-id"), resp.headers
        assert resp.header("connection") == "close"
        assert resp.body.decode().startswith(f"{status} "), resp.body
        assert resp.header("x-request-id") in resp.body.decode()
        assert client.closed_by_peer()
    assert stats(backend)["requests"] == before  # the backend never got it


def assert_echoed(limited, raw: bytes) -> dict:
    lb, _ = limited
    with RawClient(lb.port) as client:
        client.send(raw)
        resp = client.read_response()
    assert resp.status == 200, resp
    return json.loads(resp.body)


def padded_headers(total: int, count: int = 1) -> list[bytes]:
    """``count`` X-Pad header lines, CRLFs included, ``total`` bytes in all."""
    lines = []
    for i in range(count):
        share = total // count + (1 if i < total % count else 0)
        prefix = b"X-Pad%d: " % i
        lines.append(prefix + b"p" * (share - len(prefix) - 2) + b"\r\n")
    return lines


# -- header fields: count and bytes -------------------------------------------------------

def test_header_count_at_the_limit_passes(limited):
    extra = [b"X-H%d: %d\r\n" % (i, i) for i in range(MAX_HEADER_COUNT - 1)]  # plus Host
    echoed = assert_echoed(limited, head(headers=extra))
    names = [n for n, _ in echoed["headers"]]
    assert [n for n in names if n.startswith("X-H")] == [f"X-H{i}" for i in range(MAX_HEADER_COUNT - 1)]


def test_one_header_too_many_is_431(limited):
    extra = [b"X-H%d: %d\r\n" % (i, i) for i in range(MAX_HEADER_COUNT)]  # plus Host
    assert_refused(limited, head(headers=extra), 431)


def test_head_of_exactly_max_header_bytes_passes(limited):
    # Counted whole: request line, every header line and the final CRLF.
    bare = head()
    raw = head(headers=padded_headers(MAX_HEADER_BYTES - len(bare)))
    assert len(raw) == MAX_HEADER_BYTES
    echoed = assert_echoed(limited, raw)
    assert any(n == "X-Pad0" for n, _ in echoed["headers"])


@pytest.mark.parametrize("count", [pytest.param(1, id="one-big-header"), pytest.param(6, id="several-headers")])
def test_header_bytes_over_the_limit_is_431(limited, count):
    # Over the limit however it is counted: the header lines alone exceed it.
    assert_refused(limited, head(headers=padded_headers(MAX_HEADER_BYTES + 1, count)), 431)


def test_request_line_counts_toward_max_header_bytes(limited):
    # config.yaml: "Max size of the request head (request line + all headers)". Here the
    # header lines alone stay under the limit; with the long request line the head is over
    # by 32 bytes, more than any way of counting line ends could take back.
    target = "/?echo=1&pad=" + "u" * 200  # well under max_url_length
    over = MAX_HEADER_BYTES + 32
    headers = padded_headers(over - len(head(target)))
    assert sum(map(len, headers)) < MAX_HEADER_BYTES
    raw = head(target, headers)
    assert len(raw) == over
    assert_refused(limited, raw, 431)


# -- request target ---------------------------------------------------------------------------

def test_target_of_exactly_max_url_length_passes(limited):
    target = "/?echo=1&pad="
    target += "u" * (MAX_URL_LENGTH - len(target))
    assert len(target) == MAX_URL_LENGTH
    assert assert_echoed(limited, head(target))["target"] == target


def test_target_one_byte_over_is_414(limited):
    target = "/?echo=1&pad="
    target += "u" * (MAX_URL_LENGTH + 1 - len(target))
    assert_refused(limited, head(target), 414)


def test_very_long_target_is_414(limited):
    assert_refused(limited, head("/" + "u" * 100_000), 414)


# -- request body -------------------------------------------------------------------------------

def test_content_length_at_the_limit_passes(limited):
    body = b"b" * MAX_BODY_SIZE
    raw = head(method="POST", headers=[b"Content-Length: %d\r\n" % len(body)]) + body
    echoed = assert_echoed(limited, raw)
    assert (echoed["body_length"], echoed["body"]) == (MAX_BODY_SIZE, body.decode())


@pytest.mark.parametrize("with_body", [pytest.param(False, id="head-only"), pytest.param(True, id="with-body")])
def test_content_length_over_the_limit_is_413(limited, with_body):
    body = b"b" * (MAX_BODY_SIZE + 1)
    raw = head(method="POST", headers=[b"Content-Length: %d\r\n" % len(body)])
    assert_refused(limited, raw + body if with_body else raw, 413)


def chunked(*sizes: int) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (n, b"c" * n) for n in sizes) + b"0\r\n\r\n"


def test_chunked_body_at_the_limit_passes(limited):
    raw = head(method="POST", headers=[b"Transfer-Encoding: chunked\r\n"]) + chunked(400, 400, 200)
    assert assert_echoed(limited, raw)["body_length"] == MAX_BODY_SIZE


@pytest.mark.parametrize("sizes", [
    pytest.param((400, 400, 201), id="grows-over"),
    pytest.param((MAX_BODY_SIZE + 1,), id="one-chunk-over"),
])
def test_chunked_body_growing_over_the_limit_is_413(limited, sizes):
    raw = head(method="POST", headers=[b"Transfer-Encoding: chunked\r\n"]) + chunked(*sizes)
    assert_refused(limited, raw, 413)
