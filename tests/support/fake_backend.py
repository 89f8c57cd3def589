"""Raw-socket test peers for misbehaving-backend and client-edge tests: a scripted backend
that answers each request head with whatever bytes a test gives it, and a blocking client
that decodes HTTP/1.1 framing by hand so tests can assert on exact bytes.

The backend serves each connection on its own thread; it reads one request head (plus a
Content-Length body, if any) at a time, in order, so pipelined requests are answered in turn.
Nothing here knows HTTP beyond finding the end of a head and the Content-Length.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

# What happens to a backend connection after a reply is sent.
KEEP = "keep"    # read the next request on the same connection
CLOSE = "close"  # close it (FIN)
HANG = "hang"    # stay open and silent until the peer closes or the backend stops
RESET = "reset"  # close it with RST (SO_LINGER 0)


@dataclass(frozen=True)
class Reply:
    """Bytes to send for one request, then what to do with the connection.

    ``data`` may be a tuple of byte strings: they are sent as separate writes with ``gap``
    seconds between them (e.g. a 100 Continue, then the final response).
    """

    data: bytes | tuple[bytes, ...] = b""
    then: str = KEEP
    gap: float = 0.05

    def parts(self) -> tuple[bytes, ...]:
        return self.data if isinstance(self.data, tuple) else (self.data,)


SILENT = Reply(b"", HANG)  # accept the request and never answer

Script = Union[Iterable[Union[bytes, Reply]], Callable[[bytes, int], Union[bytes, Reply]]]


class FakeBackend:
    """A scriptable HTTP/1.1 backend on 127.0.0.1, port 0; use as a context manager.

    ``script`` is either a sequence of replies used in order across all connections (a
    request beyond the end closes its connection unanswered) or a callable
    ``(request_head, connection_index) -> bytes | Reply``. Bare bytes mean ``Reply(bytes)``.

    ``connections`` counts accepted connections; ``requests`` holds each raw request head
    (request line and headers, final CRLF CRLF included) in arrival order, and
    ``request_connections`` the index of the connection each arrived on.
    """

    def __init__(self, script: Script) -> None:
        self._script = script if callable(script) else list(script)
        self._next = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.connections = 0
        self.closed_connections = 0
        self.requests: list[bytes] = []
        self.request_connections: list[int] = []
        self.bodies: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="fake-backend", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeBackend:
        self._acceptor.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        self._acceptor.join(5)
        self.listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(5)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self.connections - self.closed_connections

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= n:
                return True
            time.sleep(0.01)
        return False

    # -- serving ------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return
            with self._lock:
                index = self.connections
                self.connections += 1
                self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _reply_for(self, head: bytes, index: int) -> Reply | None:
        with self._lock:
            if callable(self._script):
                reply = self._script(head, index)
            elif self._next < len(self._script):
                reply = self._script[self._next]
                self._next += 1
            else:
                return None
        return reply if isinstance(reply, Reply) else Reply(reply)

    def _serve(self, sock: socket.socket, index: int) -> None:
        sock.settimeout(0.1)
        buf = bytearray()
        try:
            while not self._stopped.is_set():
                head = self._read_until(sock, buf, b"\r\n\r\n")
                if head is None:
                    return
                body = self._read_exact(sock, buf, _content_length(head))
                if body is None:
                    return
                with self._lock:
                    self.requests.append(head)
                    self.request_connections.append(index)
                    self.bodies.append(body)
                reply = self._reply_for(head, index)
                if reply is None:
                    return
                for i, part in enumerate(reply.parts()):
                    if i:
                        time.sleep(reply.gap)
                    if part:
                        sock.sendall(part)
                if reply.then == KEEP:
                    continue
                if reply.then == HANG:
                    self._wait_for_peer_close(sock)
                elif reply.then == RESET:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
        except OSError:
            return
        finally:
            sock.close()
            with self._lock:
                self.closed_connections += 1

    def _recv(self, sock: socket.socket) -> bytes | None:
        """One read; None once the peer closed or the backend stopped."""
        while not self._stopped.is_set():
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            return data or None
        return None

    def _read_until(self, sock: socket.socket, buf: bytearray, delim: bytes) -> bytes | None:
        while (i := buf.find(delim)) < 0:
            data = self._recv(sock)
            if data is None:
                return None
            buf += data
        out = bytes(buf[: i + len(delim)])
        del buf[: i + len(delim)]
        return out

    def _read_exact(self, sock: socket.socket, buf: bytearray, n: int) -> bytes | None:
        while len(buf) < n:
            data = self._recv(sock)
            if data is None:
                return None
            buf += data
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _wait_for_peer_close(self, sock: socket.socket) -> None:
        while self._recv(sock) is not None:
            pass  # drain and drop whatever else arrives


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


# -- the client side -----------------------------------------------------------------------

@dataclass
class RawResponse:
    """One response as it arrived: status line, headers in order, decoded body.

    ``complete`` is False when the connection ended before the framing said the body was
    over (Content-Length not reached, or no terminating 0-chunk). ``interim`` holds any 1xx
    responses that came first; ``raw_body`` the body bytes as framed on the wire.
    """

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw_body: bytes = b""
    complete: bool = True
    interim: list[RawResponse] = field(default_factory=list)

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 80 else self.body[:80] + b"..."
        return (f"<RawResponse {self.version} {self.status} {self.reason!r} headers={self.headers!r} "
                f"body={body!r} ({len(self.body)} bytes) complete={self.complete} "
                f"interim={[r.status for r in self.interim]}>")

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return ", ".join(values) if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def has_header(self, name: str) -> bool:
        return any(n.lower() == name.lower() for n, _ in self.headers)


class RawClient:
    """A blocking HTTP/1.1 client on one socket that decodes framing by hand.

    Reads raise ``socket.timeout`` after ``timeout`` seconds of silence, so a proxy that
    wrongly waits shows up as a failure, never as a hung test.
    """

    def __init__(self, port: int, timeout: float = 10.0, rcvbuf: int | None = None) -> None:
        self.timeout = timeout
        self.sock = socket.socket()
        if rcvbuf is not None:  # before connect, so the window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        """Read once; False at EOF (a reset counts as EOF: the peer is gone either way)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def poll(self, wait: float) -> None:
        """Read whatever arrives within ``wait`` seconds (into ``buf``, or setting ``eof``)."""
        self.sock.settimeout(wait)
        try:
            self._fill()
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(self.timeout)

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, delim: bytes) -> bytes | None:
        """Bytes up to and including ``delim``; None if the connection ended first."""
        while (i := self.buf.find(delim)) < 0:
            if not self._fill():
                return None
        return self._take(i + len(delim))

    def read_exact(self, n: int) -> bytes:
        """Up to ``n`` bytes: fewer only if the connection ended first."""
        while len(self.buf) < n and self._fill():
            pass
        return self._take(min(n, len(self.buf)))

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        return self._take(len(self.buf))

    def closed_by_peer(self) -> bool:
        """True if the peer has closed: nothing buffered and the next read is EOF."""
        if self.buf:
            return False
        return not self._fill()

    def read_head(self) -> RawResponse:
        head = self.read_until(b"\r\n\r\n")
        if head is None:
            raise ConnectionError(f"connection closed before a response head; got {bytes(self.buf)!r}")
        lines = head.decode("latin-1").split("\r\n")[:-2]
        version, status, *reason = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        return RawResponse(version, int(status), reason[0] if reason else "", headers)

    def read_response(self, method: str = "GET") -> RawResponse:
        """The next final response (1xx before it go to ``interim``) with its body decoded."""
        interim = []
        resp = self.read_head()
        while 100 <= resp.status < 200:
            interim.append(resp)
            resp = self.read_head()
        resp.interim = interim
        return self.read_body(resp, method)

    def read_body(self, resp: RawResponse, method: str = "GET") -> RawResponse:
        """Read and decode the body that ``resp`` (a head just read) announces."""
        if method == "HEAD" or resp.status in (204, 304):
            return resp
        codings = [c.strip().lower() for c in (resp.header("transfer-encoding") or "").split(",")]
        if codings[-1] == "chunked":  # the final coding frames the message (RFC 9112 §6.3)
            self._read_chunked(resp)
        elif resp.header("content-length") is not None:
            n = int(resp.header("content-length"))
            resp.body = resp.raw_body = self.read_exact(n)
            resp.complete = len(resp.body) == n
        else:
            resp.body = resp.raw_body = self.read_to_eof()
        return resp

    def _read_chunked(self, resp: RawResponse) -> None:
        body, raw = bytearray(), bytearray()
        resp.complete = False
        while True:
            size_line = self.read_until(b"\r\n")
            if size_line is None:
                raw += self._take(len(self.buf))
                break
            raw += size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                trailer = self.read_until(b"\r\n")  # no trailers expected: just the last CRLF
                if trailer is not None:
                    raw += trailer
                    resp.complete = trailer == b"\r\n"
                break
            data = self.read_exact(size)
            body += data
            raw += data
            if len(data) < size:
                break
            crlf = self.read_exact(2)
            raw += crlf
            if crlf != b"\r\n":
                break
        resp.body, resp.raw_body = bytes(body), bytes(raw)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
