"""One client connection: llhttp parsing, keep-alive, pipelining and timeouts.

Requests are answered strictly in order: the exchange at the head of the line
runs; requests pipelined behind it wait in ``queue`` with reading paused, so at
most one read's worth of bytes is ever buffered. After a framing error nothing
more is read: the error is answered in its turn and the connection closes.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from fulcrum.http.errors import BadRequest, HttpError
from fulcrum.http.headers import connection_tokens
from fulcrum.http.parser import (
    HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser, ParserCallbacks,
)
from fulcrum.http.responses import error_response
from fulcrum.proxy.clock import monotonic
from fulcrum.proxy.downstream import Downstream
from fulcrum.proxy.request_ids import RequestIds
from fulcrum.proxy.exchange import Exchange, new_exchange, run_log_phase
from fulcrum.proxy.flow_control import CLOSING, PIPELINE, ReadGate


log = logging.getLogger("fulcrum.proxy")

# ``budget`` while a callback runs: a step of the message was parsed (see data_received).
PROGRESSED = -1

# What the connection timer is waiting for.
_IDLE, _HEAD, _BODY, _NONE = range(4)


class Listener(Protocol):
    """What a client connection needs of the listener that accepted it (proxy/server.py)."""

    runtime: object          # the current runtime: settings, router, pools, filters
    loop: object
    request_metrics: object  # observability's recorder, or None
    tunnels_opened: int
    tunnels_closed: int

    def admit(self, conn: "ClientConnection") -> str | None: ...
    def release(self, conn: "ClientConnection") -> None: ...
    def handshaking(self, conn: "ClientConnection") -> None: ...
    request_ids: RequestIds


class _Rejection:
    """A queued error answer: written in its turn, then the connection closes.

    It reaches the access log and metrics like an exchange that never got a route;
    the class attributes are the exchange fields it has no value for.
    """

    __slots__ = ("status", "reason", "request_id", "client_ip", "secure", "extra", "ctx")

    method = target = b"-"
    host = b""
    route = ""
    pool = backend = limit = None
    body_bytes = bytes_out = tries = 0
    duration = upstream_time = 0.0
    rate_limited = False

    def __init__(self, status: int, reason: str, request_id: bytes, client_ip: str = "",
                 secure: bool = False, extra: bytes = b"") -> None:
        self.status = status
        self.reason = reason
        self.request_id = request_id
        self.client_ip = client_ip
        self.secure = secure
        self.extra = extra      # header lines of its own (Allow on a 405)
        self.ctx: dict = {}     # as an exchange's: log hooks may read it

    def header(self, name: bytes) -> None:
        return None  # the request was not (wholly) read: filters see no headers

    def header_values(self, name: bytes) -> list[bytes]:
        return []


class _BodyAfterUpgrade(ParserCallbacks):
    """Parser callbacks for the chunked body of an upgrade request that is no tunnel.

    llhttp ends the message at the head of any upgrade request; a second parser, primed with
    a head of the same framing, reads the body and hands it to the connection. Nothing after
    that body is read: the connection closes after the response (upgrade requests are never
    kept alive)."""

    __slots__ = ("client", "done")

    def __init__(self, client: "ClientConnection") -> None:
        self.client = client
        self.done = False

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self.client.on_body(body)

    def on_message_complete(self) -> None:
        if self.done:
            return  # llhttp goes on parsing what followed in the same read: it is dropped
        self.done = True
        client = self.client
        client.on_message_complete()
        client.parser = None
        client.gate.pause(CLOSING)


class ClientConnection(Downstream):
    """asyncio protocol for one accepted client connection, and the Downstream of its exchanges.

    An asyncio.Protocol by its methods, not by inheritance: the compiled core makes it an
    extension type (fulcrum/core.py), which cannot derive from a Python class."""

    __slots__ = (
        "server", "settings", "parser", "current", "queue", "receiving", "url", "headers", "header_bytes",
        "in_head", "closed", "advancing", "timer", "wait", "deadline", "last_body", "body_left",
        "body_start", "body_seen", "body_pauses", "counted", "tunnel", "early", "budget", "upgrading",
        "trusted_by", "peer_trusted", "send_buffered", "handshake_until", "head_limit",
    )  # and Downstream's: transport, gate, loop, tls, client_ip, ...

    def __init__(self, server: Listener, tls: bool = False) -> None:
        self.server = server
        self.tls = tls         # accepted on the TLS listener
        self.loop = server.loop
        self.settings = server.runtime.settings
        self.transport: asyncio.Transport | None = None
        self.gate: ReadGate | None = None
        self.parser = HttpRequestParser(self)
        self.client_ip = ""
        self.client_ip_bytes = b""
        self.current: Exchange | _Rejection | None = None
        # Created on the first pipelined request: an empty deque costs ~760 bytes,
        # a lot for an idle keep-alive connection.
        self.queue: deque[Exchange | _Rejection] | None = None
        self.receiving: Exchange | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.in_head = False
        self.closed = False
        self.advancing = False
        self.timer: asyncio.TimerHandle | None = None
        self.wait = _NONE
        self.deadline = 0.0
        self.last_body = 0.0
        self.body_left = 0  # Content-Length bytes of the request still to come (see _pass_body)
        self.body_start = 0.0  # since when the body rate is measured (limits.min_body_rate)
        self.body_seen = 0
        self.body_pauses = 0
        self.counted = False   # in the server's per-address connection count
        self.tunnel = None     # after a protocol switch (proxy/tunnel.py)
        self.early = b""       # bytes that followed an upgrade request's head
        # Raw bytes llhttp may still be fed before the next step of a message (head complete,
        # body bytes, message complete): bounds a head, a header line, chunk framing and
        # trailers by limits.max_header_bytes however they are split (see data_received).
        self.head_limit = self.budget = self.settings.max_header_bytes
        self.valid_host = b""   # the last Host that passed the check (keep-alive repeats it)
        self.request_metrics = server.request_metrics  # observability's recorder, or None
        self.request_ids = server.request_ids  # for the exchanges (Downstream)
        self.upgrading = False  # an upgrade request with a body that is no tunnel: read its body
        self.trusted_by = None  # the TrustedProxies that peer_trusted was computed against
        self.peer_trusted = False
        self.send_since = 0.0   # since when the client has read none of our buffered bytes
        self.send_buffered = 0  # the write buffer's size then
        self.handshake_until = 0.0
        if tls:
            # Counted from accept, through the TLS handshake (timeouts.client_header bounds it).
            self.handshake_until = monotonic() + self.settings.client_header_timeout
            server.handshaking(self)

    # -- phase: accept ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.closed:  # shut down while its TLS handshake ran
            transport.abort()
            return
        self.transport = transport  # type: ignore[assignment]
        self.handshake_until = 0.0
        self.gate = ReadGate(transport)  # type: ignore[arg-type]
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.client_ip_bytes = self.client_ip.encode()
        transport.set_write_buffer_limits(self.settings.high_water, self.settings.low_water)  # type: ignore[attr-defined]
        refused = self.server.admit(self)
        if refused:
            self.parser = None
            self.closed = True
            self._answer(_Rejection(503, refused, self.request_ids.next(), self.client_ip, self.tls))
            transport.close()
            return
        self._wait(_HEAD, self.settings.client_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.wait = _NONE
        if self.timer is not None:
            self.timer.cancel()  # the handle holds this connection alive until it fires
            self.timer = None
        self.server.release(self)
        current = self.current
        if isinstance(current, Exchange):
            current.abort()
        self.current = None
        self.queue = None

    def eof_received(self) -> bool:
        # Half-close from the client: finish what was asked, then close.
        if self.current is None and not self.queue:
            return False
        self._last_requests()
        return True

    # -- phase: parse ------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return
        upgraded_at = -1
        try:
            if self.body_left:
                data = self._pass_body(data)
                if not data or self.parser is None:
                    return
            budget = self.budget
            if len(data) > budget:
                self._feed_bounded(data)
                return
            self.parser.feed_data(data)
            self.budget = self.head_limit if self.budget < 0 else budget - len(data)
        except HttpError as exc:
            self._reject(exc.status, exc.reason, exc.headers)
        except HttpParserUpgrade as exc:
            upgraded_at = exc.args[0]  # handled below, outside this handler (see _upgraded)
        except HttpParserCallbackError as exc:
            self._callback_failed(exc.__context__)
        except HttpParserError as exc:
            self._reject(400, str(exc) or "malformed request")
        except Exception as exc:
            # A bug must cost one connection, never the server.
            self._internal_error(exc)
        if upgraded_at >= 0:
            self._upgraded(data[upgraded_at:])

    def _feed_bounded(self, data: bytes) -> None:
        """Feed ``data`` in pieces no larger than the budget: a piece that brings llhttp no
        step further (a head, a header line or chunk framing that never ends) is a 431, after
        at most this one read. Callers handle what feeding raises."""
        while data:
            budget = self.budget
            piece = data[:budget]
            upgraded_at = -1
            try:
                self.parser.feed_data(piece)
            except HttpParserUpgrade as exc:
                upgraded_at = exc.args[0]
            if upgraded_at >= 0:
                # Outside the handler: what _upgraded feeds next must not raise with this
                # exception as its context (a callback's own error would be lost behind it).
                self._upgraded(data[upgraded_at:])
                return
            if self.budget >= 0:  # no step further
                if len(piece) < budget:
                    self.budget = budget - len(piece)
                    return
                what = "request head" if self.receiving is None else "chunk framing or trailers"
                raise HttpError(431, f"{what} larger than {self.head_limit} bytes")
            self.budget = self.head_limit
            data = data[budget:]
            if self.parser is None:
                return
            if self.body_left and data:
                data = self._pass_body(data)
                if self.parser is None:
                    return

    def _upgraded(self, rest: bytes) -> None:
        """llhttp stopped at the head of an upgrade request; ``rest`` followed it."""
        self.budget = self.head_limit  # the head was a step: a fresh budget for what follows
        if self.upgrading:
            # No tunnel (not a WebSocket GET), but a body: read it as the request's body.
            self.upgrading = False
            exchange = self.receiving
            if exchange.chunked:
                parser = HttpRequestParser(_BodyAfterUpgrade(self))
                parser.feed_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                self.parser = parser
            else:
                self.parser = HttpRequestParser(self)  # reached again once body_left is read
            if rest:
                self.data_received(rest)
            return
        # Nothing after an upgrade request is HTTP. What already came is kept for the
        # tunnel if the backend switches protocols; else the connection closes after
        # the response (the request went on without its Upgrade).
        self.parser = None
        self.early = rest
        self.gate.pause(CLOSING)

    def _callback_failed(self, cause: BaseException | None) -> None:
        """llhttp wraps what our callbacks raise; unwrap it to answer with its status."""
        if isinstance(cause, HttpError):
            self._reject(cause.status, cause.reason, cause.headers)
        elif isinstance(cause, HttpParserError) or cause is None:
            self._reject(400, str(cause or "malformed request"))
        else:
            self._internal_error(cause)

    def _internal_error(self, exc: BaseException) -> None:
        receiving = self.receiving
        request_id = receiving.request_id.decode("latin-1") if receiving is not None else ""
        log.error("internal error", exc_info=exc, extra={"fields": {
            "client": self.client_ip, "request_id": request_id, "phase": "parse"}})
        self._reject(500, "internal error")

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.in_head = True
        if self.wait != _HEAD:
            if self.timer is None:
                self._wait(_HEAD, self.settings.client_header_timeout)
            else:  # _wait, inlined for the common case (the lazy timer runs): every request passes here
                self.wait = _HEAD
                self.deadline = monotonic() + self.settings.client_header_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        # The head's size counts the request line: " <target> HTTP/1.1\r\n" here,
        # the method once it is known (on_headers_complete).
        self.header_bytes += len(url)
        if len(self.url) > self.settings.max_url_length:
            raise HttpError(414, f"request target longer than {self.settings.max_url_length} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        settings = self.settings
        if not self.in_head:
            # A chunked trailer: dropped (RFC 9112 §7.1.2 lets a proxy discard it), but counted
            # (from 0 at the head's end): the read budget does not charge what follows a step in
            # the same read, so trailers that came with the head are bounded here.
            if self.header_bytes > settings.max_header_bytes:
                raise HttpError(431, f"request trailers larger than {settings.max_header_bytes} bytes")
            return
        self.headers.append((name, value))
        if self.header_bytes > settings.max_header_bytes:
            raise HttpError(431, f"request headers larger than {settings.max_header_bytes} bytes")
        if len(self.headers) > settings.max_header_count:
            raise HttpError(431, f"more than {settings.max_header_count} request headers")

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.budget = PROGRESSED  # now for chunk framing and trailers
        settings = self.settings
        parser = self.parser
        method = parser.get_method()
        # request line (method, 2 spaces, "HTTP/1.1\r\n") + headers + the empty line
        if self.header_bytes + len(method) + 14 > settings.max_header_bytes:
            raise HttpError(431, f"request head larger than {settings.max_header_bytes} bytes")
        self.header_bytes = 0  # now the trailers' count (on_header)
        version = parser.get_http_version()
        http11 = version == "1.1"
        if not http11 and version != "1.0":
            # No version (HTTP/0.9's request line) or another major version: nothing we speak.
            if version[:1] > "1":
                raise HttpError(505, f"HTTP/{version} is not supported")
            raise BadRequest("request line without HTTP/1.0 or HTTP/1.1")
        upgrade = parser.should_upgrade()
        keep_alive = parser.should_keep_alive() and not upgrade
        if keep_alive and not http11:
            # HTTP/1.0 stays open only on "Connection: keep-alive" without "close" (RFC 9112
            # §9.3); llhttp also takes Proxy-Connection, and keep-alive over close, where a
            # front proxy reading by the RFC would end the connection.
            tokens: set[bytes] = set()
            for name, value in self.headers:
                if name.lower() == b"connection":
                    tokens |= connection_tokens(value)
            keep_alive = b"keep-alive" in tokens and b"close" not in tokens
        exchange = new_exchange(self, self.server.runtime, method, self.url,
                                self.headers, http11, keep_alive, upgrade)  # phase prepare
        self.receiving = exchange
        if upgrade and exchange.has_body:
            # llhttp ends the message at the head of any upgrade request; this one is no
            # tunnel (prepare), so its body follows and is read as a body (see _upgraded).
            self.upgrading = True
        self.body_left = exchange.content_length
        if exchange.has_body:
            self.last_body = self.body_start = monotonic()
            self.body_seen = 0
            self.body_pauses = self.gate.pauses
            self._wait(_BODY, self.settings.client_body_timeout)
        else:
            self.wait = _NONE
        if self.current is None and not self.queue:
            self.current = exchange  # the common case: nothing ahead of it
            exchange.start()
        else:
            self._enqueue(exchange)
            self.gate.pause(PIPELINE)
            self._advance()

    def on_body(self, body: bytes) -> None:
        self.budget = PROGRESSED
        self.last_body = monotonic()
        self.body_seen += len(body)
        if self.body_left:
            self.body_left -= len(body)
        self.receiving.on_request_body(body)

    def _pass_body(self, data: bytes) -> bytes:
        """The rest of a Content-Length body, passed on without llhttp (which would
        only copy it again); returns what follows it (a pipelined request)."""
        self.last_body = monotonic()
        self.body_seen += len(data)
        left = self.body_left
        if len(data) < left:
            self.body_left = left - len(data)
            self.receiving.on_request_body(data)
            return b""
        self.body_left = 0
        self.receiving.on_request_body(data[:left] if len(data) > left else data)
        self.parser = HttpRequestParser(self)  # the old one still waits for the body
        self.on_message_complete()
        self.budget = self.head_limit  # (the callback marked the step; no feed follows to see it)
        return data[left:]

    def on_message_complete(self) -> None:
        if self.upgrading:
            return  # llhttp's early end of an upgrade request with a body: the body comes next
        self.budget = PROGRESSED  # for the next request's head
        if self.wait == _BODY:
            self.wait = _NONE
        exchange = self.receiving
        self.receiving = None
        if exchange is not None:
            exchange.on_request_complete()
        if self.current is None and not self.queue and not self.closed and self.wait == _NONE:
            self._wait(_IDLE, self.settings.client_idle_timeout)  # answered before it ended

    # -- the line of exchanges ---------------------------------------------------
    def _enqueue(self, item: Exchange | _Rejection) -> None:
        if self.queue is None:
            self.queue = deque()
        self.queue.append(item)

    def _advance(self) -> None:
        """Start queued exchanges in order while none is running."""
        if self.queue and not self.advancing:
            self.advancing = True
            try:
                while self.current is None and self.queue and not self.closed:
                    item = self.queue.popleft()
                    self.current = item
                    if isinstance(item, _Rejection):
                        self._write_rejection(item)
                    else:
                        item.start()
            finally:
                self.advancing = False
        if self.queue or self.closed:
            return
        # Nothing waits behind the running exchange: read on (its body may still be arriving).
        if self.gate.paused_by & PIPELINE:
            self.gate.resume(PIPELINE)
        if self.current is None and self.wait == _NONE and self.receiving is None:
            self._wait(_IDLE, self.settings.client_idle_timeout)

    def exchange_done(self, exchange: Exchange) -> None:
        """Called by the exchange once its response is fully written."""
        self.current = None
        if self.closed:
            return
        if not exchange.keep_alive:
            self._close()
            return
        if self.queue or self.gate.paused_by:
            self._advance()
        elif self.wait == _NONE and self.receiving is None:  # _advance's end, the common case
            if self.timer is None:
                self._wait(_IDLE, self.settings.client_idle_timeout)
            else:  # _wait, inlined as in on_message_begin
                self.wait = _IDLE
                self.deadline = monotonic() + self.settings.client_idle_timeout

    def _reject(self, status: int, reason: str, headers: bytes = b"") -> None:
        """Answer a bad request in its turn and close; read nothing more."""
        self.parser = None
        self.body_left = 0
        self.upgrading = False
        self.gate.pause(CLOSING)
        receiving = self.receiving
        if receiving is not None and receiving is self.current:
            # The failing request is the one being forwarded (e.g. body too large).
            self.receiving = None
            receiving.abort()
            self.current = None
            if receiving.response_started:
                self._close()
                return
        elif receiving is not None and self.queue and receiving in self.queue:
            self.queue.remove(receiving)  # pipelined and not started: never forward half of it
        request_id = receiving.request_id if receiving is not None else self.request_ids.next()
        self._enqueue(_Rejection(status, reason, request_id, self.client_ip, self.tls, headers))
        log.debug("rejected request from %s: %d %s", self.client_ip, status, reason)
        self._advance()

    def _write_rejection(self, rejection: _Rejection) -> None:
        self._answer(rejection)
        self.current = None
        self._close()

    def _answer(self, rejection: _Rejection) -> None:
        """Write an answer of the connection's own (no exchange) through the global
        filters' response side, and log it like an exchange."""
        chain = self.server.runtime.unrouted.chain
        extra = rejection.extra
        if chain.response:
            try:
                extra = b"".join(chain.respond(rejection, rejection.status, extra.splitlines(keepends=True)))
            except Exception as exc:
                log.error("internal error", exc_info=exc, extra={"fields": {
                    "request_id": rejection.request_id.decode("latin-1"), "phase": "response filter"}})
        self.transport.write(error_response(rejection.status, rejection.request_id, rejection.reason, extra=extra))
        run_log_phase(rejection, chain, self.server.request_metrics)

    def abort_response(self) -> None:
        """A response broke off after its head was sent: cut the connection."""
        self.parser = None
        self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.wait = _NONE
            self.queue = None
            self.transport.close()

    # -- backpressure from the client side -----------------------------------------
    def pause_writing(self) -> None:
        # The client reads slower than we write: timeouts.client_send starts (see _on_timer).
        now = monotonic()
        self.send_since = now
        self.send_buffered = self.transport.get_write_buffer_size()
        if self.timer is None and not self.closed:
            self.timer = self.loop.call_later(self.settings.client_tick, self._on_timer)
        current = self.current
        if isinstance(current, Exchange) and current.conn is not None:
            current.conn.pause_reading()

    def resume_writing(self) -> None:
        self.send_since = 0.0
        current = self.current
        if isinstance(current, Exchange) and current.conn is not None:
            current.conn.resume_reading()

    def trusts_peer(self, trusted) -> bool:
        """Whether the peer is one of ``trusted`` (the runtime's proxies), worked out once per
        connection and runtime: a connection's peer never changes."""
        if self.trusted_by is not trusted:
            self.trusted_by = trusted
            self.peer_trusted = trusted.trusts(self.client_ip)
        return self.peer_trusted

    # -- timeouts: one lazy timer per connection ---------------------------------------
    def _wait(self, what: int, timeout: float) -> None:
        # The timer is never cancelled or moved: it wakes at least every
        # ``client_tick`` seconds and compares with the deadline, so switching
        # between waits on every request costs no timer operations.
        now = monotonic()
        self.wait = what
        self.deadline = now + timeout
        if self.timer is None:
            self.timer = self.loop.call_later(min(timeout, self.settings.client_tick), self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.closed:
            return
        now = monotonic()
        if self.send_since and self._not_reading(now):
            return
        what = self.wait
        if what == _NONE:
            if self.send_since:
                self.timer = self.loop.call_later(self.settings.client_tick, self._on_timer)
            return
        due = self.deadline
        if what == _BODY:
            if self.gate.paused_by:
                self.last_body = now  # we stopped reading: the silence is ours, not the client's
            due = self.last_body + self.settings.client_body_timeout
            if self._body_too_slow(now):
                due = now
        elif what == _HEAD and (self.current is not None or self.queue):
            # A head pipelined behind a response still in flight: judge it once that is done.
            due = max(due, now + min(1.0, self.settings.client_header_timeout))
        if now < due:
            self.timer = self.loop.call_later(min(due - now, self.settings.client_tick), self._on_timer)
            return
        self._timed_out(what)

    def _not_reading(self, now: float) -> bool:
        """timeouts.client_send: a client that took none of our buffered bytes for that long
        is cut (abort: its unsent bytes are dropped), and its exchange releases the backend
        connection and its in-flight slot at once. True when it was cut."""
        buffered = self.transport.get_write_buffer_size()
        if buffered < self.send_buffered:
            self.send_since, self.send_buffered = now, buffered  # it read something: start over
            return False
        if now - self.send_since < self.settings.client_send_timeout:
            return False
        log.info("client not reading", extra={"fields": {
            "client": self.client_ip, "buffered": buffered, "client_send": self.settings.client_send_timeout}})
        current = self.current
        if isinstance(current, Exchange):
            current.keep_alive = False
            current.abort()
        self.current = None
        self.closed = True
        self.wait = _NONE
        self.queue = None
        self.transport.abort()
        return True

    def _body_too_slow(self, now: float) -> bool:
        """limits.min_body_rate: after a grace of timeouts.client_body, the body must have
        averaged the minimum rate. Any pause of our reading restarts the measurement:
        a body we did not read is not the client's slowness."""
        min_rate = self.settings.min_body_rate
        if not min_rate:
            return False
        gate = self.gate
        if gate.paused_by or gate.pauses != self.body_pauses:
            self.body_start, self.body_seen, self.body_pauses = now, 0, gate.pauses
            return False
        elapsed = now - self.body_start
        if elapsed < self.settings.client_body_timeout or self.body_seen >= min_rate * elapsed:
            return False
        log.info("request body too slow", extra={"fields": {
            "client": self.client_ip, "bytes": self.body_seen, "seconds": round(elapsed, 1),
            "min_body_rate": min_rate}})
        return True

    def _timed_out(self, what: int) -> None:
        if what == _HEAD:
            if self.in_head:
                self._answer(_Rejection(408, "request head not received in time",
                                        self.request_ids.next(), self.client_ip, self.tls))
            self._close()
        elif what == _IDLE:
            self._close()
        elif what == _BODY:
            current = self.current
            if isinstance(current, Exchange):
                current.abort()
            self.current = None
            self._close()

    # -- tunnels (WebSocket) ------------------------------------------------------------
    def tunnel_opened(self, tunnel) -> bytes:
        """The exchange became a tunnel, which owns the transport from now on; returns the
        bytes the client sent after its upgrade request."""
        self.tunnel = tunnel
        self.current = None
        self.wait = _NONE
        self.server.tunnels_opened += 1
        early, self.early = self.early, b""
        return early

    def tunnel_closed(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.server.tunnels_closed += 1
        self.server.release(self)

    def shutdown(self) -> None:
        """Close now if idle; otherwise close after the response in flight. A tunnel
        closes at once (cleanly: a FIN both ways once written bytes are out). One still in
        its TLS handshake is let go: it is dropped when the handshake ends."""
        if self.transport is None:
            self.closed = True
            self.server.release(self)
            return
        if self.tunnel is not None:
            self.tunnel.close("shutting down")
            return
        if self.current is None and not self.queue:
            self._close()
        else:
            self._last_requests()

    def _last_requests(self) -> None:
        """Read no new request; close once the requests already read are answered."""
        if self.receiving is None:
            self.parser = None  # else the body in progress is still read; the close follows it
        # The last one read closes the connection (a queued rejection closes it by itself);
        # those before it are answered in turn.
        last = (self.queue or (self.current,))[-1]
        if isinstance(last, Exchange):
            last.keep_alive = False
