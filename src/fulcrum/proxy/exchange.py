"""One request/response exchange, read as its phases: prepare (check and rewrite
the head) → route → filters (on request) → pick → forward → respond (filters on
response) → finish → log (filters on log, metrics).

An exchange is done when its response is fully written; if the request body
was not fully read by then, the client connection closes, because the rest of
that body would otherwise be read as the next request.
"""
from __future__ import annotations

import logging
import re
from time import monotonic
from typing import TYPE_CHECKING

from fulcrum.filters.chain import EMPTY
from fulcrum.http.errors import BadRequest, HttpError
from fulcrum.filters.client_ip import client_ip
from fulcrum.http.headers import (
    CONNECTION, CONTENT_LENGTH, FORWARDED_FOR, HOST, PEER, REQUEST_HEADERS, REQUEST_ID,
    RESPONSE_HEADERS, TRANSFER_ENCODING, asks_websocket, check_transfer_encoding, host_without_port,
    named_by_connection, split_absolute_form, valid_authority, without_named,
)
from fulcrum.http.responses import error_response
from fulcrum.proxy.flow_control import BACKPRESSURE, CONNECTING
from fulcrum.proxy.failover import Failover
from fulcrum.proxy.tunnel import Tunnel

if TYPE_CHECKING:
    from fulcrum.proxy.client import ClientConnection
    from fulcrum.proxy.upstream import UpstreamConnection
    from fulcrum.runtime.state import Runtime

log = logging.getLogger("fulcrum.proxy")

# How the response body reaches the client.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)
_LAST_CHUNK = b"0\r\n\r\n"
_GATEWAY_FAILURES = frozenset({502, 503, 504})
# A client's X-Request-ID is kept only when it is 1-200 visible ASCII characters: it is
# echoed into logs and responses, where a space or a line break could forge a field or a line.
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}")
_ALLOW = b"Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n"


class Exchange(Failover):
    """A request on a client connection and the response that answers it."""

    __slots__ = (
        "client", "runtime", "method", "target", "headers", "http11", "keep_alive",
        "client_ip", "request_id", "host", "chunked", "has_body", "upstream_head",
        "pool", "backend", "conn", "pending_body", "request_done", "body_bytes",
        "response_started", "response_done", "head_pending", "framing", "status",
        "sent_at", "retried", "aborted", "bytes_out", "content_length",
        "tries", "tried", "replay", "replay_bytes", "started_at", "retry_timer",
        "route", "chain", "received_at", "upstream_time", "duration", "limit", "upgrade",
        "hostless_head",
    )

    def __init__(self, client: "ClientConnection", runtime: "Runtime", method: bytes,
                 target: bytes, headers: list[tuple[bytes, bytes]], http11: bool,
                 keep_alive: bool) -> None:
        self.client = client
        self.runtime = runtime
        self.method = method
        self.target = target
        self.headers = headers
        self.http11 = http11
        self.keep_alive = keep_alive
        self.client_ip = client.client_ip
        self.request_id = b""
        self.host = b""
        self.chunked = False
        self.has_body = False
        self.upstream_head = b""
        self.pool = None
        self.backend = None
        self.conn: UpstreamConnection | None = None
        self.pending_body: list[bytes] | None = None
        self.request_done = False
        self.body_bytes = 0
        self.response_started = False
        self.response_done = False
        self.head_pending: bytes | None = None
        self.framing = NO_BODY
        self.status = 0
        self.sent_at = 0.0
        self.retried = False
        self.aborted = False
        self.bytes_out = 0
        self.content_length = 0
        self.tries = 0
        self.tried: tuple = ()
        self.replay: list[bytes] | None = None  # body kept for a retry (when small enough)
        self.replay_bytes = 0
        self.started_at = 0.0
        self.retry_timer = None
        self.route = ""
        self.chain = EMPTY
        self.received_at = monotonic()
        self.upstream_time = 0.0   # request sent → response head, for the last try
        self.duration = 0.0        # head received → exchange ended, set before the log phase
        self.limit = None          # the rate limiter's Decision, when one was taken
        self.upgrade: bytes | None = None  # the Upgrade asked for and passed on (WebSocket)
        self.hostless_head: list[bytes] | None = None  # see prepare(): HTTP/1.0 without Host

    # -- RequestInfo, for strategies and routes --------------------------------
    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    # -- for filters ---------------------------------------------------------------
    def header_values(self, name: bytes) -> list[bytes]:
        """Every field line of header ``name`` (lower case), in order."""
        return [value for key, value in self.headers if key.lower() == name]

    @property
    def secure(self) -> bool:
        """True when the client connection is TLS."""
        return self.client.tls

    @property
    def rate_limited(self) -> bool:
        return self.limit is not None and not self.limit.allowed

    # -- phase: prepare (runs as soon as the head is parsed) ---------------------
    def prepare(self, upgrade: bool = False) -> None:
        """Check the head and build the request line and headers for the backend.

        ``upgrade``: llhttp saw ``Connection: upgrade`` (or a CONNECT). Only a GET without a
        body that asks for ``websocket`` may become a tunnel, and only ``websocket`` is passed
        on; any other upgrade request is an ordinary request without its upgrade headers.
        Hop-by-hop headers go by name, never by line: a Connection token can drop neither the
        request line, Host, the framing headers nor the forwarding headers Fulcrum writes.
        Raises HttpError for anything ambiguous; the connection then answers and closes.
        """
        method = self.method
        if method == b"CONNECT":
            raise HttpError(405, "CONNECT is not proxied", _ALLOW)
        runtime = self.runtime
        target = self.target
        authority = None
        if target[:1] != b"/":
            if target[:4].lower() == b"http":
                authority, target = split_absolute_form(target)
                self.target = target
            elif target != b"*" or method != b"OPTIONS":
                raise BadRequest("request target must be a path, an absolute URL, or * for OPTIONS")
        lines = [b""]  # [0]: the request line and Host, written last
        hosts: list[bytes] = []
        forwarded_for: list[bytes] = []
        te: list[bytes] = []
        content_length: bytes | None = None
        named: set[bytes] | None = None
        peer_headers = False
        for name, value in self.headers:
            kind = REQUEST_HEADERS.get(name.lower())
            if kind is None:
                lines.append(b"%s: %s\r\n" % (name, value))
            elif kind == HOST:
                hosts.append(value)
            elif kind == CONTENT_LENGTH:
                content_length = value
            elif kind == TRANSFER_ENCODING:
                te.append(value)
            elif kind == FORWARDED_FOR:
                forwarded_for.append(value)
            elif kind == REQUEST_ID:
                if _REQUEST_ID.fullmatch(value):
                    self.request_id = value
            elif kind == CONNECTION:
                tokens = named_by_connection(value)
                if tokens:
                    named = tokens if named is None else named | tokens
            elif kind == PEER:
                peer_headers = True
        if len(hosts) > 1:
            raise BadRequest("more than one Host header")
        if hosts:
            host = hosts[0]
            if host != self.client.valid_host:  # checked once per keep-alive connection
                if not valid_authority(host):
                    raise BadRequest("invalid Host header")
                self.client.valid_host = host
        elif self.http11:
            raise BadRequest("missing Host header")
        else:
            host = b""
        if authority is not None:
            host = authority  # RFC 9112 §3.2.2: the target's authority wins over Host
        self.host = host
        if peer_headers and self._keeps_peer_headers():
            lines.extend(b"%s: %s\r\n" % (n, v) for n, v in self.headers if REQUEST_HEADERS.get(n.lower()) == PEER)
        if named:
            lines[1:] = without_named(lines[1:], named)
        if te or content_length is not None:
            lines.append(self._body_framing(te, content_length, runtime.settings.max_body_size))
        if upgrade and method == b"GET" and not self.has_body and asks_websocket(self.header(b"upgrade")):
            self.upgrade = b"websocket"
            lines.append(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
        if not self.request_id:
            self.request_id = self.client.server.next_request_id()
        client = self.client
        trusted = runtime.trusted
        if trusted is not None and client.trusts_peer(trusted):
            self.client_ip = self.forwarded_client(trusted)
        client_ip = client.client_ip_bytes
        if forwarded_for:
            xff = b", ".join(forwarded_for) + b", " + client_ip
        else:
            xff = client_ip
        if host:
            lines.append(b"X-Forwarded-Host: %s\r\n" % host)
        lines.append(b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\nX-Request-ID: %s\r\n\r\n"
                     % (xff, b"https" if client.tls else b"http", self.request_id))
        if host:
            lines[0] = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, host)
            self.upstream_head = b"".join(lines)
        else:
            # HTTP/1.0 without Host: the backend's authority is written once one is picked.
            lines[0] = b"%s %s HTTP/1.1\r\n" % (method, target)
            self.upstream_head = b""
            self.hostless_head = lines

    def _keeps_peer_headers(self) -> bool:
        """The forwarded_headers policy for a client's Forwarded and X-Real-IP."""
        policy = self.runtime.forwarded_headers
        if policy == "keep":
            return True
        if policy == "remove":
            return False
        trusted = self.runtime.trusted
        return trusted is not None and self.client.trusts_peer(trusted)

    def forwarded_client(self, trusted) -> str:
        """The client address a trusted peer vouches for in the header it writes
        (``client_ip_header``), or the peer's own address; see filters/client_ip.py."""
        name = self.runtime.client_ip_header
        return client_ip(self.client.client_ip, self.header_values(name), trusted, name == b"forwarded")

    def _head_for(self, backend) -> bytes:
        """The upstream head of a request that came without Host: the backend's authority."""
        lines = self.hostless_head
        host = backend.host
        if ":" in host:
            host = f"[{host}]"
        authority = host if backend.port == 80 else f"{host}:{backend.port}"
        return lines[0] + b"Host: %s\r\n" % authority.encode() + b"".join(lines[1:])

    def _body_framing(self, te: list[bytes], content_length: bytes | None, limit: int) -> bytes:
        """The framing header for the backend; a single ``chunked`` or one length."""
        if te:
            check_transfer_encoding(te)
            self.chunked = self.has_body = True
            return b"Transfer-Encoding: chunked\r\n"
        length = int(content_length)  # llhttp has checked it is decimal and single
        if limit and length > limit:
            raise HttpError(413, f"Content-Length {length} exceeds the limit of {limit} bytes")
        self.has_body = length > 0
        self.content_length = length
        return b"Content-Length: %s\r\n" % content_length

    # -- phases: route → filters → pick → forward (when this exchange is at the head of the line)
    def start(self) -> None:
        try:
            self._start()
        except Exception as exc:  # recovery: a bug costs this request a 500, nothing more
            self.internal_error(exc, "start")

    def _start(self) -> None:
        runtime = self.runtime
        destination = runtime.single or runtime.router.match(
            host_without_port(self.host) if self.host else "", self.target, self.header
        ) or runtime.unrouted
        self.route = destination.name
        self.chain = chain = destination.chain
        if chain.request:
            for hook in chain.request:
                reply = hook(self)
                if reply is not None:
                    self.respond_local(reply.status, reply.detail, reply.header_bytes)
                    return
        pool = destination.pool
        if pool is None:
            self.respond_local(404)
            return
        self.pool = pool
        if pool.retry is not None:
            self.started_at = monotonic()
            if pool.budget is not None:
                pool.budget.record_request(self.started_at)
            if self.has_body:
                self.replay = []
                self._keep_for_replay(self.pending_body or ())
        self.try_backend()

    def try_backend(self) -> None:
        """Phase pick + forward, for the first try and every retry."""
        self.retry_timer = None
        if self.aborted:
            return
        if self.tries and self.has_body and self.replay is None:
            # The body outgrew retry.max_body while we waited to retry.
            self.respond_local(502, "request body too large to replay on another backend")
            return
        pool = self.pool
        backend = pool.pick(self, self.tried)
        if backend is None and self.tried:
            backend = pool.pick(self)  # no other backend: the same one again
        if backend is None:
            retry_after = b"Retry-After: %d\r\n" % pool.retry_after(monotonic())
            self.respond_local(503, f"pool {pool.name!r} has no available backend", retry_after)
            return
        self.backend = backend
        self.tries += 1
        if pool.retry is not None:
            self.tried += (backend,)
        backend.in_flight += 1
        backend.requests += 1
        conn = pool.connections[backend.id].acquire()
        if conn is not None:
            self.forward(conn)
        else:
            self.connect()

    def connect(self) -> None:
        if not self.request_done:
            self.client.gate.pause(CONNECTING)
        self.pool.connections[self.backend.id].connect(self, _connected)

    def forward(self, conn: "UpstreamConnection") -> None:
        """Send the head (and any body read so far) on ``conn``."""
        self.conn = conn
        conn.attach(self, self.method == b"HEAD")
        parts = [self.upstream_head or self._head_for(self.backend)]
        body = self.replay if self.tries > 1 else self.pending_body
        if body:
            for chunk in body:
                parts.extend(self._frame_body(chunk))
        self.pending_body = None
        if self.request_done and self.chunked:
            parts.append(_LAST_CHUNK)
        transport = conn.transport
        if len(parts) == 1:
            transport.write(parts[0])
        else:
            transport.writelines(parts)
        self.sent_at = monotonic()
        if self.request_done:
            # The backend's silence is timed from the end of the request: a slow
            # upload is the client's doing (timeouts.client_body), not the backend's.
            conn.arm_response_timer(self._try_timeout())
        self.client.gate.resume(CONNECTING)

    def _frame_body(self, chunk: bytes) -> tuple[bytes, ...]:
        if self.chunked:
            return (b"%x\r\n" % len(chunk), chunk, b"\r\n")
        return (chunk,)

    # -- request body, from the client connection ------------------------------
    def on_request_body(self, chunk: bytes) -> None:
        self.body_bytes += len(chunk)
        limit = self.runtime.settings.max_body_size
        if limit and self.body_bytes > limit:
            raise HttpError(413, f"request body exceeds the limit of {limit} bytes")
        if self.response_done:
            return  # answered already; the connection closes after this request
        if self.replay is not None:
            self._keep_for_replay((chunk,))
        conn = self.conn
        if conn is None:
            if self.pending_body is None:
                self.pending_body = []
            self.pending_body.append(chunk)
        elif self.chunked:
            conn.transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
        else:
            conn.transport.write(chunk)

    def _keep_for_replay(self, chunks) -> None:
        for chunk in chunks:
            self.replay_bytes += len(chunk)
            self.replay.append(chunk)
        if self.replay_bytes > self.pool.retry.max_body:
            self.replay = None  # too large to keep: this request will not be retried

    def on_request_complete(self) -> None:
        self.request_done = True
        conn = self.conn
        if conn is not None and not self.response_done:
            if self.chunked:
                conn.transport.write(_LAST_CHUNK)
            conn.arm_response_timer(self._try_timeout())

    # -- response, from the upstream connection --------------------------------
    def on_informational(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """Relay 100 Continue / 103 Early Hints to HTTP/1.1 clients (RFC 9110 §15.2)."""
        if not self.http11 or self.response_started:
            return
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        lines.extend(b"%s: %s\r\n" % (n, v) for n, v in headers if n.lower() not in RESPONSE_HEADERS)
        lines.append(b"\r\n")
        self.client.transport.write(b"".join(lines))

    def on_response_head(self, conn: "UpstreamConnection", status: int, reason: bytes,
                         headers: list[tuple[bytes, bytes]]) -> bool:
        """Build the client's response head; False when this response is dropped for a retry."""
        now = monotonic()  # the strategies' clock; loop.time() only has ms resolution
        backend = self.backend
        self.upstream_time = now - self.sent_at
        backend.latency.observe(self.upstream_time, now)
        pool = self.pool
        if status in _GATEWAY_FAILURES:
            if self.retry_on_status(status):
                self.conn = None
                return False
        elif backend.breaker is not None or pool.outliers is not None:
            pool.record(backend, True, now)
        self.status = status
        out = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        content_length: bytes | None = None
        codings: list[bytes] | None = None
        named: set[bytes] | None = None
        for name, value in headers:
            kind = RESPONSE_HEADERS.get(name.lower())
            if kind is None:
                out.append(b"%s: %s\r\n" % (name, value))
            elif kind == CONTENT_LENGTH:
                content_length = value
            elif kind == TRANSFER_ENCODING:
                codings = (codings or []) + [c.strip() for c in value.split(b",") if c.strip()]
            elif kind == CONNECTION:
                tokens = named_by_connection(value)
                if tokens:
                    named = tokens if named is None else named | tokens
        if named:
            out[1:] = without_named(out[1:], named)
        self.framing = self._response_framing(status, conn, content_length, codings, out)
        if self.chain.response:
            try:
                out = self.chain.respond(self, status, out)
            except Exception as exc:
                self.internal_error(exc, "response filter")
                return False  # the backend's response is dropped, and its connection with it
        out.append(b"X-Request-ID: %s\r\n" % self.request_id)
        if pool.tries_header:
            out.append(b"X-Fulcrum-Tries: %d\r\n" % self.tries)
        if not self.keep_alive:
            out.append(b"Connection: close\r\n\r\n")
        elif not self.http11:
            out.append(b"Connection: keep-alive\r\n\r\n")
        else:
            out.append(b"\r\n")
        self.head_pending = b"".join(out)
        return True

    def _response_framing(self, status: int, conn: "UpstreamConnection", content_length: bytes | None,
                          codings: list[bytes] | None, out: list[bytes]) -> int:
        if self.method == b"HEAD" or status == 304 or status == 204:
            if content_length is not None and status != 204:
                out.append(b"Content-Length: %s\r\n" % content_length)
            return NO_BODY
        if codings is None and content_length is not None:
            out.append(b"Content-Length: %s\r\n" % content_length)
            conn.body_left = int(content_length)  # llhttp has checked it is one decimal number
            return LENGTH
        # llhttp removes only a final "chunked"; other codings (gzip …) stay in the
        # body bytes and must stay declared (RFC 9112 §6.1).
        chunked = bool(codings) and codings[-1].lower() == b"chunked"
        kept = codings[:-1] if chunked else (codings or [])
        if not chunked:
            conn.expect_eof = True  # close-delimited: the backend's EOF ends the body
            conn.reusable = False
        if self.http11:
            out.append(b"Transfer-Encoding: %s\r\n" % b", ".join(kept + [b"chunked"]))
            return CHUNKED
        if kept:
            out.append(b"Transfer-Encoding: %s\r\n" % b", ".join(kept))
        self.keep_alive = False  # an HTTP/1.0 client learns the end from our close
        return UNTIL_CLOSE

    def on_response_body(self, chunk: bytes) -> None:
        transport = self.client.transport
        self.bytes_out += len(chunk)
        head = self.head_pending
        if self.framing == CHUNKED:
            parts = (b"%x\r\n" % len(chunk), chunk, b"\r\n")
            if head is not None:
                parts = (head,) + parts
            transport.writelines(parts)
        elif head is not None:
            # One write, one syscall; small bodies are cheaper to copy than to writev.
            if len(chunk) <= 16384:
                transport.write(head + chunk)
            else:
                transport.writelines((head, chunk))
        else:
            transport.write(chunk)
        if head is not None:
            self.head_pending = None
            self.response_started = True

    def on_response_complete(self, conn: "UpstreamConnection") -> None:
        """The backend's response ended cleanly; ``conn`` is already detached."""
        self.conn = None
        if self.request_done:
            self.pool.connections[self.backend.id].release(conn)
        else:
            conn.close()  # the backend answered before it read the whole request
        tail = _LAST_CHUNK if self.framing == CHUNKED else b""
        head = self.head_pending
        if head is not None:
            tail = head + tail
            self.head_pending = None
            self.response_started = True
        if tail:
            self.client.transport.write(tail)
        self.finish()

    # -- protocol switch (WebSocket): the exchange becomes a tunnel -----------------
    def on_switching_protocols(self, conn: "UpstreamConnection", reason: bytes,
                               headers: list[tuple[bytes, bytes]]) -> None:
        """The backend accepted the upgrade: relay its 101 head."""
        now = monotonic()
        self.upstream_time = now - self.sent_at
        if self.backend.breaker is not None or self.pool.outliers is not None:
            self.pool.record(self.backend, True, now)
        self.status = 101
        lines = [b"HTTP/1.1 101 %s\r\n" % reason]
        upgrade = self.upgrade
        for name, value in headers:
            lower = name.lower()
            if lower == b"upgrade":
                upgrade = value
            elif lower not in RESPONSE_HEADERS:
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"Connection: Upgrade\r\nUpgrade: %s\r\nX-Request-ID: %s\r\n\r\n" % (upgrade, self.request_id))
        self.client.transport.write(b"".join(lines))
        self.response_started = True

    def start_tunnel(self, conn: "UpstreamConnection", rest: bytes) -> None:
        """After the 101: both connections become a tunnel; ``rest`` came after the backend's head."""
        self.conn = None
        conn.exchange = None
        conn.deadline = None
        conn.reusable = False  # never back to the pool: it speaks another protocol now
        settings = self.runtime.settings
        tunnel = Tunnel(self, self.client, conn, settings.tunnel_idle_timeout, settings.client_send_timeout)
        early = self.client.tunnel_opened(tunnel)
        tunnel.start(early, rest)

    def tunnel_closed(self, bytes_up: int, bytes_down: int) -> None:
        """The tunnel ended: the exchange ends with it (in flight until now), and is logged."""
        self.body_bytes += bytes_up
        self.bytes_out += bytes_down
        self.response_done = True
        self.backend.in_flight -= 1
        self._log()

    def upstream_write_paused(self) -> None:
        self.client.gate.pause(BACKPRESSURE)

    def upstream_write_resumed(self) -> None:
        self.client.gate.resume(BACKPRESSURE)

    # -- local answers and the end -------------------------------------------------
    def respond_local(self, status: int, detail: str | None = None, extra: bytes = b"",
                      filters: bool = True) -> None:
        """Answer from the proxy itself (404, 429, 502, 503, 504 …); the response
        filters see it too, unless it answers their own failure."""
        self.status = status
        if self.has_body and not self.request_done:
            self.keep_alive = False  # the rest of the body would be read as a request
        if self.tries and self.pool is not None and self.pool.tries_header:
            extra += b"X-Fulcrum-Tries: %d\r\n" % self.tries
        if filters and self.chain.response:
            try:
                extra = b"".join(self.chain.respond(self, status, extra.splitlines(keepends=True)))
            except Exception as exc:
                self.internal_error(exc, "response filter")
                return
        self.response_started = True
        self.client.transport.write(error_response(
            status, self.request_id, detail, close=not self.keep_alive, extra=extra,
            body=self.method != b"HEAD"))
        self.finish()

    def internal_error(self, exc: BaseException, where: str) -> None:
        """Recovery: log the bug once with the request id; answer 500 if nothing was sent,
        else cut the connection. Every other exchange and connection goes on."""
        log.error("internal error", exc_info=exc, extra={"fields": {
            "request_id": self.request_id.decode("latin-1"), "client": self.client_ip,
            "method": self.method.decode("latin-1"), "path": self.target.decode("latin-1"),
            "phase": where}})
        if self.response_done:
            return
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            conn.abort()  # its state is unknown: never reuse it
        self._answer_failure(500, "internal error", filters=False)

    def finish(self) -> None:
        if self.response_done:
            return
        self.response_done = True
        if self.has_body and not self.request_done:
            self.keep_alive = False
        if self.backend is not None:
            self.backend.in_flight -= 1
        self._log()
        # Whatever this exchange paused on the client's side ends with it.
        self.client.gate.resume(CONNECTING | BACKPRESSURE)
        self.client.exchange_done(self)

    def _log(self) -> None:
        """Phase log: the chain's log hooks and the request metrics, once per exchange."""
        self.duration = monotonic() - self.received_at
        metrics = self.client.server.request_metrics
        if self.chain.log or metrics is not None:
            run_log_phase(self, self.chain, metrics)

    def abort(self) -> None:
        """The client went away: drop the backend connection mid-exchange."""
        if self.response_done or self.aborted:
            return
        self.aborted = True
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            conn.abort()
        self.response_done = True
        if self.backend is not None:
            self.backend.in_flight -= 1
            self.pool.release(self.backend, monotonic())  # frees a half-open probe slot
        self._log()


def run_log_phase(exchange, chain, metrics) -> None:
    """Every log hook, then the metrics; one that raises is logged and skips nothing else."""
    for hook in chain.log:
        try:
            hook(exchange)
        except Exception:
            log.exception("internal error", extra={"fields": {
                "request_id": exchange.request_id.decode("latin-1"), "phase": "log", "hook": repr(hook)}})
    if metrics is not None:
        try:
            metrics.observe(exchange)
        except Exception:
            log.exception("internal error", extra={"fields": {
                "request_id": exchange.request_id.decode("latin-1"), "phase": "metrics"}})


def _connected(exchange: Exchange, conn: "UpstreamConnection | None", error: str | None) -> None:
    try:
        _on_connected(exchange, conn, error)
    except Exception as exc:
        exchange.internal_error(exc, "connect")


def _on_connected(exchange: Exchange, conn: "UpstreamConnection | None", error: str | None) -> None:
    if exchange.aborted:
        if conn is not None:
            exchange.pool.connections[exchange.backend.id].release(conn)
        return
    if conn is None:
        exchange.connect_failed(error or "connect failed")
    else:
        exchange.forward(conn)
