"""The reference reading of a client's bytes: what h11, a strict server, parses from them.

``read(raw)`` feeds the bytes and an EOF to an h11 server connection and answers each request
as the recording backend does (2xx, or 405 for CONNECT, so no protocol switch happens). It
stops where a server would: at h11's first error, or after a request that closes the
connection. One departure from h11, to match RFC 9112 §9.3: an HTTP/1.0 request with
``Connection: keep-alive`` (and no ``close``) keeps the connection (h11 never does; llhttp does).
"""
from __future__ import annotations

from dataclasses import dataclass

import h11

SCHEMES = (b"http://", b"https://")


@dataclass
class RefRequest:
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]  # names lower-cased, as h11 gives them
    body: bytes = b""

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]

    def connection_tokens(self) -> set[bytes]:
        return {t.strip().lower() for v in self.values(b"connection") for t in v.split(b",") if t.strip()}

    def absolute_form(self) -> tuple[bytes, bytes] | None:
        """``(authority, origin-form target)`` for an absolute-form http(s) target, else None."""
        if not self.target.lower().startswith(SCHEMES):
            return None
        rest = self.target.split(b"://", 1)[1]
        cut = min([i for i in (rest.find(b"/"), rest.find(b"?")) if i != -1], default=len(rest))
        path = rest[cut:]
        return rest[:cut], path if path.startswith(b"/") else b"/" + path

    def forwarded_target(self) -> bytes:
        """The target a backend must get: origin-form for an absolute-form target (RFC 9112 §3.2.2)."""
        absolute = self.absolute_form()
        return absolute[1] if absolute else self.target

    def summary(self) -> str:
        body = self.body if len(self.body) <= 120 else self.body[:120] + b"..."
        return f"{self.method.decode('latin-1')} {self.target!r} HTTP/{self.version.decode()} body={body!r}"


@dataclass
class Reference:
    requests: list[RefRequest]
    error: str | None = None   # h11's words when it refused what follows ``requests``
    closed_by: str = ""        # why reading stopped before the end of the bytes, if it did
    unread: bytes = b""        # the bytes not read as part of ``requests``

    def summary(self) -> str:
        lines = [f"  [{i}] {r.summary()}" for i, r in enumerate(self.requests)]
        if self.error:
            lines.append(f"  then h11 refuses: {self.error} (unread: {self.unread[:160]!r})")
        elif self.closed_by:
            lines.append(f"  then the connection ends ({self.closed_by}); unread: {self.unread[:160]!r}")
        return "\n".join(lines) or "  (nothing)"


def read(raw: bytes) -> Reference:
    requests: list[RefRequest] = []
    conn = _connection(raw)
    current: RefRequest | None = None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return Reference(requests, error=str(exc), unread=bytes(conn.trailing_data[0]))
        if isinstance(event, h11.Request):
            current = RefRequest(event.method, event.target, event.http_version, list(event.headers))
        elif isinstance(event, h11.Data):
            current.body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            requests.append(current)
            status = 405 if current.method == b"CONNECT" else 200
            conn.send(h11.Response(status_code=status, headers=[(b"Content-Length", b"0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                unread = bytes(conn.trailing_data[0])
                tokens = current.connection_tokens()
                if current.version == b"1.0" and b"keep-alive" in tokens and b"close" not in tokens:
                    conn = _connection(unread)  # HTTP/1.0 keep-alive: the next request starts afresh
                    continue
                reason = "Connection: close" if b"close" in tokens else f"HTTP/{current.version.decode()}"
                return Reference(requests, closed_by=reason, unread=unread)
            conn.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed):
            return Reference(requests)
        else:
            raise AssertionError(f"reference: unexpected h11 event {event!r}")


def _connection(raw: bytes) -> h11.Connection:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    conn.receive_data(b"")  # the whole input is known: EOF ends it
    return conn
