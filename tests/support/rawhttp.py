"""Raw-socket HTTP/1.1 client helpers, for tests where the exact bytes matter."""
from __future__ import annotations

import socket

import httptools


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_close(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.complete = False

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.decode().lower() == name.lower():
                return v.decode("latin-1")
        return None


class ResponseReader:
    """Parses responses off a socket one by one, in order (pipelining-safe)."""

    def __init__(self, sock: socket.socket, head_request: bool = False) -> None:
        self.sock = sock
        self.done: list[Response] = []
        self.current: Response | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False

    def on_message_begin(self) -> None:
        self.current = Response()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.current.complete = True
        if self.current.status >= 200:
            self.done.append(self.current)
        self.current = None

    def read(self, count: int = 1) -> list[Response]:
        while len(self.done) < count and not self.closed:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                break
            self.parser.feed_data(data)
        out, self.done = self.done[:count], self.done[count:]
        return out


def request(port: int, raw: bytes) -> tuple[Response | None, bool]:
    """Send raw bytes, read one response; return it and whether the server then closed."""
    sock = connect(port)
    try:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        responses = reader.read(1)
        response = responses[0] if responses else None
        sock.settimeout(5)
        try:
            rest = sock.recv(1)
            closed = rest == b""
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
        return response, closed
    finally:
        sock.close()
