"""A backend that parses what it receives with h11 (strict, independent of llhttp) and records it.

Every connection is served by one selector thread. Each request h11 parses is answered with a
small 200 that carries its sequence number and the target the backend saw (``X-Fuzz-Seq``,
``X-Fuzz-Target``), so a client can tell which request a response belongs to. Everything is
appended to ``events`` in the order it happened: bytes received, requests parsed, requests cut
short by EOF, h11 protocol errors (answered with a 400 and a close, as a strict server would)
and bytes left over after a message that ends the connection.
"""
from __future__ import annotations

import selectors
import socket
import threading
from dataclasses import dataclass, field

import h11

# Event kinds.
DATA = "data"            # bytes received (detail: the bytes)
REQUEST = "request"      # a complete request (request: BackendRequest)
CUT = "cut"              # EOF in the middle of a request (request: the part read; detail: h11's words)
ERROR = "error"          # h11 refused the bytes (detail: h11's words; leftover: what it had not read)
LEFTOVER = "leftover"    # bytes after a request that ends the connection (leftover: them)
CLOSED = "closed"        # the peer closed between requests

# A request h11 switches protocols on when answered 2xx; answered so that it does not switch.
_CONNECT_STATUS = 405


@dataclass
class BackendRequest:
    """One request as h11 parsed it on the backend side."""

    conn: int
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    seq: int = -1  # set when complete: the number echoed to the client

    def header_values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]

    def summary(self) -> str:
        body = self.body if len(self.body) <= 120 else self.body[:120] + b"..."
        return (f"#{self.seq} {self.method.decode('latin-1')} {self.target!r} HTTP/{self.version.decode()} "
                f"headers={[(n.decode('latin-1'), v) for n, v in self.headers]} body={body!r}")


@dataclass
class BackendEvent:
    kind: str
    conn: int
    request: BackendRequest | None = None
    detail: str | bytes = b""
    leftover: bytes = b""


@dataclass
class _Connection:
    index: int
    sock: socket.socket
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))
    partial: BackendRequest | None = None  # the request whose head was read and whose end was not


class RecordingBackend:
    """Context manager: an h11 backend on 127.0.0.1, port 0, recording into ``events``."""

    def __init__(self) -> None:
        self.events: list[BackendEvent] = []
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._connections: dict[int, _Connection] = {}
        self._accepted = 0
        self._seq = 0
        self._barriers: list[threading.Event] = []
        self._drop = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recording-backend", daemon=True)

    def __enter__(self) -> RecordingBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._thread.join(5)
        for conn in list(self._connections.values()):
            conn.sock.close()
        self.listener.close()
        self._selector.close()

    # -- for the test: windows of events --------------------------------------------------
    def mark(self) -> int:
        """Where the next event will be: ``since(mark)`` returns what came after."""
        return len(self.events)

    def since(self, mark: int) -> list[BackendEvent]:
        return self.events[mark:]

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until the backend has read and handled every byte that has reached its sockets."""
        done = threading.Event()
        with self._lock:
            self._barriers.append(done)
        return done.wait(timeout)

    def drop_connections(self) -> None:
        """Close every backend connection (a clean slate after an example that left debris)."""
        with self._lock:
            self._drop = True
        self.settle()

    # -- the selector thread ----------------------------------------------------------------
    def _run(self) -> None:
        quiet_checks = 0
        while not self._stopped.is_set():
            with self._lock:
                waiting = bool(self._barriers)
                drop = self._drop
                self._drop = False
            if drop:
                for conn in list(self._connections.values()):
                    self._close(conn)
            ready = self._selector.select(0 if waiting else 0.05)
            for key, _ in ready:
                if key.data is None:
                    self._accept()
                else:
                    self._readable(key.data)
            if waiting:
                # Two empty looks in a row: nothing that had arrived is left unread.
                quiet_checks = quiet_checks + 1 if not ready else 0
                if quiet_checks >= 2:
                    quiet_checks = 0
                    with self._lock:
                        barriers, self._barriers = self._barriers, []
                    for barrier in barriers:
                        barrier.set()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.settimeout(2.0)  # recv only when readable; sendall may wait this long
            conn = _Connection(self._accepted, sock)
            self._accepted += 1
            self._connections[conn.index] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except OSError:
            data = b""
        if data:
            self.events.append(BackendEvent(DATA, conn.index, detail=data))
        conn.h11.receive_data(data)  # b"" is EOF
        self._handle(conn)

    def _handle(self, conn: _Connection) -> None:
        parser = conn.h11
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(conn, str(exc))
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Request):
                conn.partial = BackendRequest(conn.index, event.method, event.target, event.http_version,
                                              list(event.headers))
            elif isinstance(event, h11.Data):
                conn.partial.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if not self._answer(conn):
                    return
            elif isinstance(event, h11.ConnectionClosed):
                self.events.append(BackendEvent(CLOSED, conn.index))
                self._close(conn)
                return
            else:  # PAUSED cannot come: every request is answered at its end, denying any switch
                self._refuse(conn, f"unexpected h11 event {event!r}")
                return

    def _answer(self, conn: _Connection) -> bool:
        """Record and answer a complete request; False when the connection ends here."""
        request, conn.partial = conn.partial, None
        request.seq = self._seq
        self._seq += 1
        self.events.append(BackendEvent(REQUEST, conn.index, request))
        parser = conn.h11
        body = b"seq %d\n" % request.seq
        status = _CONNECT_STATUS if request.method == b"CONNECT" else 200  # 200 also denies an Upgrade
        head = h11.Response(status_code=status, headers=[
            (b"Content-Length", b"%d" % len(body)), (b"X-Fuzz-Seq", b"%d" % request.seq),
            (b"X-Fuzz-Target", request.target), (b"X-Fuzz-Conn", b"%d" % conn.index),
        ])
        try:
            conn.sock.sendall(parser.send(head) + parser.send(h11.Data(data=body)) + parser.send(h11.EndOfMessage()))
        except OSError:
            self._close(conn)
            return False
        if parser.our_state is h11.MUST_CLOSE:
            leftover, _ = parser.trailing_data
            if leftover:
                self.events.append(BackendEvent(LEFTOVER, conn.index, leftover=bytes(leftover)))
            self._close(conn)
            return False
        parser.start_next_cycle()
        return True

    def _refuse(self, conn: _Connection, reason: str) -> None:
        """h11 could not parse it: record, answer 400 as a strict server would, close."""
        leftover, eof = conn.h11.trailing_data
        partial, conn.partial = conn.partial, None
        if eof and partial is not None and reason.startswith("peer closed connection without sending complete"):
            self.events.append(BackendEvent(CUT, conn.index, partial, reason))
        elif eof and partial is None and not leftover:
            self.events.append(BackendEvent(CLOSED, conn.index))
        else:
            self.events.append(BackendEvent(ERROR, conn.index, partial, reason, bytes(leftover)))
            try:
                conn.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nX-Fuzz-Error: 1\r\n"
                                  b"Connection: close\r\n\r\n")
            except OSError:
                pass
        self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if self._connections.pop(conn.index, None) is None:
            return
        self._selector.unregister(conn.sock)
        conn.sock.close()
