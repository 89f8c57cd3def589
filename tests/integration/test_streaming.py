"""Large bodies stream both ways with backpressure: Fulcrum's memory stays flat
whatever the body size, and a slow reader slows the backend instead of
filling Fulcrum's buffers."""
from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from tests.support.processes import pool_config
from tests.support.rawhttp import ResponseReader, connect

MB = 1 << 20
PATTERN = b"0123456789abcdef"


@pytest.fixture
def lb(backends, fulcrum):
    (b1,) = backends(1)
    return fulcrum({"pools": {"web": pool_config(b1)}, "limits": {"max_body_size": 0}})


class RssSampler:
    """Peak resident memory of a process, sampled in a background thread."""

    def __init__(self, proc) -> None:
        self.proc = proc
        self.start = proc.rss_kb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.rss_kb())

    def growth_mb(self) -> float:
        self._stop.set()
        self._thread.join()
        return (self.peak - self.start) / 1024


def _expected_digest(size: int) -> str:
    block = PATTERN * (MB // len(PATTERN))
    h = hashlib.sha256()
    for _ in range(size // MB):
        h.update(block)
    return h.hexdigest()


@pytest.mark.parametrize("mode, size", [
    pytest.param("length", 1024 * MB, id="length-1GiB"),
    pytest.param("chunked", 256 * MB, id="chunked-256MiB"),
    pytest.param("close_delimited", 256 * MB, id="close-delimited-256MiB"),
])
def test_large_download_streams_with_flat_memory(lb, mode, size):
    query = {"length": "", "chunked": "&chunked=1", "close_delimited": "&close_delimited=1"}[mode]
    sampler = RssSampler(lb)
    sock = connect(lb.port, timeout=60)
    sock.sendall(b"GET /?size=%d%s HTTP/1.1\r\nHost: a\r\n\r\n" % (size, query.encode()))
    reader = _DigestReader(sock)
    reader.read_one()
    sock.close()
    assert reader.status == 200
    assert reader.length == size
    assert reader.sha.hexdigest() == _expected_digest(size)
    assert sampler.growth_mb() < 32


def test_large_upload_streams_with_flat_memory(lb):
    size = 1024 * MB
    block = PATTERN * (MB // len(PATTERN))
    sampler = RssSampler(lb)
    sock = connect(lb.port, timeout=60)
    sock.sendall(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
    for _ in range(size // MB):
        sock.sendall(block)
    (response,) = ResponseReader(sock).read(1)
    sock.close()
    echoed = json.loads(response.body)
    assert echoed["body_length"] == size
    assert echoed["body_sha256"] == _expected_digest(size)
    assert sampler.growth_mb() < 32


def test_chunked_upload_streams(lb):
    size = 64 * MB
    block = PATTERN * (MB // len(PATTERN))
    sock = connect(lb.port, timeout=60)
    sock.sendall(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(size // MB):
        sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
    sock.sendall(b"0\r\n\r\n")
    (response,) = ResponseReader(sock).read(1)
    sock.close()
    echoed = json.loads(response.body)
    assert echoed["body_length"] == size and echoed["body_sha256"] == _expected_digest(size)


def test_slow_reader_does_not_grow_memory(lb):
    """The client stops reading: Fulcrum must pause the backend, not buffer the body."""
    size = 512 * MB
    sampler = RssSampler(lb)
    sock = connect(lb.port, timeout=60)
    sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 64 * 1024)
    sock.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
    sock.recv(1024)
    time.sleep(2.0)  # not reading: without backpressure the whole body would pile up in Fulcrum
    growth_while_stalled = sampler.growth_mb()
    sock.close()
    assert growth_while_stalled < 32


class _DigestReader:
    """Reads one response, hashing its body instead of keeping it."""

    def __init__(self, sock) -> None:
        import httptools
        self.sock = sock
        self.sha = hashlib.sha256()
        self.length = 0
        self.status = 0
        self.done = False
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.length += len(body)
        self.sha.update(body)

    def on_message_complete(self) -> None:
        self.done = True

    def read_one(self) -> None:
        while not self.done:
            data = self.sock.recv(MB)
            if not data:
                break
            self.parser.feed_data(data)
