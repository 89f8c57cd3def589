"""Tests for examples/backend/server.py, run as a real subprocess on both event loops.

httpx covers ordinary requests; a small raw-socket client covers what httpx hides: framing,
pipelining, 100-continue, close-delimited bodies, malformed input and half-close.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SERVER = Path(__file__).resolve().parents[2] / "examples" / "backend" / "server.py"
PATTERN = b"0123456789abcdef"
REFERENCE = PATTERN * (2 * 1024 * 1024 // len(PATTERN))  # 2 MiB of the size=N pattern


def expected_pattern(n: int) -> bytes:
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningBackend:
    def __init__(self, proc: subprocess.Popen, port: int, name: str) -> None:
        self.proc, self.port, self.name = proc, port, name
        self.url = f"http://127.0.0.1:{port}"

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, **kwargs)

    def stats(self) -> dict:
        with self.client() as c:
            return c.get("/_stats").json()

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=5)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


def start_backend(*extra: str, name: str = "b1", loop: str = "auto") -> RunningBackend:
    for _ in range(3):  # the free port can be taken between probing and binding
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(port), "--name", name, "--loop", loop, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        if line == f"backend {name} listening on 127.0.0.1:{port}\n":
            return RunningBackend(proc, port, name)
        proc.kill()
        proc.wait()
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        if "cannot listen" not in err:
            raise AssertionError(f"backend did not start: stdout={line!r} stderr={err!r}")
    raise AssertionError("no free port")


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def loop_kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def backend(loop_kind):
    """A shared backend for tests that do not depend on counters or the health flag."""
    b = start_backend(loop=loop_kind)
    yield b
    assert b.stop() == 0


@pytest.fixture
def spawn(loop_kind):
    """Start private backends; each must exit 0 on SIGTERM at teardown."""
    started: list[RunningBackend] = []

    def _spawn(*extra: str, name: str = "b1") -> RunningBackend:
        b = start_backend(*extra, name=name, loop=loop_kind)
        started.append(b)
        return b

    yield _spawn
    for b in started:
        assert b.stop() == 0


class RawResponse:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def json(self):
        return json.loads(self.body)


class Raw:
    """A blocking HTTP/1.1 client on one socket, decoding framing by hand."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(256 * 1024)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def read_until(self, delim: bytes) -> bytes:
        while (i := self.buf.find(delim)) < 0:
            self._fill()
        out = bytes(self.buf[: i + len(delim)])
        del self.buf[: i + len(delim)]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self) -> bytes:
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def at_eof(self, wait: float = 2.0) -> bool:
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False

    def response(self, head_only: bool = False) -> RawResponse:
        lines = self.read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")[:-2]
        status = int(lines[0].split(" ", 2)[1])
        headers = [tuple(s.strip() for s in line.split(":", 1)) for line in lines[1:]]
        resp = RawResponse(status, headers, b"")
        if head_only or status in (204, 304) or 100 <= status < 200:
            return resp
        if resp.header("transfer-encoding") == "chunked":
            parts = []
            while size := int(self.read_until(b"\r\n")[:-2], 16):
                parts.append(self.read_exact(size))
                assert self.read_exact(2) == b"\r\n"
            assert self.read_exact(2) == b"\r\n"  # no trailers
            resp.body = b"".join(parts)
        elif resp.header("content-length") is not None:
            resp.body = self.read_exact(int(resp.header("content-length")))
        else:
            resp.body = self.read_to_eof()
        return resp


def get(path: str, *headers: str, method: str = "GET", version: str = "1.1", body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/{version}", "Host: t", *headers]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# -- process contract ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"),
                                 pytest.param(signal.SIGINT, id="SIGINT")])
def test_signal_exits_zero_promptly_even_with_open_connections(loop_kind, sig):
    b = start_backend(loop=loop_kind)
    with Raw(b.port) as idle, Raw(b.port) as hanging:
        idle.send(get("/x"))
        assert idle.response().status == 200
        hanging.send(get("/x?hang=1"))
        time.sleep(0.1)
        assert b.stop(sig) == 0  # stop() kills after its own deadline, which would not be 0
        assert idle.at_eof() and hanging.at_eof()


def test_port_zero_announces_the_bound_port(loop_kind):
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--name", "z", "--loop", loop_kind],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("backend z listening on 127.0.0.1:")
    b = RunningBackend(proc, int(line.rsplit(":", 1)[1]), "z")
    assert b.stats()["name"] == "z"
    assert b.stop() == 0


def test_port_in_use_exits_one(backend):
    proc = subprocess.run([sys.executable, str(SERVER), "--port", str(backend.port), "--name", "dup"],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1
    assert proc.stdout == "" and "cannot listen" in proc.stderr


@pytest.mark.parametrize("argv", [
    pytest.param(["--fail-rate", "2"], id="fail-rate>1"),
    pytest.param(["--status", "99"], id="status<200"),
    pytest.param(["--latency", "-1"], id="negative-latency"),
])
def test_bad_flags_are_rejected(argv):
    proc = subprocess.run([sys.executable, str(SERVER), "--port", "0", "--name", "x", *argv],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "must be" in proc.stderr


# -- default behaviour ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_default_reply_names_backend_method_and_path(backend, method):
    with backend.client() as c:
        r = c.request(method, "/some/path?unknown=1")
    assert r.status_code == 200
    assert r.headers["x-backend"] == "b1"
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    if method in ("POST", "PUT", "PATCH"):  # httpx sends Content-Length: 0
        assert doc.pop("body_length") == 0
    assert doc == {"backend": "b1", "method": method, "path": "/some/path"}


def test_body_without_echo_is_consumed_and_counted(backend):
    with backend.client() as c:
        r = c.post("/upload", content=b"x" * 100_000)
        again = c.get("/after")  # same connection: the body was fully consumed
    assert r.json() == {"backend": "b1", "method": "POST", "path": "/upload", "body_length": 100_000}
    assert again.json()["path"] == "/after"


def test_head_has_headers_but_no_body(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/x?size=1000", method="HEAD") + get("/x", method="HEAD") + get("/next"))
        first, second = raw.response(head_only=True), raw.response(head_only=True)
        assert first.header("content-length") == "1000"
        assert int(second.header("content-length")) > 0
        assert raw.response().json()["path"] == "/next"


# -- health, control, stats ----------------------------------------------------------------


def test_health_toggles_via_control(spawn):
    b = spawn()
    with b.client() as c:
        r = c.get("/health")
        assert (r.status_code, r.text) == (200, "ok\n")
        assert c.get("/_control/health?ok=0").json() == {"backend": "b1", "healthy": False}
        assert c.get("/health").status_code == 503
        assert c.post("/health").status_code == 503  # any method
        assert c.get("/anything").status_code == 200  # only /health is affected
        assert c.get("/_control/health?ok=1").json()["healthy"] is True
        assert c.get("/health").status_code == 200


def test_health_ignores_flag_defaults_but_honours_query(spawn):
    b = spawn("--latency", "5", "--status", "503", "--fail-rate", "1")
    with b.client() as c:
        # With the --latency default applied this would time out (5 s > 2 s).
        assert c.get("/health", timeout=2.0).status_code == 200
        started = time.monotonic()
        assert c.get("/health?latency=0.2").status_code == 200
        assert time.monotonic() - started >= 0.2


def test_stats_count_requests_and_connections_and_reset(spawn):
    b = spawn()
    assert b.stats() == {"name": "b1", "requests": 0, "connections": 1, "open_connections": 1,
                         "health_requests": 0, "healthy": True, "write_buffer_bytes": 0}
    with b.client() as c:
        for _ in range(3):
            c.get("/x")
        c.get("/health")
        s = c.get("/_stats").json()
        assert (s["requests"], s["health_requests"], s["connections"], s["open_connections"]) == (4, 1, 2, 1)
        assert c.get("/_stats?reset=1").json()["requests"] == 4  # the snapshot before the reset
        assert c.get("/_stats").json()["requests"] == 0
        assert c.get("/_stats").json()["connections"] == 0
        assert c.get("/_stats").json()["open_connections"] == 1


# -- query parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [201, 404, 503, 599])
def test_status_param_keeps_json_body(backend, status):
    with backend.client() as c:
        r = c.get(f"/s?status={status}")
    assert r.status_code == status and r.json()["path"] == "/s"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(backend, status):
    with Raw(backend.port) as raw:
        raw.send(get(f"/s?status={status}") + get("/next"))
        r = raw.response()
        assert r.status == status and r.header("content-length") is None
        assert raw.response().json()["path"] == "/next"  # framing stayed in sync


def test_status_flag_sets_default(spawn):
    b = spawn("--status", "503")
    with b.client() as c:
        assert c.get("/x").status_code == 503
        assert c.get("/x?status=200").status_code == 200


def test_latency_param_and_flag(backend, spawn):
    with backend.client() as c:
        started = time.monotonic()
        assert c.get("/x?latency=0.3").status_code == 200
        assert time.monotonic() - started >= 0.3
    slow = spawn("--latency", "0.6")
    with slow.client() as c:
        started = time.monotonic()
        c.get("/x")
        assert time.monotonic() - started >= 0.6
    slower = spawn("--latency", "5")
    with slower.client() as c:
        # ?latency=0 overrides the flag: with 5 s applied this would time out.
        assert c.get("/x?latency=0", timeout=2.0).status_code == 200


def test_fail_param(backend):
    with backend.client() as c:
        r = c.get("/f?fail=1&size=10")
        assert r.status_code == 500 and r.json()["error"] == "injected failure"
        assert all(c.get("/f?fail=0").status_code == 200 for _ in range(20))


def test_fail_rate_flag_is_seeded_and_deterministic(spawn):
    def outcomes(b):
        with b.client() as c:
            return [c.get("/x").status_code for _ in range(40)]

    first = outcomes(spawn("--fail-rate", "0.5", "--seed", "7", name="s1"))
    second = outcomes(spawn("--fail-rate", "0.5", "--seed", "7", name="s2"))
    assert first == second and {200, 500} == set(first)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 65535, 65536, 65537, 1_000_003])
def test_size_content_length_is_byte_exact(backend, size):
    with backend.client() as c:
        r = c.get(f"/blob?size={size}")
    assert r.headers["content-length"] == str(size)
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == expected_pattern(size)


@pytest.mark.parametrize("size", [0, 5, 65536, 200_001])
def test_size_chunked_is_byte_exact(backend, size):
    with Raw(backend.port) as raw:
        raw.send(get(f"/blob?size={size}&chunked=1") + get("/next"))
        r = raw.response()
        assert r.header("transfer-encoding") == "chunked" and r.header("content-length") is None
        assert r.body == expected_pattern(size)
        assert raw.response().json()["path"] == "/next"


@pytest.mark.parametrize("size", [0, 100, 300_000])
def test_size_close_delimited_is_byte_exact(backend, size):
    with Raw(backend.port) as raw:
        raw.send(get(f"/blob?size={size}&close_delimited=1"))
        r = raw.response()
        assert r.header("content-length") is None and r.header("transfer-encoding") is None
        assert r.header("connection") == "close"
        assert r.body == expected_pattern(size)


def test_chunked_json_body(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/j?chunked=1"))
        r = raw.response()
        assert r.header("transfer-encoding") == "chunked" and r.json()["path"] == "/j"


def test_http10_chunked_request_falls_back_to_close_delimited(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/blob?size=70000&chunked=1", "Connection: keep-alive", version="1.0"))
        r = raw.response()
        assert r.header("transfer-encoding") is None and r.header("connection") == "close"
        assert r.body == expected_pattern(70000)


def test_large_response_honours_backpressure(spawn):
    b = spawn()
    size = 128 * 1024 * 1024
    before = b.peak_rss_kib()
    with Raw(b.port, timeout=20) as raw:
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        raw.send(get(f"/big?size={size}"))
        time.sleep(0.5)  # not reading: the server must stop writing, not buffer 128 MiB
        assert b.stats()["write_buffer_bytes"] < 1024 * 1024
        head = raw.read_until(b"\r\n\r\n")
        assert b"Content-Length: %d" % size in head
        offset = 0
        while offset < size:
            if not raw.buf:
                raw._fill()
            piece = bytes(raw.buf[: size - offset])
            del raw.buf[: len(piece)]
            start = offset % len(PATTERN)
            assert piece == REFERENCE[start:start + len(piece)], f"mismatch at {offset}"
            offset += len(piece)
    assert b.peak_rss_kib() - before < 48 * 1024


# -- echo and request bodies -----------------------------------------------------------------


def test_echo_reports_exactly_what_was_received(backend):
    body = "héllo wörld".encode()
    with Raw(backend.port) as raw:
        raw.send(b"PUT /e/p?echo=1&a=%%20b HTTP/1.1\r\nHost: t\r\nX-MiXeD-CaSe: One\r\n"
                 b"x-dup: 1\r\nX-Dup: 2\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        r = raw.response()
    assert r.json() == {
        "backend": "b1", "method": "PUT", "target": "/e/p?echo=1&a=%20b", "version": "1.1",
        "headers": [["Host", "t"], ["X-MiXeD-CaSe", "One"], ["x-dup", "1"], ["X-Dup", "2"],
                    ["Content-Length", str(len(body))]],
        "body": "héllo wörld", "body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
    }


def test_echo_body_over_one_mib_is_null_but_hashed(backend):
    body = bytes(range(256)) * (4 * 1024 + 1)  # just over 1 MiB
    with backend.client() as c:
        doc = c.post("/e?echo=1", content=body).json()
        exact = c.post("/e?echo=1", content=b"a" * (1024 * 1024)).json()
    assert doc["body"] is None and doc["body_length"] == len(body)
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert exact["body"] == "a" * (1024 * 1024)


def test_chunked_request_body(backend):
    with Raw(backend.port) as raw:
        raw.send(b"POST /c?echo=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
        doc = raw.response().json()
        raw.send(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        plain = raw.response().json()
    assert doc["body"] == "hello world" and doc["body_length"] == 11
    assert plain["body_length"] == 3


def test_huge_streamed_request_body_is_not_buffered(spawn):
    b = spawn()
    size, block = 128 * 1024 * 1024, b"z" * (1024 * 1024)
    before = b.peak_rss_kib()
    with Raw(b.port, timeout=30) as raw:
        raw.send(b"POST /up?echo=1 HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(block)):
            raw.send(block)
        doc = raw.response().json()
    assert doc["body_length"] == size and doc["body"] is None
    assert doc["body_sha256"] == hashlib.sha256(block * (size // len(block))).hexdigest()
    assert b.peak_rss_kib() - before < 48 * 1024


def test_expect_100_continue_before_body(backend):
    with Raw(backend.port) as raw:
        raw.send(b"POST /e?echo=1 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert raw.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.send(b"data")
        r = raw.response()
        assert r.status == 200 and r.json()["body"] == "data"


def test_expect_100_continue_waits_for_earlier_pipelined_responses(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/slow?latency=0.3")
                 + b"POST /e?echo=1 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        assert raw.response().json()["path"] == "/slow"
        assert raw.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.send(b"ok")
        assert raw.response().json()["body"] == "ok"


# -- connection management -----------------------------------------------------------------


def test_pipelined_requests_answered_in_order(backend):
    with Raw(backend.port) as raw:
        started = time.monotonic()
        raw.send(get("/1?latency=0.6") + get("/2") + get("/3?latency=0.5", method="POST", body=b"abc")
                 + get("/4?size=70000") + get("/5?echo=1"))
        paths = [raw.response() for _ in range(5)]
        elapsed = time.monotonic() - started
    assert [r.json()["path"] for r in paths[:3]] == ["/1", "/2", "/3"]
    assert paths[2].json()["body_length"] == 3
    assert paths[3].body == expected_pattern(70000)
    assert paths[4].json()["target"] == "/5?echo=1"
    assert elapsed >= 0.6  # the first answer waited its latency; later ones were not sent before it


def test_http11_keep_alive_reuses_one_connection(spawn):
    b = spawn()
    with b.client() as c:
        for _ in range(5):
            assert c.get("/x").status_code == 200
        assert c.get("/_stats").json()["connections"] == 1


def test_http10_closes_unless_keep_alive_requested(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/old", version="1.0"))
        r = raw.response()
        assert r.header("connection") == "close" and raw.at_eof()
    with Raw(backend.port) as raw:
        for _ in range(2):
            raw.send(get("/old", "Connection: keep-alive", version="1.0"))
            r = raw.response()
            assert r.status == 200 and r.header("connection") == "keep-alive"


def test_close_param_closes_after_response(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/c?close=1") + get("/never"))
        r = raw.response()
        assert r.header("connection") == "close" and r.json()["path"] == "/c"
        assert raw.at_eof()


def test_client_connection_close(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/c", "Connection: close"))
        assert raw.response().header("connection") == "close"
        assert raw.at_eof()


def test_half_close_still_answers_queued_requests(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/a?latency=0.1") + get("/b"))
        raw.sock.shutdown(socket.SHUT_WR)
        assert [raw.response().json()["path"] for _ in range(2)] == ["/a", "/b"]
        assert raw.at_eof()


def test_hang_never_answers_until_peer_closes(backend):
    with backend.client(timeout=0.3) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/h?hang=1")
    with Raw(backend.port) as raw:
        raw.send(get("/h?hang=1", method="POST", body=b"body"))
        assert not raw.at_eof(wait=0.5)  # still open, nothing sent
    with backend.client() as c:
        assert c.get("/after").status_code == 200


def test_header_param_adds_response_headers(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/h?header=Connection:X-Foo&header=X-Foo:bar&header=Keep-Alive:timeout%3D5"
                     "&header=X-Empty:"))
        r = raw.response()
    assert r.header("connection") == "X-Foo"
    assert r.header("x-foo") == "bar"
    assert r.header("keep-alive") == "timeout=5"
    assert r.header("x-empty") == ""


def test_header_param_connection_close_closes(backend):
    with Raw(backend.port) as raw:
        raw.send(get("/h?header=Connection:close"))
        assert raw.response().status == 200
        assert raw.at_eof()


@pytest.mark.parametrize("query, message", [
    pytest.param("size=abc", "size: must be an integer (got 'abc')", id="size"),
    pytest.param("latency=nan", "latency: must be between", id="latency-nan"),
    pytest.param("status=100", "status: must be between 200 and 599", id="status-1xx"),
    pytest.param("fail=2", "fail: must be between", id="fail"),
    pytest.param("header=NoColon", "header: must be Name:Value", id="header-no-colon"),
    pytest.param("header=X:a%0d%0aInjected:1", "header: must be Name:Value", id="header-crlf"),
    pytest.param("echo=maybe", "echo: must be 1 or 0", id="flag"),
])
def test_bad_query_values_answer_400_and_keep_the_connection(backend, query, message):
    with Raw(backend.port) as raw:
        raw.send(get(f"/q?{query}") + get("/next"))
        r = raw.response()
        assert r.status == 400 and message in r.json()["error"]
        assert raw.response().json()["path"] == "/next"


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"GARBAGE\r\n\r\n", id="garbage"),
    pytest.param(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", id="bad-header"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"),
    pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", id="two-lengths"),
])
def test_malformed_request_answers_400_and_closes(backend, request_bytes):
    with Raw(backend.port) as raw:
        raw.send(get("/first") + request_bytes)
        assert raw.response().json()["path"] == "/first"
        r = raw.response()
        assert r.status == 400 and r.json()["error"].startswith("malformed request")
        assert r.header("connection") == "close" and raw.at_eof()


def test_oversized_head_answers_431(backend):
    with Raw(backend.port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Big: %s\r\n" % (b"a" * 70_000) + b"\r\n")
        r = raw.response()
        assert r.status == 431 and raw.at_eof()


def test_many_concurrent_keep_alive_clients(backend):
    # asyncio streams rather than httpx.AsyncClient, whose pool is the bottleneck at this scale
    async def client(i: int) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", backend.port)
        seen = []
        for j in range(10):
            writer.write(get(f"/load/{i}/{j}?latency=0.01"))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            seen.append(head.split(b" ", 2)[1] + b" " + await reader.readexactly(length))
        writer.close()
        await writer.wait_closed()
        return seen

    async def run() -> list[list[bytes]]:
        return await asyncio.gather(*(client(i) for i in range(50)))

    results = asyncio.run(run())
    for i, seen in enumerate(results):
        assert [json.loads(r.split(b" ", 1)[1])["path"] for r in seen] == [f"/load/{i}/{j}" for j in range(10)]
        assert all(r.startswith(b"200 ") for r in seen)
