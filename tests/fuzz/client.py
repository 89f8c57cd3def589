"""The fuzzer's client: send raw bytes on one connection, read every response until the proxy closes.

The client half-closes only once it holds as many responses as the reference expects, because
Fulcrum answers a half-close by finishing the request in flight and dropping those queued
behind it: half-closing at once would hide pipelined requests from the proxy.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def from_backend(self) -> bool:
        return self.header(b"x-fuzz-seq") is not None

    def summary(self) -> str:
        seq = self.header(b"x-fuzz-seq")
        origin = f"backend seq {seq.decode()} target {self.header(b'x-fuzz-target')!r}" if seq is not None else (
            "backend's own 400 (h11 refused)" if self.header(b"x-fuzz-error") else "from Fulcrum")
        body = self.body if len(self.body) <= 100 else self.body[:100] + b"..."
        return f"{self.status} ({origin}) body={body!r}"


@dataclass
class ClientResult:
    received: bytes = b""
    responses: list[Response] = field(default_factory=list)
    unparsed: bytes = b""      # bytes after the last complete response
    hung: bool = False         # the proxy neither answered nor closed within the deadline
    send_error: str = ""

    def summary(self) -> str:
        lines = [f"  [{i}] {r.summary()}" for i, r in enumerate(self.responses)]
        if self.unparsed:
            lines.append(f"  unparsed: {self.unparsed[:200]!r}")
        if self.hung:
            lines.append("  (no answer and no close before the deadline)")
        return "\n".join(lines) or "  (nothing: closed)"


def exchange(port: int, raw: bytes, expected: int, deadline: float = 6.0) -> ClientResult:
    """Send ``raw``; half-close after ``expected`` final responses; read until the proxy closes."""
    result = ClientResult()
    sock = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    half_closed = False
    try:
        try:
            sock.sendall(raw)
        except OSError as exc:  # the proxy may refuse and close before it has read everything
            result.send_error = repr(exc)
        end = time.monotonic() + deadline
        while True:
            if not half_closed and len(parse(bytes(buf))[0]) >= expected:
                half_closed = True
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            left = end - time.monotonic()
            if left <= 0:
                result.hung = True
                break
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                result.hung = True
                break
            except OSError:
                data = b""
            if not data:
                break
            buf += data
    finally:
        sock.close()
    result.received = bytes(buf)
    result.responses, result.unparsed = parse(result.received, eof=True)
    return result


def parse(data: bytes, eof: bool = False) -> tuple[list[Response], bytes]:
    """The complete final responses in ``data`` (1xx skipped) and what follows them."""
    responses = []
    pos = 0
    while True:
        parsed = _one(data, pos, eof)
        if parsed is None:
            return responses, data[pos:]
        response, pos = parsed
        if response.status >= 200:
            responses.append(response)


def _one(data: bytes, pos: int, eof: bool) -> tuple[Response, int] | None:
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        return None
    lines = data[pos:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        headers.append((name.strip(), value.strip()))
    start = end + 4
    response = Response(status, headers, b"", b"")
    length = response.header(b"content-length")
    coding = (response.header(b"transfer-encoding") or b"").lower()
    if 100 <= status < 200 or status in (204, 304):
        stop = start
    elif coding.endswith(b"chunked"):
        body, stop = _chunked(data, start)
        if stop is None:
            return None
        response.body = body
    elif length is not None:
        if not length.isdigit() or len(data) < start + int(length):
            return None
        stop = start + int(length)
        response.body = data[start:stop]
    elif eof:
        stop = len(data)
        response.body = data[start:]
    else:
        return None
    response.raw = data[pos:stop]
    return response, stop


def _chunked(data: bytes, pos: int) -> tuple[bytes, int | None]:
    body = bytearray()
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return b"", None
        try:
            size = int(data[pos:end].split(b";")[0], 16)
        except ValueError:
            return b"", None
        pos = end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else (b"", None)
        if len(data) < pos + size + 2:
            return b"", None
        body += data[pos:pos + size]
        pos += size + 2
