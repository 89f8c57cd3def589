"""The access log through a real Fulcrum writing to a file: one JSON line per request with
the documented fields (proxied, limited, rejected at the framing level, timed out in its
head, abandoned by the client); the text format; ``enabled: false`` globally and per route; ``sample: 0`` keeping
only errors; and hostile bytes (a quote in the path, a control character in a client-chosen
request id) unable to forge a line.

Lines are written by a thread: tests wait for the line of a later request (lines are
written in the order requests end) or stop Fulcrum, which flushes the writer.
"""
from __future__ import annotations

import json
import re
import socket
import struct
import time

import pytest

from tests.support.edge_client import (
    Client,
    json_lines,
    ready,
    request_bytes,
    send,
    started,
    stop_and_read,
    stopped,
    wait_for_lines,
)
from tests.support.fake_backend import RawClient, wait_until
from tests.support.processes import pool_config

FIELDS = {"time", "level", "logger", "event", "request_id", "client", "method", "path", "status", "bytes_in",
          "bytes_out", "duration_ms", "upstream_ms", "route", "pool", "backend", "tries", "rate_limit"}
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def line_for(path, request_id: str, timeout: float = 10.0) -> dict:
    """The one JSON line of ``request_id`` (waiting for it)."""
    def found() -> list[dict]:
        return [line for line in json_lines(path) if line["request_id"] == request_id]
    wait_until(lambda: bool(found()), timeout)
    lines = found()
    assert len(lines) == 1, (request_id, json_lines(path))
    return lines[0]


# -- JSON, one Fulcrum for the module ------------------------------------------------------------

@pytest.fixture(scope="module")
def json_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("access-json") / "access.log"

    def config(backend):
        return {
            "pools": {"web": pool_config(backend)},
            "admin": {"listen": "127.0.0.1:0"},
            "access_log": {"output": str(path), "format": "json"},
            "timeouts": {"client_header": "1s"},
            "routes": [
                {"path_prefix": "/quiet", "pool": "web", "name": "quiet", "access_log": {"enabled": False}},
                {"path_prefix": "/limited", "pool": "web", "name": "limited",
                 "rate_limit": {"requests_per_second": 0.01, "burst": 1}},
                {"path_prefix": "/", "pool": "web"},
            ],
        }

    lb, backend = started(tmp_path_factory, "j", config)
    yield lb, backend, path
    stopped(lb, backend)


def test_proxied_requests_have_one_line_with_the_documented_fields(json_log):
    lb, backend, path = json_log
    got = send(lb.port, "/x?size=100")
    posted = send(lb.port, "/y", method="POST", body=b"hello world")
    assert (got.status, posted.status) == (200, 200)

    line = line_for(path, got.header("X-Request-ID"))
    assert set(line) == FIELDS
    assert TIME.fullmatch(line["time"]), line
    assert (line["level"], line["logger"], line["event"]) == ("info", "fulcrum.access", "access")
    assert (line["client"], line["method"], line["path"], line["status"]) == ("127.0.0.1", "GET", "/x?size=100", 200)
    assert (line["bytes_in"], line["bytes_out"]) == (0, 100)
    assert (line["route"], line["pool"], line["backend"], line["tries"]) == ("web", "web", f"127.0.0.1:{backend.port}", 1)
    assert line["rate_limit"] == "-"  # no rate limit on this route
    assert line["duration_ms"] >= line["upstream_ms"] > 0

    line = line_for(path, posted.header("X-Request-ID"))
    assert (line["method"], line["path"], line["status"], line["bytes_in"]) == ("POST", "/y", 200, 11)
    assert line["bytes_out"] == len(posted.body)


def test_a_rate_limited_request_is_logged_as_limited(json_log):
    lb, _, path = json_log
    first, second = send(lb.port, "/limited"), send(lb.port, "/limited")
    assert (first.status, second.status) == (200, 429)
    assert line_for(path, first.header("X-Request-ID"))["rate_limit"] == "allowed"
    line = line_for(path, second.header("X-Request-ID"))
    assert (line["status"], line["rate_limit"], line["route"]) == (429, "limited", "limited")
    assert (line["pool"], line["backend"], line["tries"], line["upstream_ms"]) == (None, None, 0, 0)


def test_a_route_with_access_log_off_writes_no_line(json_log):
    lb, _, path = json_log
    quiet = send(lb.port, "/quiet/a")
    loud = send(lb.port, "/after-quiet")
    assert (quiet.status, loud.status) == (200, 200)
    line_for(path, loud.header("X-Request-ID"))  # written after the quiet one would have been
    lines = json_lines(path)
    assert not [line for line in lines if line["request_id"] == quiet.header("X-Request-ID")]
    assert not [line for line in lines if line["path"].startswith("/quiet")]


@pytest.mark.parametrize("raw", [
    pytest.param(b"GET /r HTTP/1.1\r\nHost: edge.test\r\nContent-Length: nope\r\n\r\n", id="bad-length"),
    pytest.param(b"GET /a\x01b HTTP/1.1\r\nHost: edge.test\r\n\r\n", id="control-byte-in-path"),
])
def test_a_framing_rejection_is_logged_with_dashes(json_log, raw):
    lb, _, path = json_log
    with RawClient(lb.port) as client:
        client.send(raw)
        rejected = client.read_response()
    assert rejected.status == 400, rejected
    line = line_for(path, rejected.header("X-Request-ID"))
    assert (line["status"], line["method"], line["path"], line["client"]) == (400, "-", "-", "127.0.0.1")
    assert (line["pool"], line["backend"], line["bytes_in"], line["bytes_out"]) == (None, None, 0, 0)


def test_a_header_timeout_is_logged(json_log):
    lb, _, path = json_log
    with RawClient(lb.port) as client:
        client.send(b"GET /never-finished HTTP/1.1\r\nHost: edge.test\r\n")
        timed_out = client.read_response()  # socket.timeout (10 s) here means no 408 came
    assert timed_out.status == 408, timed_out
    line = line_for(path, timed_out.header("X-Request-ID"))
    assert (line["status"], line["method"], line["path"], line["client"]) == (408, "-", "-", "127.0.0.1")


def test_a_request_the_client_abandons_is_logged_with_status_0(json_log):
    lb, _, path = json_log
    client = Client(lb.port)
    client.send(request_bytes("/abandoned?latency=2", headers={"X-Request-ID": "edge-abandoned-1"}))
    time.sleep(0.2)  # the backend is still waiting out its latency
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST: the client is gone
    line = line_for(path, "edge-abandoned-1")
    assert (line["status"], line["path"]) == (0, "/abandoned?latency=2")


def test_hostile_bytes_stay_inside_their_json_line(json_log):
    lb, _, path = json_log
    response = send(lb.port, '/q"x', headers=[("X-Request-ID", "edge\x85json\ttab")])
    assert response.status == 200
    # An X-Request-ID with bytes outside visible ASCII is not kept: a fresh id replaces it.
    request_id = response.header("X-Request-ID")
    assert request_id and request_id != "edge\x85json\ttab"
    line = line_for(path, request_id)
    raw = path.read_text(encoding="utf-8")
    assert len(raw.splitlines()) == len(raw.split("\n")) - 1  # no line break but "\n"
    assert line["path"] == '/q"x'


# -- text format -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("access-text") / "access.log"

    def config(backend):
        return {"pools": {"web": pool_config(backend)}, "admin": {"listen": "127.0.0.1:0"},
                "access_log": {"output": str(path), "format": "text"}}

    lb, backend = started(tmp_path_factory, "t", config)
    yield lb, backend, path
    stopped(lb, backend)


def text_line_for(path, request_id: str) -> str:
    def found() -> list[str]:
        return [line for line in wait_for_lines(path, 1) if line.endswith(f" request_id={request_id}")]
    wait_until(lambda: bool(found()))
    lines = found()
    assert len(lines) == 1, (request_id, path.read_text())
    return lines[0]


def test_text_line_format(text_log):
    lb, backend, path = text_log
    response = send(lb.port, "/t?size=42")
    assert response.status == 200
    request_id = response.header("X-Request-ID")
    line = text_line_for(path, request_id)
    pattern = (
        r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1 "GET /t\?size=42" 200 in=0 out=42 '
        r"duration_ms=\d+\.\d{3} upstream_ms=\d+\.\d{3} route=web pool=web "
        rf"backend=127\.0\.0\.1:{backend.port} tries=1 rate_limit=- request_id={re.escape(request_id)}"
    )
    assert re.fullmatch(pattern, line), line


def test_a_quote_in_the_path_cannot_forge_a_text_line(text_log):
    lb, _, path = text_log
    response = send(lb.port, '/x"200"in=0"?q="forged')
    assert response.status == 200
    line = text_line_for(path, response.header("X-Request-ID"))
    match = re.match(r'^\S+ 127\.0\.0\.1 ("(?:[^"\\]|\\.)*") 200 in=0 ', line)
    assert match, line
    assert json.loads(match.group(1)) == 'GET /x"200"in=0"?q="forged'


def test_a_client_request_id_cannot_break_a_text_line(text_log):
    # X-Request-ID is the client's to choose and goes into every line. llhttp refuses CR and
    # LF in it but lets through obs-text such as 0x85, which latin-1 decodes to U+0085 (NEL):
    # a line break for str.splitlines() and many log shippers; spaces would forge fields.
    lb, _, path = text_log
    response = send(lb.port, "/rid", headers=[("X-Request-ID", "edge\x85forged-line status=500")])
    after = send(lb.port, "/after-rid")
    assert (response.status, after.status) == (200, 200)
    text_line_for(path, after.header("X-Request-ID"))
    lines = path.read_text(encoding="utf-8").splitlines()
    forged = [line for line in lines if not TIME.match(line)]
    assert forged == [], forged


# -- switched off, sampled --------------------------------------------------------------------------

def test_access_log_disabled_writes_no_line(backends, fulcrum, tmp_path):
    path = tmp_path / "access.log"
    (backend,) = backends(1)
    lb = fulcrum({"pools": {"web": pool_config(backend)}, "admin": {"listen": "127.0.0.1:0"},
                  "access_log": {"enabled": False, "output": str(path), "format": "json"}})
    for target in ("/a", "/?status=500", "/b"):
        assert send(lb.port, target).status in (200, 500)
    lines = stop_and_read(lb)
    assert not path.exists() or path.read_text() == ""
    assert not [line for line in lines if '"event": "access"' in line or " in=0 " in line]


def test_sample_zero_logs_only_errors_and_429s(backends, fulcrum, tmp_path):
    path = tmp_path / "access.log"
    (backend,) = backends(1)
    lb = ready(fulcrum({
        "pools": {"web": pool_config(backend)}, "admin": {"listen": "127.0.0.1:0"},
        "access_log": {"output": str(path), "format": "json", "sample": 0},
        "rate_limit": {"requests_per_second": 0.01, "burst": 7},
    }))
    targets = ["/"] * 5 + ["/?status=500", "/?status=404", "/"]
    with RawClient(lb.port) as client:
        client.send(b"".join(request_bytes(t) for t in targets))
        got = [client.read_response().status for _ in targets]
    assert got == [200] * 5 + [500, 404, 429]
    stop_and_read(lb)
    assert [(line["status"], line["path"]) for line in json_lines(path)] == [(500, "/?status=500"), (429, "/")]


def test_the_log_file_is_created_0640_whatever_the_umask(backends, fulcrum, tmp_path):
    import os
    import stat

    path = tmp_path / "access.log"
    (backend,) = backends(1)
    previous = os.umask(0)  # Fulcrum inherits it: a plain open() would create the file 0666
    try:
        lb = ready(fulcrum({"pools": {"web": pool_config(backend)}, "admin": {"listen": "127.0.0.1:0"},
                            "access_log": {"output": str(path), "format": "json"}}))
    finally:
        os.umask(previous)
    assert send(lb.port, "/").status == 200
    stop_and_read(lb)
    assert len(json_lines(path)) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
