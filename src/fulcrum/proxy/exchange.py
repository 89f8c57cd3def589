"""One request/response exchange, as named phases (Pingora's ProxyHttp): prepare (judge the
head, plan what the backend gets) → route → request filters → upstream request (rewrites,
then the head is built) → pick (a backend lease) → forward → response (filters on the head)
→ finish → log. Failures of a try go through ``Attempts`` and the pool's retry policy.

Every change of ``phase`` goes through ``_to``, which checks it against ``_NEXT`` and ends
the backend lease when the exchange leaves its backend: in-flight counts change in exactly
one place. An exchange is done when its response is fully written; if the request body was
not fully read by then, the client connection closes, because the rest of that body would
otherwise be read as the next request.

The exchange knows its client connection only as a ``Downstream`` (proxy/downstream.py) and is
known to its upstream connection only as a ``ResponseSink`` (proxy/response_sink.py): small
base classes, so no back-pointers to the classes above.
"""
from __future__ import annotations

import logging

from fulcrum.filters.chain import EMPTY
from fulcrum.http.client_address import client_ip
from fulcrum.http.errors import HttpError
from fulcrum.http.headers import (
    CONNECTION, CONTENT_LENGTH, RESPONSE_HEADERS, TRANSFER_ENCODING, field_lines,
    host_without_port, named_by_connection, without_named,
)
from fulcrum.http.request_plan import (
    backend_authority, header_fields, header_pairs, plan_request, upstream_head,
)
from fulcrum.http.response_plan import CHUNKED, NO_BODY, UNTIL_CLOSE, plan_response
from fulcrum.http.responses import error_response
from fulcrum.http.upstream_request import UpstreamRequest
from fulcrum.http.wire import PASSED, join, plain_connection, response_kind
from fulcrum.proxy.attempts import Attempts
from fulcrum.proxy.clock import monotonic
from fulcrum.proxy.downstream import Downstream
from fulcrum.proxy.flow_control import BACKPRESSURE
from fulcrum.proxy.flow_control import CONNECTING as NO_BACKEND_YET  # a read-pause reason, not the phase
from fulcrum.proxy.response_sink import ResponseSink
from fulcrum.proxy.tunnel import Tunnel
from fulcrum.resilience.retry_policy import IDEMPOTENT, Failure

log = logging.getLogger("fulcrum.proxy")

_LAST_CHUNK = b"0\r\n\r\n"
# "200 " … : a status line's code and its space, by status (llhttp reads three digits).
_STATUS_CODES = tuple(b"%03d " % code for code in range(1000))

# The phases. RECEIVED: the head is parsed and planned (perhaps queued behind another).
# CONNECTING: a backend is leased, its connection is being opened. SENT: the request is on a
# backend connection, no final response head yet. RESPONDING: the backend's head arrived and
# the body streams. TUNNEL: after a 101. RETRYING: between tries (the retry timer runs).
# DONE: answered (fully written). ABORTED: the client left or was cut. Entering RETRYING or
# later, the exchange leaves its backend: the lease ends.
RECEIVED, CONNECTING, SENT, RESPONDING, TUNNEL, RETRYING, DONE, ABORTED = range(8)
PHASES = ("received", "connecting", "sent", "responding", "tunnel", "retrying", "done", "aborted")


# Where each phase may go.
_NEXT = (
    frozenset({CONNECTING, SENT, DONE, ABORTED}),                           # RECEIVED
    frozenset({SENT, RETRYING, DONE, ABORTED}),                             # CONNECTING
    frozenset({RESPONDING, CONNECTING, RETRYING, TUNNEL, DONE, ABORTED}),   # SENT
    frozenset({DONE, ABORTED}),                                             # RESPONDING
    frozenset({DONE}),                                                      # TUNNEL
    frozenset({CONNECTING, SENT, DONE, ABORTED}),                           # RETRYING
    frozenset(),                                                            # DONE
    frozenset(),                                                            # ABORTED
)
# The same table as bits, ``8 * from + to`` (the check is a shift and a mask, no set lookup).
_ALLOWED = sum(1 << (8 * before + after) for before, nexts in enumerate(_NEXT) for after in nexts)


class InvalidTransition(RuntimeError):
    """A bug: the exchange was asked to move to a phase its current one does not lead to."""


class Exchange(ResponseSink):
    """A request on a client connection and the response that answers it."""

    __slots__ = (
        "client", "runtime", "method", "target", "headers", "http11", "keep_alive",
        "client_ip", "request_id", "host", "plan", "has_body", "chunked", "content_length",
        "upstream_head", "phase", "pool", "lease", "backend", "conn", "pending_body",
        "request_done", "body_bytes", "response_started", "head_pending", "framing", "status",
        "sent_at", "bytes_out", "tries", "attempts", "route", "chain", "received_at",
        "upstream_time", "duration", "limit", "_ctx", "head_method",
    )

    def __init__(self, client: Downstream, runtime, method: bytes, target: bytes,
                 headers: list[tuple[bytes, bytes]], http11: bool, keep_alive: bool,
                 upgrade: bool = False) -> None:
        self.prepare(client, runtime, method, target, headers, http11, keep_alive, upgrade)

    def prepare(self, client: Downstream, runtime, method: bytes, target: bytes,
                headers: list[tuple[bytes, bytes]], http11: bool, keep_alive: bool, upgrade: bool) -> None:
        """Phase prepare, as soon as the head is parsed: judge the head and plan what the
        backend gets (http/request_plan.py); resolve the client's address. ``upgrade``: llhttp
        saw an upgrade request. Raises HttpError; the connection then answers and closes.
        Run once, by the constructor or by ``new_exchange``."""
        self.received_at = monotonic()
        self.client = client
        self.runtime = runtime
        plan = plan_request(method, target, headers, http11, upgrade, runtime.settings.max_body_size,
                            client.valid_host)
        # the request as received, and as planned
        self.method = method
        self.head_method = method  # what the backend is sent (on_upstream_request may change it)
        self.headers = headers
        self.http11 = http11
        self.keep_alive = keep_alive
        self.plan = plan
        self.target = plan.target
        self.host = host = plan.host
        if host and host is not client.valid_host:
            client.valid_host = host
        self.has_body = plan.has_body
        self.chunked = plan.chunked
        self.content_length = plan.content_length
        self.upgrade = plan.upgrade  # b"websocket" when the request may become a tunnel
        self.request_id = request_id = plan.request_id or client.request_ids.next()
        self.client_ip = client.client_ip
        trusted = runtime.trusted
        if trusted is not None and client.trusts_peer(trusted):
            self.client_ip = self.forwarded_client(trusted)
        # An HTTP/1.0 request without Host gets the backend's authority (forward()).
        self.upstream_head = upstream_head(
            method, plan.target, host, plan.fields, plan, client.client_ip_bytes, client.tls, request_id,
            plan.peer_fields is not None and self._keeps_peer_headers()) if host else b""
        # the lifecycle
        self.phase = RECEIVED
        self.route = ""
        self.chain = EMPTY
        self.pool = None
        self.lease = None       # balancing.lease.Lease of the current try
        self.backend = None     # the backend of the last try (kept for the log)
        self.conn = None        # the upstream connection of the current try
        self.tries = 0
        self.attempts: Attempts | None = None  # when the pool retries
        # the request body, from the client
        self.pending_body: list[bytes] | None = None  # read before a connection was ready
        self.request_done = False
        self.body_bytes = 0
        # the response, to the client
        self.response_started = False  # bytes of this response went to the client
        self.head_pending: list[bytes] | None = None  # the response head's parts, until written
        self.framing = NO_BODY
        self.status = 0
        self.sent_at = 0.0
        self.bytes_out = 0
        self.upstream_time = 0.0   # request sent → response head, for the last try
        self.duration = 0.0        # head received → exchange ended, set before the log phase
        self.limit = None          # the rate limiter's Decision, when one was taken
        self._ctx: dict | None = None

    def _to(self, phase: int) -> None:
        """The one place the phase changes; leaving the backend ends the lease."""
        if not (_ALLOWED >> (8 * self.phase + phase)) & 1:
            raise InvalidTransition(f"exchange {self.request_id.decode('latin-1')}: "
                                    f"{PHASES[self.phase]} -> {PHASES[phase]}")
        self.phase = phase
        if phase >= RETRYING and self.lease is not None:
            lease, self.lease = self.lease, None
            if lease.judged:
                lease.release()  # the verdict took the probe slot, if it held one
            else:
                lease.abandon(monotonic())  # no verdict (client left, a bug): free the slot

    # -- RequestInfo, for strategies and routes; and for filters ---------------------
    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_values(self, name: bytes) -> list[bytes]:
        """Every field line of header ``name`` (lower case), in order."""
        return [value for key, value in self.headers if key.lower() == name]

    @property
    def ctx(self) -> dict:
        """Per-request state for filters and plugins: a dict, created on first use."""
        if self._ctx is None:
            self._ctx = {}
        return self._ctx

    @property
    def secure(self) -> bool:
        """True when the client connection is TLS."""
        return self.client.tls

    @property
    def rate_limited(self) -> bool:
        return self.limit is not None and not self.limit.allowed

    @property
    def response_done(self) -> bool:
        return self.phase >= DONE

    @property
    def aborted(self) -> bool:
        return self.phase == ABORTED

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
        (``client_ip_header``), or the peer's own address; see http/client_address.py."""
        name = self.runtime.client_ip_header
        return client_ip(self.client.client_ip, self.header_values(name), trusted, name == b"forwarded")

    # -- phases: route → request filters → upstream request → pick (at the head of the line)
    def start(self) -> None:
        """Phases route → request filters → upstream request → pick, once this exchange is at
        the head of its connection's line."""
        try:
            runtime = self.runtime
            destination = runtime.single or runtime.router.match(
                host_without_port(self.host) if self.host else "", self.target, self.header, self.method
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
            if chain.upstream_request:
                self._upstream_request(chain.upstream_request)
            retry = pool.retry
            if retry is not None:
                if pool.budget is not None:
                    pool.budget.record_request(monotonic())
                if self.has_body:  # kept from the first byte, for a replay on another backend
                    self.attempts = attempts = Attempts(self.received_at, retry.max_body, True)
                    if self.pending_body:
                        attempts.keep(self.pending_body)
            self.try_backend()
        except Exception as exc:  # recovery: a bug costs this request a 500, nothing more
            self.internal_error(exc, "start")

    def _upstream_request(self, hooks) -> None:
        """Phase upstream request: the route's rewrites and the filters' hooks change method,
        target and headers; the head is built from what they leave."""
        plan = self.plan
        request = UpstreamRequest(self.method, self.target, header_pairs(plan.fields))
        for hook in hooks:
            hook(self, request)
        # (UpstreamRequest keeps the target origin-form and method and headers injection-free.)
        # The exchange keeps the client's method and target, for the log; the backend gets these.
        method = request.method
        if (method == b"HEAD") != (self.method == b"HEAD"):
            # A HEAD client gets no body, and a HEAD's answer has none: a switch either way
            # would frame the response wrongly. An error of the filter's: answered 500.
            raise ValueError(f"on_upstream_request may not change {self.method!r} to {method!r}: "
                             f"a request cannot become or stop being HEAD")
        self.head_method = method
        plan.target = target = request.target
        plan.fields = header_fields(request.headers.items())
        if self.host:
            self.upstream_head = upstream_head(
                method, target, self.host, plan.fields, plan, self.client.client_ip_bytes,
                self.client.tls, self.request_id, plan.peer_fields is not None and self._keeps_peer_headers())

    def try_backend(self) -> None:
        """Phase pick + forward, for the first try and every retry."""
        attempts = self.attempts
        if attempts is not None:
            attempts.timer = None
        if self.phase >= DONE:
            return
        if self.tries and self.has_body and (attempts is None or attempts.replay is None):
            # The body outgrew retry.max_body while we waited to retry.
            self.respond_local(502, "request body too large to replay on another backend")
            return
        pool = self.pool
        lease = pool.lease(self, attempts.tried if attempts is not None else ())
        if lease is None:
            retry_after = b"Retry-After: %d\r\n" % pool.retry_after(monotonic())
            self.respond_local(503, f"pool {pool.name!r} has no available backend", retry_after)
            return
        self.lease = lease
        self.backend = backend = lease.backend
        self.tries += 1
        if attempts is not None:
            attempts.tried += (backend,)
        connections = pool.connections[backend.id]
        conn = connections.acquire()
        if conn is not None:
            self.forward(conn)
        else:
            self.connect()

    def connect(self) -> None:
        self._to(CONNECTING)
        if not self.request_done:
            self.client.gate.pause(NO_BACKEND_YET)
        self.pool.connections[self.backend.id].connect(self, _connected)

    def forward(self, conn) -> None:
        """Phase forward: send the head (and any body read so far) on ``conn``."""
        self._to(SENT)
        self.conn = conn
        conn.attach(self, self.head_method == b"HEAD")
        if self.client.send_since:
            conn.pause_reading()  # the client is not taking what it has: no more for now
        head = self.upstream_head
        if not head:  # HTTP/1.0 without Host: the backend's authority
            plan, backend = self.plan, self.backend
            head = upstream_head(self.head_method, plan.target, backend_authority(backend.host, backend.port),
                                 plan.fields, plan, self.client.client_ip_bytes, self.client.tls,
                                 self.request_id, plan.peer_fields is not None and self._keeps_peer_headers())
        body = self.attempts.replay if self.tries > 1 else self.pending_body
        last_chunk = self.request_done and self.chunked
        if body or last_chunk:
            parts = [head]
            if body:
                for chunk in body:
                    parts.extend(self._frame_body(chunk))
            if last_chunk:
                parts.append(_LAST_CHUNK)
            conn.transport.writelines(parts)
        else:
            conn.transport.write(head)  # the usual request: a head alone
        self.pending_body = None
        self.sent_at = monotonic()
        if self.request_done:
            # The backend's silence is timed from the end of the request: a slow
            # upload is the client's doing (timeouts.client_body), not the backend's.
            conn.arm_response_timer(
                self._try_timeout() if self.pool.timed_tries else self.runtime.settings.response_timeout)
        gate = self.client.gate
        if gate.paused_by:
            gate.resume(NO_BACKEND_YET)

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
        if self.phase >= DONE:
            return  # answered already; the connection closes after this request
        if self.attempts is not None:
            self.attempts.keep((chunk,))
        conn = self.conn
        if conn is None:
            if self.pending_body is None:
                self.pending_body = []
            self.pending_body.append(chunk)
        elif self.chunked:
            conn.transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
        else:
            conn.transport.write(chunk)

    def on_request_complete(self) -> None:
        self.request_done = True
        conn = self.conn
        if conn is not None and self.phase < DONE:
            if self.chunked:
                conn.transport.write(_LAST_CHUNK)
            conn.arm_response_timer(
                self._try_timeout() if self.pool.timed_tries else self.runtime.settings.response_timeout)

    # -- response, from the upstream connection (the ResponseSink side) ------------------
    def on_informational(self, status: int, reason: bytes, headers: list[bytes]) -> None:
        """Relay 100 Continue / 103 Early Hints to HTTP/1.1 clients (RFC 9110 §15.2)."""
        if not self.http11 or self.response_started:
            return
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        for name, value in zip(headers[0::2], headers[1::2]):
            if name.lower() not in RESPONSE_HEADERS:
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        self.client.transport.write(b"".join(lines))

    def on_response_head(self, conn, status: int, reason: bytes, headers: list[bytes]) -> bool:
        """Phase response: build the client's head; False when this response is dropped
        for a retry (its connection goes with it)."""
        now = monotonic()  # the strategies' clock; loop.time() only has ms resolution
        backend = self.backend
        self.upstream_time = now - self.sent_at
        backend.latency.observe(self.upstream_time, now)
        pool = self.pool
        if 502 <= status <= 504:  # a gateway failure: the backend's proxy could not serve it
            if self._retry_on_status(status):
                self.conn = None
                return False
        elif backend.breaker is not None or pool.outliers is not None:
            pool.record(backend, True, now)
            self.lease.judged = True
        self._to(RESPONDING)
        self.status = status
        # The head is built as flat fields (http/headers.py): one join at the end, no
        # formatting per field.
        out = [b"HTTP/1.1 ", _STATUS_CODES[status], reason, b"\r\n"]
        content_length: bytes | None = None
        codings: list[bytes] | None = None
        named: set[bytes] | None = None
        for i in range(0, len(headers), 2):  # flat: name, value, ...
            name = headers[i]
            value = headers[i + 1]
            kind = response_kind(name)
            if kind == PASSED:
                out.extend((name, b": ", value, b"\r\n"))
            elif kind == CONTENT_LENGTH:
                content_length = value
            elif kind == TRANSFER_ENCODING:
                codings = (codings or []) + [c.strip() for c in value.split(b",") if c.strip()]
            elif kind == CONNECTION and not plain_connection(value):
                tokens = named_by_connection(value)
                if tokens:
                    named = tokens if named is None else named | tokens
        if named:
            out[4:] = without_named(out[4:], named)
        framing, line, length, close_delimited = plan_response(self.head_method, status, self.http11,
                                                               content_length, codings)
        self.framing = framing
        if length:
            conn.body_left = length
        if close_delimited:
            conn.expect_eof = True  # the backend's EOF ends the body
            conn.reusable = False
        if framing == UNTIL_CLOSE:
            self.keep_alive = False  # an HTTP/1.0 client learns the end from our close
        if self.chain.response:
            # Response filters see the head as lines: the status line, one per field, the framing.
            lines = [b"".join(out[:4])] + field_lines(out[4:])
            if line:
                lines.append(line)
            try:
                out = list(self.chain.respond(self, status, lines))
            except Exception as exc:
                self.internal_error(exc, "response filter")
                return False  # the backend's response is dropped, and its connection with it
        elif line:
            out.append(line)
        out.extend((b"X-Request-ID: ", self.request_id))
        if pool.tries_header:
            out.append(b"\r\nX-Fulcrum-Tries: %d" % self.tries)
        if not self.keep_alive:
            out.append(b"\r\nConnection: close\r\n\r\n")
        elif not self.http11:
            out.append(b"\r\nConnection: keep-alive\r\n\r\n")
        else:
            out.append(b"\r\n\r\n")
        self.head_pending = out  # joined with the first body bytes (on_response_body)
        return True

    def on_response_body(self, chunk: bytes) -> None:
        transport = self.client.transport
        self.bytes_out += len(chunk)
        parts = self.head_pending
        chunked = self.framing == CHUNKED
        if parts is None:
            if chunked:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            return
        self.head_pending = None
        self.response_started = True
        if chunked:
            parts.append(b"%x\r\n" % len(chunk))
        # One write, one syscall: the head and a small first chunk become one bytes (one copy
        # of each part); a large chunk goes after the head uncopied.
        if len(chunk) <= 16384:
            parts.append(chunk)
            if chunked:
                parts.append(b"\r\n")
            transport.write(join(parts))
        elif chunked:
            transport.writelines((join(parts), chunk, b"\r\n"))
        else:
            transport.writelines((join(parts), chunk))

    def on_response_complete(self, conn) -> None:
        """The backend's response ended cleanly; ``conn`` is already detached."""
        self.conn = None
        if self.request_done:
            connections = self.pool.connections[self.backend.id]
            connections.give_back(conn)
        else:
            conn.close()  # the backend answered before it read the whole request
        parts = self.head_pending
        if parts is not None:  # a response without body bytes
            self.head_pending = None
            self.response_started = True
            if self.framing == CHUNKED:
                parts.append(_LAST_CHUNK)
            self.client.transport.write(join(parts))
        elif self.framing == CHUNKED:
            self.client.transport.write(_LAST_CHUNK)
        self.finish()

    # -- protocol switch (WebSocket): the exchange becomes a tunnel -----------------
    def on_switching_protocols(self, conn, reason: bytes, headers: list[bytes]) -> None:
        """The backend accepted the upgrade: relay its 101 head."""
        now = monotonic()
        self.upstream_time = now - self.sent_at
        if self.backend.breaker is not None or self.pool.outliers is not None:
            self.pool.record(self.backend, True, now)
            self.lease.judged = True
        self.status = 101
        lines = [b"HTTP/1.1 101 %s\r\n" % reason]
        upgrade = self.upgrade
        for name, value in zip(headers[0::2], headers[1::2]):
            lower = name.lower()
            if lower == b"upgrade":
                upgrade = value
            elif lower not in RESPONSE_HEADERS:
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"Connection: Upgrade\r\nUpgrade: %s\r\nX-Request-ID: %s\r\n\r\n" % (upgrade, self.request_id))
        self.client.transport.write(b"".join(lines))
        self.response_started = True

    def start_tunnel(self, conn, rest: bytes) -> None:
        """After the 101: both connections become a tunnel; ``rest`` came after the backend's head."""
        self._to(TUNNEL)
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
        self._to(DONE)
        self._log()

    def upstream_write_paused(self) -> None:
        self.client.gate.pause(BACKPRESSURE)

    def upstream_write_resumed(self) -> None:
        self.client.gate.resume(BACKPRESSURE)

    # -- failures of a try: counted against the backend, retried when the policy allows -----
    def upstream_failed(self, conn, reason: str, nothing_received: bool) -> None:
        self.conn = None
        attempts = self.attempts
        if (nothing_received and conn.served > 1 and not self.has_body and self.head_method in IDEMPOTENT
                and (attempts is None or not attempts.reconnected)):
            # A pooled connection the backend closed as we reused it. The request may
            # or may not have been seen; an idempotent one is safe to send once more
            # on a fresh connection (RFC 9110 §9.2.2), anything else gets its 502.
            if attempts is None:
                self.attempts = attempts = Attempts(self.received_at, 0, False)
            attempts.reconnected = True
            self.connect()
            return
        if nothing_received:
            if not self._retry(Failure.RESET_BEFORE_RESPONSE, reason):
                self._answer_failure(502, reason)
            return
        if self.phase == SENT:
            self._note_failure(reason)  # cut inside the head: no verdict was given yet
        self._answer_failure(502, reason)

    def upstream_invalid(self, conn, reason: str) -> None:
        self.conn = None
        self._note_failure(reason)
        self._answer_failure(502, reason)

    def upstream_timed_out(self, conn) -> None:
        self.conn = None
        reason = f"no response within {self._try_timeout():g}s"
        if self.status or not self._retry(Failure.TIMEOUT, reason):
            self._answer_failure(504, reason)

    def connect_failed(self, reason: str) -> None:
        if not self._retry(Failure.CONNECT_FAILED, reason):
            self._answer_failure(502, reason)

    def _retry_on_status(self, status: int) -> bool:
        """A 502/503/504 from the backend: a gateway failure, retried when allowed."""
        reason = f"status {status}"
        self._note_failure(reason)
        return self.pool.retry is not None and self._retry(Failure.STATUS, reason, status)

    def _note_failure(self, reason: str) -> None:
        """A gateway failure on the current backend: counted, and told to its pool."""
        backend = self.backend
        backend.failures += 1
        backend.last_error = reason
        self.pool.record(backend, False, monotonic())
        if self.lease is not None:
            self.lease.judged = True

    def _retry(self, failure: Failure, reason: str, status: int | None = None) -> bool:
        """Note the failure; schedule the next try when the retry policy allows one."""
        if status is None:
            self._note_failure(reason)
        policy = self.pool.retry
        if policy is None or self.response_started or self.phase >= DONE:
            return False
        attempts = self._attempts(policy)
        decision = policy.decide(
            self.head_method, self.header(b"idempotency-key") is not None, self.tries, failure,
            not self.has_body or attempts.replay is not None, monotonic(), attempts.started_at,
            self.pool.budget, self.pool.rng, status,
        )
        if not decision.retry:
            return False
        self._to(RETRYING)
        self.client.gate.resume(BACKPRESSURE)  # the full buffer was the failed connection's
        if not self.request_done:
            self.client.gate.pause(NO_BACKEND_YET)  # hold the body until the next try
        attempts.schedule(self.client.loop, decision.delay, self.retry_now)
        return True

    def _attempts(self, policy) -> Attempts:
        """The retry bookkeeping, made at the first failure of a request without a body
        (one with a body has it from the start, for the replay). The first try counts."""
        attempts = self.attempts
        if attempts is None:
            self.attempts = attempts = Attempts(self.received_at, policy.max_body, False)
        if not attempts.tried and self.backend is not None:
            attempts.tried = (self.backend,)
        return attempts

    def retry_now(self) -> None:
        try:
            self.try_backend()
        except Exception as exc:  # a timer callback: nobody above us would answer the client
            self.internal_error(exc, "retry")

    def _try_timeout(self) -> float:
        """The backend's allowance for this try: timeouts.response, or retry.per_try_timeout,
        cut to what retry.deadline leaves (never below 1 ms, so the timer still fires)."""
        response = self.runtime.settings.response_timeout
        if self.pool is None or not self.pool.timed_tries:
            return response
        policy = self.pool.retry
        started = self.attempts.started_at if self.attempts is not None else self.received_at
        timeout = policy.try_timeout(monotonic(), started)
        return max(0.001, min(response, timeout if timeout is not None else response))

    def _answer_failure(self, status: int, reason: str, filters: bool = True) -> None:
        if self.response_started:
            # Part of the body is out: the client must see a cut, not an invented end.
            self.keep_alive = False
            self.client.abort_response()
            self.finish()
            return
        self.head_pending = None
        self.respond_local(status, reason, filters=filters)

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
        if self.phase >= DONE:
            return
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            conn.abort()  # its state is unknown: never reuse it
        self._answer_failure(500, "internal error", filters=False)

    def finish(self) -> None:
        """Phase finish: the response is fully written."""
        if self.phase >= DONE:
            return
        self._to(DONE)
        if self.has_body and not self.request_done:
            self.keep_alive = False
        self._log()
        # Whatever this exchange paused on the client's side ends with it.
        gate = self.client.gate
        if gate.paused_by:
            gate.resume(NO_BACKEND_YET | BACKPRESSURE)
        self.client.exchange_done(self)

    def _log(self) -> None:
        """Phase log: the chain's log hooks, then the request metrics; once per exchange."""
        self.duration = monotonic() - self.received_at
        if self.chain.log:
            run_log_hooks(self, self.chain)
        metrics = self.client.request_metrics
        if metrics is not None:
            try:
                metrics.count(self.pool, self.backend, self.method, self.status, self.route, self.body_bytes,
                              self.bytes_out, self.tries, self.limit is not None and not self.limit.allowed,
                              self.duration, self.upstream_time)
            except Exception:
                _metrics_failed(self)

    def abort(self) -> None:
        """The client went away (or was cut): drop the backend connection mid-exchange."""
        if self.phase >= DONE or self.phase == TUNNEL:
            return
        if self.attempts is not None:
            self.attempts.cancel()
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            conn.abort()
        self._to(ABORTED)
        self._log()


def new_exchange(client: Downstream, runtime, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                 http11: bool, keep_alive: bool, upgrade: bool) -> Exchange:
    """``Exchange(...)``, as the client connection makes one per request: the compiled core
    makes it without a constructor call (an argument tuple, then its parsing)."""
    exchange = Exchange.__new__(Exchange)
    exchange.prepare(client, runtime, method, target, headers, http11, keep_alive, upgrade)
    return exchange


def run_log_phase(exchange, chain, metrics) -> None:
    """Phase log of a request answered without an exchange (a rejection): every log hook,
    then the metrics. One that raises is logged and skips nothing else."""
    run_log_hooks(exchange, chain)
    if metrics is not None:
        try:
            metrics.observe(exchange)
        except Exception:
            _metrics_failed(exchange)


def run_log_hooks(exchange, chain) -> None:
    for hook in chain.log:
        try:
            hook(exchange)
        except Exception:
            log.exception("internal error", extra={"fields": {
                "request_id": exchange.request_id.decode("latin-1"), "phase": "log", "hook": repr(hook)}})


def _metrics_failed(exchange) -> None:
    log.exception("internal error", extra={"fields": {
        "request_id": exchange.request_id.decode("latin-1"), "phase": "metrics"}})


def _connected(exchange: Exchange, conn, error: str | None) -> None:
    try:
        _on_connected(exchange, conn, error)
    except Exception as exc:
        exchange.internal_error(exc, "connect")


def _on_connected(exchange: Exchange, conn, error: str | None) -> None:
    if exchange.phase >= DONE:
        if conn is not None:
            exchange.pool.connections[exchange.backend.id].give_back(conn)
        return
    if conn is None:
        exchange.connect_failed(error or "connect failed")
    else:
        exchange.forward(conn)
