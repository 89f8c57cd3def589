"""One keep-alive connection to a backend, parsing its responses with llhttp.

Invariants: a connection serves one exchange at a time; it goes back to its pool
only when the response ended cleanly, the request was fully sent, the backend
allowed keep-alive and not one byte arrived beyond the response. Anything else
closes it — a connection that misbehaved is never reused.
"""
from __future__ import annotations

import asyncio
import logging
from fulcrum.http.headers import asks_websocket
from fulcrum.http.parser import (
    HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser, ParserCallbacks,
)
from fulcrum.proxy.clock import monotonic
from fulcrum.proxy.response_sink import ResponseSink

log = logging.getLogger("fulcrum.proxy")

# ``budget`` while a callback runs: a step of the response was parsed (see data_received).
PROGRESSED = -1

# 1xx responses (100 Continue, 103 Early Hints) a backend may send before its final one;
# more is a flood, and the response is invalid (502).
MAX_INFORMATIONAL = 5


def _upgrades_to_websocket(headers: list) -> bool:
    """An Upgrade header lists websocket (a loop: the compiled core has no closures in methods).
    ``headers``: flat, name and value in turn."""
    for name, value in zip(headers[0::2], headers[1::2]):
        if name.lower() == b"upgrade" and asks_websocket(value):
            return True
    return False


class Discarded(Exception):
    """Raised from a parser callback when the exchange retries elsewhere and
    this response (and so this connection) is no longer wanted."""


class UpstreamConnection(ParserCallbacks):
    """asyncio protocol for one backend connection; callbacks feed its exchange.

    An asyncio.Protocol by its methods, not by inheritance: the compiled core makes it an
    extension type (fulcrum/core.py), which cannot derive from a Python class. It derives
    from its parser's ParserCallbacks (http/parser.py), which the parser calls in C."""

    __slots__ = (
        "pool", "loop", "transport", "parser", "exchange", "headers", "reason",
        "in_head", "informational", "complete", "reusable", "expect_eof",
        "skip_body", "served", "idle_since", "closed", "read_paused",
        "deadline", "timer", "last_read", "_timer_at", "received", "body_left", "upgraded",
        "budget", "head_done", "armed_at", "informational_count", "head_limit", "trailer_bytes",
    )

    def __init__(self, pool) -> None:  # proxy.pool.ConnectionPool: loop, settings, forget()
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.exchange: ResponseSink | None = None
        self.headers: list[bytes] = []  # the head's fields: name, value, name, value, ...
        self.reason = b""
        self.in_head = False
        self.informational = False
        self.complete = False
        self.reusable = True
        self.expect_eof = False      # close-delimited body: EOF is its end
        self.skip_body = False       # response to HEAD: llhttp cannot know it has no body
        self.served = 0
        self.idle_since = 0.0
        self.closed = False
        self.read_paused = False
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.last_read = 0.0
        self.received = False
        self.body_left = 0           # Content-Length bytes still to come (see _pass_body)
        self.upgraded = False        # a 101 was relayed: what follows the head is the tunnel's
        # As on the client side: raw bytes llhttp may be fed before the next step of a
        # response (a head complete, body bytes), bounding heads, 1xx heads and trailers.
        self.head_limit = self.budget = pool.settings.max_header_bytes
        self.head_done = False       # the final (non-1xx) head arrived: timeouts.response ends
        self.armed_at = 0.0
        self.informational_count = 0
        self.trailer_bytes = 0       # of the response's trailers, bounded like a head

    # -- lifecycle -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        settings = self.pool.settings
        transport.set_write_buffer_limits(settings.high_water, settings.low_water)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()  # the handle holds this connection alive until it fires
            self.timer = None
        exchange = self.exchange
        if exchange is None:
            self.pool.forget(self)
            return
        self.exchange = None
        if self.expect_eof and not self.in_head and exc is None and not self.complete:
            exchange.on_response_complete(self)  # close-delimited body ended by EOF
        elif not self.complete:
            reason = f"connection reset ({exc})" if exc else "connection closed by backend"
            exchange.upstream_failed(self, reason, nothing_received=not self.received)

    def close(self) -> None:
        """Close after flushing what was written (a clean end)."""
        self._shut(abort=False)

    def abort(self) -> None:
        """Drop at once, unsent bytes and all (the exchange went wrong)."""
        self._shut(abort=True)

    def _shut(self, abort: bool) -> None:
        self.reusable = False
        if not self.closed:
            self.closed = True
            self.deadline = None
            if self.transport is not None:
                (self.transport.abort if abort else self.transport.close)()

    # -- use by an exchange ------------------------------------------------
    def attach(self, exchange: ResponseSink, skip_body: bool) -> None:
        self.exchange = exchange
        self.complete = False
        self.informational = False
        self.skip_body = skip_body
        self.expect_eof = False
        self.headers = []
        self.in_head = False
        self.received = False
        self.body_left = 0
        self.head_done = False
        self.informational_count = 0
        self.trailer_bytes = 0
        self.budget = self.head_limit
        self.served += 1

    def arm_response_timer(self, timeout: float) -> None:
        """timeouts.response: until the final response head, counted from now whatever
        arrives (1xx heads, a head trickled byte by byte); after it, from the last read."""
        now = monotonic()
        self.last_read = self.armed_at = now
        self.deadline = timeout
        if self.timer is None or self._timer_at > now + timeout:
            if self.timer is not None:
                self.timer.cancel()
            self._timer_at = now + timeout
            self.timer = self.loop.call_later(timeout, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        timeout = self.deadline
        if timeout is None or self.exchange is None:
            return
        now = monotonic()
        if self.read_paused:
            self.last_read = now  # paused for a slow client: the backend is not silent
        due = (self.last_read if self.head_done else self.armed_at) + timeout
        if now < due:
            self._timer_at = due
            self.timer = self.loop.call_later(due - now, self._on_timer)
            return
        exchange = self.exchange
        self.exchange = None
        self.abort()
        exchange.upstream_timed_out(self)

    # -- flow control (the client side drives these) -------------------------
    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_write_paused()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_write_resumed()

    # -- bytes in ----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.close()  # bytes from an idle connection: it cannot be trusted
            return
        self.last_read = monotonic()
        self.received = True
        if self.body_left:
            try:
                self._pass_body(exchange, data)
            except Exception as exc:  # our bug: the exchange answers for it, the server goes on
                self.exchange = None
                self.abort()
                exchange.internal_error(exc, "response body")
            return
        try:
            budget = self.budget
            if len(data) > budget:
                self._feed_bounded(data)
            else:
                self.parser.feed_data(data)
                self.budget = self.head_limit if self.budget < 0 else budget - len(data)
        except HttpParserUpgrade as exc:
            if self.upgraded:
                exchange.start_tunnel(self, data[exc.args[0]:])
                return
            self.exchange = None
            self.abort()
            exchange.upstream_invalid(self, "invalid response from backend: an upgrade nobody asked for")
            return
        except HttpParserError as exc:
            self.exchange = None
            self.abort()
            cause = exc.__context__ if isinstance(exc, HttpParserCallbackError) else exc
            if isinstance(cause, Discarded):
                return
            if not isinstance(cause, HttpParserError):
                exchange.internal_error(cause, "response")  # our bug, not the backend's
                return
            if self.complete:
                exchange.on_response_complete(self)
            else:
                exchange.upstream_invalid(self, f"invalid response from backend: {cause}")
            return
        if self.complete and self.exchange is exchange:  # (not already ended by _pass_body)
            if self.skip_body:
                self.parser = HttpResponseParser(self)  # llhttp still expects a HEAD body
            self.exchange = None
            self.deadline = None
            exchange.on_response_complete(self)

    def _feed_bounded(self, data: bytes) -> None:
        """Feed ``data`` in pieces of at most the budget; a piece that brings no step further
        (a head or trailer that never ends) makes the response invalid (502)."""
        fed = 0  # bytes of the caller's data fed before this piece
        while data:
            budget = self.budget
            piece = data[:budget]
            try:
                self.parser.feed_data(piece)
            except HttpParserUpgrade as exc:
                # The caller slices its own data with the offset: count from there.
                raise HttpParserUpgrade(exc.args[0] + fed) from None
            if self.budget >= 0:  # no step further
                if len(piece) < budget:
                    self.budget = budget - len(piece)
                    return
                raise HttpParserError(f"response head or trailers larger than {self.head_limit} bytes")
            self.budget = self.head_limit
            data = data[budget:]
            fed += budget
            if self.complete or self.exchange is None:
                if data:
                    self.reusable = False  # bytes beyond the response
                return
            if self.body_left and data:
                self._pass_body(self.exchange, data)
                return

    def _pass_body(self, exchange: ResponseSink, data: bytes) -> None:
        """The rest of a Content-Length body: counted and passed on without llhttp,
        which would only copy it again. Bytes beyond it mark the connection unusable."""
        left = self.body_left
        if len(data) < left:
            self.body_left = left - len(data)
            exchange.on_response_body(data)
            return
        self.body_left = 0
        if len(data) > left:
            self.reusable = False
            data = data[:left]
        exchange.on_response_body(data)
        self.complete = True
        self.parser = HttpResponseParser(self)  # the old one still waits for the body
        self._completed(exchange)

    def _completed(self, exchange: ResponseSink) -> None:
        self.exchange = None
        self.deadline = None
        exchange.on_response_complete(self)

    def eof_received(self) -> bool | None:
        return None  # let asyncio close; connection_lost decides what EOF meant

    # llhttp callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            self.reusable = False  # a second response nobody asked for
            return
        self.in_head = True
        self.headers = []

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:  # flat, name and value in turn: no tuple per field
            headers = self.headers
            headers.append(name)
            headers.append(value)
            return
        # A trailer: dropped, but counted. The read budget (data_received) does not charge what
        # follows a step in the same read, so trailers that came with the head are bounded here.
        self.trailer_bytes += len(name) + len(value) + 4
        if self.trailer_bytes > self.head_limit:
            raise HttpParserError(f"response head or trailers larger than {self.head_limit} bytes")

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.in_head = False
        self.budget = PROGRESSED
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            # llhttp reads any single-digit version; only HTTP/1.x frames as HTTP/1.x does.
            raise HttpParserError(f"unsupported HTTP version in the status line: HTTP/{version}")
        status = self.parser.get_status_code()
        exchange = self.exchange
        if status < 200:
            if status < 100:
                raise HttpParserError(f"invalid status code {status}")
            self.informational_count += 1
            if self.informational_count > MAX_INFORMATIONAL:
                raise HttpParserError(f"more than {MAX_INFORMATIONAL} informational (1xx) responses")
            if status == 101:
                if exchange.upgrade is None:
                    raise HttpParserError("101 Switching Protocols without an upgrade request")
                if not _upgrades_to_websocket(self.headers):
                    # RFC 9110 §7.8: never a protocol the client did not ask for.
                    raise HttpParserError("101 Switching Protocols to a protocol the client did not ask for")
                self.upgraded = True
                exchange.on_switching_protocols(self, self.reason, self.headers)
                return
            self.informational = True
            exchange.on_informational(status, self.reason, self.headers)
            return
        self.head_done = True
        if not self.parser.should_keep_alive():
            self.reusable = False
        if not exchange.on_response_head(self, status, self.reason, self.headers):
            raise Discarded()
        if self.skip_body:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        self.budget = PROGRESSED
        if self.complete:
            self.reusable = False  # body after a HEAD response, or extra bytes
            return
        if self.body_left:
            self.body_left -= len(body)
        self.exchange.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
