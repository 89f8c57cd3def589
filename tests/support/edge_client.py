"""Client-side helpers for the edge-protection tests (tests/integration/test_edge_*.py):
raw HTTP/1.1 requests from a chosen source address (loopback is all of 127.0.0.0/8 on
Linux, so 127.0.0.2 is a second client), pipelined bursts, and reading what a Fulcrum
process logged once it has stopped.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.support.fake_backend import RawClient, RawResponse, wait_until
from tests.support.processes import Backend, Fulcrum

OTHER_CLIENT = "127.0.0.2"


class Client(RawClient):
    """``RawClient`` whose socket is bound to ``source`` before it connects."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.sock = socket.socket()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.eof = False


def request_bytes(path: str = "/", method: str = "GET", headers: dict | list | None = None,
                  body: bytes = b"", host: str = "edge.test") -> bytes:
    """One request's bytes; ``headers`` as a dict or a list of (name, value) pairs."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in pairs]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def send(port: int, path: str = "/", method: str = "GET", headers: dict | list | None = None,
         body: bytes = b"", source: str = "127.0.0.1") -> RawResponse:
    """One request on a new connection; its response."""
    with Client(port, source) as client:
        client.send(request_bytes(path, method, headers, body))
        return client.read_response(method)


def burst(port: int, requests: list[bytes], source: str = "127.0.0.1",
          methods: list[str] | None = None) -> list[RawResponse]:
    """Send ``requests`` pipelined in one write on one connection; their responses, in order."""
    with Client(port, source) as client:
        client.send(b"".join(requests))
        return [client.read_response((methods or [])[i] if methods else "GET") for i in range(len(requests))]


def statuses(responses: list[RawResponse]) -> list[int]:
    return [r.status for r in responses]


def ready(proc, timeout: float = 10.0):
    """Wait until Fulcrum has finished starting (its "admin listening" line: the admin API is
    imported off the loop after the proxy listens, and competes with it until then), so
    bursts meet a quiet process. A build without that line is used after ``timeout``."""
    wait_until(lambda: any("admin listening" in line for line in list(proc.lines)), timeout)
    return proc


def started(tmp_path_factory, name: str, config_for):
    """One backend and a Fulcrum with ``config_for(backend)``, for a whole module."""
    backend = Backend(f"{name}1")
    try:
        lb = ready(Fulcrum(config_for(backend), tmp_path_factory.mktemp(name)))
    except Exception:
        backend.stop()
        raise
    return lb, backend


def stopped(lb, backend) -> None:
    code = lb.stop()
    backend.stop()
    assert code == 0, f"fulcrum exited with {code}:\n{lb.output}"


def lines_through(proc, request_id: str, timeout: float = 10.0) -> list[str]:
    """Fulcrum's output up to the text access-log line (on stdout) of ``request_id``, a later request's:
    component logs are flushed as they are written and the access line is written after
    them, so every line logged for earlier requests is in the result."""
    assert wait_until(lambda: any(line.endswith(f" request_id={request_id}") and " in=" in line
                                  for line in list(proc.lines)), timeout), proc.output
    return list(proc.lines)


def stop_and_read(proc) -> list[str]:
    """Stop Fulcrum (SIGTERM: it drains and flushes its log writers) and return every line it
    printed, once its last line ("stopped") has been read. The fixture's own stop afterwards
    only checks the exit code."""
    code = proc.stop()
    assert code == 0, f"fulcrum exited with {code}:\n{proc.output}"
    assert wait_until(lambda: any(line.rstrip().endswith(" stopped") or '"event": "stopped"' in line
                                  for line in list(proc.lines)), timeout=10), proc.output
    return list(proc.lines)


def json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def wait_for_lines(path: Path, count: int, timeout: float = 10.0) -> list[str]:
    """The access-log file's lines once it holds at least ``count`` (written by a thread)."""
    def lines() -> list[str]:
        return path.read_text(encoding="utf-8").split("\n")[:-1] if path.exists() else []
    wait_until(lambda: len(lines()) >= count, timeout)
    return lines()


def settle(seconds: float = 0.3) -> None:
    """A short pause for work that has no signal of its own to wait for."""
    time.sleep(seconds)
