"""Example backend for Fulcrum's demo and integration tests: a small, fast HTTP/1.1 server.

One `BackendProtocol` per connection, one `Exchange` per request. Exchanges queue in arrival
order and are answered strictly in that order (pipelining). Request bodies are consumed as they
arrive (counted; hashed and kept up to 1 MiB only for echo=1). Sized response bodies are written
in 64 KiB chunks and stop while the transport is over its high-water mark. See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import http
import json
import random
import re
import signal
import sys
from urllib.parse import parse_qsl

import httptools

CHUNK = 64 * 1024
PATTERN = b"0123456789abcdef"  # size=N bodies cycle through this; CHUNK is a multiple of it
PATTERN_BLOCK = PATTERN * (CHUNK // len(PATTERN))
ECHO_BODY_LIMIT = 1024 * 1024  # echo=1 returns the body text only up to this size
MAX_HEAD_BYTES = 64 * 1024  # request target + headers; beyond this the answer is 431
MAX_QUEUED = 64  # pipelined requests waiting for their turn before reading pauses
LINGER_SECONDS = 2.0  # after a final response, how long to drain input waiting for the peer's FIN
NO_BODY_STATUSES = frozenset({204, 304})
SPECIAL_PATHS = frozenset({"/health", "/_stats", "/_control/health"})
JSON_TYPE, TEXT_TYPE, OCTET_TYPE = b"application/json", b"text/plain", b"application/octet-stream"
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in http.HTTPStatus}


class BadOption(ValueError):
    """A query parameter this backend understands has a value it cannot use (answered with 400)."""


_KIND_NAMES = {int: "an integer", float: "a number"}


def _number(kind, low, high):
    def convert(key: str, raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise BadOption(f"{key}: must be {_KIND_NAMES[kind]} (got {raw!r})") from None
        if not low <= value <= high:  # also rejects nan
            raise BadOption(f"{key}: must be between {low} and {high} (got {raw!r})")
        return value

    return convert


def _flag(key: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("", "1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadOption(f"{key}: must be 1 or 0 (got {raw!r})")


def _header(key: str, raw: str) -> bytes:
    name, sep, value = raw.partition(":")
    value = value.strip()
    if not sep or not HEADER_NAME.match(name) or any(c in value for c in "\r\n\0"):
        raise BadOption(f"{key}: must be Name:Value with a token name and no CR/LF (got {raw!r})")
    try:
        return f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise BadOption(f"{key}: value must be latin-1 (got {raw!r})") from None


class Options:
    """What one request asks for: command-line defaults overridden by its query parameters."""

    __slots__ = ("latency", "status", "fail", "size", "chunked", "close_delimited", "echo", "hang",
                 "close", "headers", "ok", "reset")

    def __init__(self, latency: float = 0.0, status: int = 200, fail: float = 0.0) -> None:
        self.latency, self.status, self.fail = latency, status, fail
        self.size: int | None = None
        self.chunked = self.close_delimited = self.echo = self.hang = self.close = self.reset = False
        self.headers: list[bytes] = []  # extra response header lines, already encoded
        self.ok: bool | None = None  # /_control/health?ok=

    def parsed(self, query: str) -> Options:
        """A copy with `query` applied; unknown parameters are ignored (cache busters etc.)."""
        opts = Options(self.latency, self.status, self.fail)
        for key, raw in parse_qsl(query, keep_blank_values=True):
            if key == "header":
                line = _header(key, raw)
                opts.headers.append(line)
                if line[:11].lower() == b"connection:" and b"close" in line.lower():
                    opts.close = True
            elif key in _CONVERTERS:
                setattr(opts, key, _CONVERTERS[key](key, raw))
        return opts


_CONVERTERS = {
    "latency": _number(float, 0.0, 3600.0), "status": _number(int, 200, 599),
    "fail": _number(float, 0.0, 1.0), "size": _number(int, 0, 1 << 40),
    "chunked": _flag, "close_delimited": _flag, "echo": _flag, "hang": _flag, "close": _flag,
    "ok": _flag, "reset": _flag,
}


class Exchange:
    """One request and its response: what arrived, what the query asks for, when it may be answered."""

    __slots__ = ("method", "target", "path", "version", "headers", "options", "keep_alive", "error",
                 "expect_continue", "continue_sent", "has_body", "body_length", "body_hash",
                 "body_kept", "complete", "ready_at")

    def __init__(self) -> None:
        self.method = self.target = self.path = self.version = None
        self.headers: list[tuple[bytes, bytes]] = []  # in received order, original case
        self.options: Options | None = None
        self.keep_alive = True
        self.error: tuple[int, str] | None = None  # (status, message) answered instead
        self.expect_continue = self.continue_sent = self.has_body = self.complete = False
        self.body_length = 0
        self.body_hash = None  # hashlib.sha256 for echo=1
        self.body_kept: bytearray | None = None  # echo=1 keeps up to ECHO_BODY_LIMIT, then None
        self.ready_at = 0.0  # loop time before which the response must not start (latency)


def _json(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


class Backend:
    """Server-wide state: configuration, counters, the health flag, the seeded rng, connections."""

    def __init__(self, name: str, latency: float, fail_rate: float, status: int, seed: int | None):
        self.name = name
        self.x_backend = b"X-Backend: " + name.encode("latin-1", "replace") + b"\r\n"
        self.app_defaults = Options(latency, status, fail_rate)  # for application paths
        self.plain_defaults = Options()  # for /health, /_stats, /_control/*: query params only
        self.rng = random.Random(seed)
        self.healthy = True
        self.requests = self.health_requests = self.connections = 0
        self.open: set[BackendProtocol] = set()

    def stats(self) -> dict:
        return {"name": self.name, "requests": self.requests, "connections": self.connections,
                "open_connections": len(self.open), "health_requests": self.health_requests,
                "healthy": self.healthy,
                "write_buffer_bytes": sum(p.transport.get_write_buffer_size() for p in self.open)}

    def reply(self, ex: Exchange) -> tuple[int, bytes, bytes | int]:
        """(status, content type, body bytes or the size of a pattern body) for a complete request."""
        if ex.error is not None:
            return ex.error[0], JSON_TYPE, _json({"backend": self.name, "error": ex.error[1]})
        opts, path = ex.options, ex.path
        if path == "/_stats":
            snapshot = self.stats()
            if opts.reset:
                self.requests = self.health_requests = self.connections = 0
            return 200, JSON_TYPE, _json(snapshot)
        if path == "/health":
            return (200, TEXT_TYPE, b"ok\n") if self.healthy else (503, TEXT_TYPE, b"unhealthy\n")
        if path == "/_control/health":
            if opts.ok is not None:
                self.healthy = opts.ok
            return 200, JSON_TYPE, _json({"backend": self.name, "healthy": self.healthy})
        if opts.fail and self.rng.random() < opts.fail:
            return 500, JSON_TYPE, _json({"backend": self.name, "method": ex.method, "path": path,
                                          "error": "injected failure"})
        if opts.echo:
            kept = ex.body_kept
            return opts.status, JSON_TYPE, _json({
                "backend": self.name, "method": ex.method, "target": ex.target,
                "version": ex.version,
                "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in ex.headers],
                "body": None if kept is None else kept.decode("utf-8", "replace"),
                "body_length": ex.body_length, "body_sha256": ex.body_hash.hexdigest()})
        if opts.size is not None:
            return opts.status, OCTET_TYPE, opts.size
        doc = {"backend": self.name, "method": ex.method, "path": path}
        if ex.has_body:
            doc["body_length"] = ex.body_length
        return opts.status, JSON_TYPE, _json(doc)


class BackendProtocol(asyncio.Protocol):
    """One client connection: parses requests with httptools and answers them in order."""

    def __init__(self, backend: Backend) -> None:
        # server-wide
        self.backend = backend
        self.loop = asyncio.get_running_loop()
        # connection lifetime
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Exchange] = collections.deque()  # head is being answered
        self.accepting = True  # False once a request that ends the connection has arrived
        self.closing = False  # final response written or connection lost: input is discarded
        self.peer_eof = False
        self.reading_paused = self.writing_paused = False
        self.busy = False  # head exchange is waiting out latency, streaming, or hanging
        self.timer: asyncio.TimerHandle | None = None  # latency wait or linger deadline
        self.stream: list | None = None  # [exchange, bytes remaining, chunked?] of a pattern body
        # request being parsed
        self.current: Exchange | None = None
        self.url = bytearray()
        self.head_bytes = 0
        self.head_too_large = False

    # -- transport events -------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.backend.connections += 1
        self.backend.open.add(self)

    def connection_lost(self, exc) -> None:
        self.backend.open.discard(self)
        self.closing, self.stream = True, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        if self.closing or not self.accepting:
            return  # lingering before close: drain and drop
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.accepting = False  # answered like any request, then the connection closes
        except httptools.HttpParserError as exc:
            if self.accepting:  # not our own stop after a connection-ending request
                self._reject(431 if self.head_too_large else 400, f"malformed request: {exc}")

    def eof_received(self) -> bool:
        self.peer_eof = True
        # Answer what is queued (then _finish closes) unless something in it can never complete.
        return bool(self.queue) and not self.closing and all(
            ex.complete and not (ex.options.hang and ex.error is None) for ex in self.queue)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.stream is not None:
            ex = self.stream[0]
            if not self._stream_some():
                return
            self.busy = False
            self._finish(ex)
        self._pump()

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self.accepting:
            raise BadOption("input after a connection-ending request")  # stops the parser
        self.current = Exchange()
        self.url.clear()
        self.head_bytes = 0

    def _count_head(self, n: int) -> None:
        self.head_bytes += n
        if self.head_bytes > MAX_HEAD_BYTES:
            self.head_too_large = True
            raise BadOption("request head too large")

    def on_url(self, part: bytes) -> None:
        self._count_head(len(part))
        self.url += part

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        ex = self.current
        ex.headers.append((name, value))
        lname = name.lower()
        if lname == b"expect":
            ex.expect_continue = value.lower() == b"100-continue"
        elif lname == b"content-length" or lname == b"transfer-encoding":
            ex.has_body = True

    def on_headers_complete(self) -> None:
        ex, parser = self.current, self.parser
        ex.method = parser.get_method().decode("ascii", "replace")
        ex.target = target = self.url.decode("latin-1")
        ex.version = parser.get_http_version()
        path, _, query = target.partition("?")
        ex.path = path
        defaults = self.backend.plain_defaults if path in SPECIAL_PATHS else self.backend.app_defaults
        try:
            opts = ex.options = defaults.parsed(query) if query else defaults
        except BadOption as exc:
            opts = ex.options = defaults
            ex.error = (400, str(exc))
        ex.expect_continue = ex.expect_continue and ex.version != "1.0"
        ex.keep_alive = (parser.should_keep_alive() and not parser.should_upgrade()
                         and not (opts.close or opts.close_delimited
                                  or (opts.chunked and ex.version == "1.0")))
        if opts.echo:
            ex.body_hash, ex.body_kept = hashlib.sha256(), bytearray()
        self.queue.append(ex)
        if len(self.queue) >= MAX_QUEUED and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._pump()  # may send 100 Continue if this request is now at the head

    def on_body(self, chunk: bytes) -> None:
        ex = self.current
        ex.body_length += len(chunk)
        if ex.body_hash is not None:
            ex.body_hash.update(chunk)
            kept = ex.body_kept
            if kept is not None:
                if len(kept) + len(chunk) > ECHO_BODY_LIMIT:
                    ex.body_kept = None
                else:
                    kept += chunk

    def on_message_complete(self) -> None:
        ex, self.current = self.current, None
        ex.complete = True
        if ex.path != "/_stats":
            self.backend.requests += 1
            if ex.path == "/health":
                self.backend.health_requests += 1
        if ex.options.latency:
            ex.ready_at = self.loop.time() + ex.options.latency
        if not ex.keep_alive:
            self.accepting = False
        self._pump()

    # -- answering --------------------------------------------------------------------------

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that could not be parsed, after those before it, then close."""
        ex = self.current
        if ex is None or not (self.queue and self.queue[-1] is ex):
            ex = Exchange()
            ex.options = self.backend.plain_defaults
            self.queue.append(ex)
        ex.error, ex.complete, ex.keep_alive, ex.ready_at = (status, message), True, False, 0.0
        self.current, self.accepting = None, False
        self._pump()

    def _pump(self) -> None:
        """Answer queued exchanges in order until one has to wait (body, latency, backpressure)."""
        while self.queue and not (self.busy or self.writing_paused or self.closing):
            ex = self.queue[0]
            if not ex.complete:
                if ex.expect_continue and not ex.continue_sent:
                    ex.continue_sent = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            if ex.options.hang and ex.error is None:
                self.busy = True  # never answered; open until the peer closes
                return
            if ex.ready_at:
                delay = ex.ready_at - self.loop.time()
                if delay > 0:
                    self.busy = True
                    self.timer = self.loop.call_later(delay, self._latency_elapsed)
                    return
            if not self._respond(ex):
                self.busy = True  # resume_writing continues the body
                return
            self._finish(ex)

    def _latency_elapsed(self) -> None:
        self.timer, self.busy = None, False
        self.queue[0].ready_at = 0.0
        self._pump()

    def _finish(self, ex: Exchange) -> None:
        self.queue.popleft()
        if not ex.keep_alive:
            self._close_after_final_response()
        elif self.peer_eof and not self.queue:
            self.transport.close()
        elif self.reading_paused and len(self.queue) < MAX_QUEUED // 2:
            self.reading_paused = False
            self.transport.resume_reading()

    def _close_after_final_response(self) -> None:
        # Half-close and drain input for a moment: closing with unread input would send RST and
        # could destroy the response in the peer's receive buffer.
        self.closing = True
        if self.peer_eof or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        if self.reading_paused:
            self.transport.resume_reading()
        self.timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _respond(self, ex: Exchange) -> bool:
        """Write the response head and body; False while a pattern body is still being written."""
        status, content_type, body = self.backend.reply(ex)
        opts = ex.options
        framing = ("close" if opts.close_delimited or (opts.chunked and ex.version == "1.0")
                   else "chunked" if opts.chunked else "length")
        has_body = status not in NO_BODY_STATUSES
        lines = [STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
                 self.backend.x_backend, b"Content-Type: " + content_type + b"\r\n"]
        if has_body and framing == "length":
            lines.append(b"Content-Length: %d\r\n" % (body if isinstance(body, int) else len(body)))
        elif has_body and framing == "chunked":
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if not ex.keep_alive:
            lines.append(b"Connection: close\r\n")
        elif ex.version == "1.0":
            lines.append(b"Connection: keep-alive\r\n")
        lines.extend(opts.headers)
        lines.append(b"\r\n")
        head = b"".join(lines)
        write = self.transport.write
        if not has_body or ex.method == "HEAD":
            write(head)
        elif isinstance(body, int):
            write(head)
            self.stream = [ex, body, framing == "chunked"]
            return self._stream_some()
        elif framing == "chunked":
            write(head + (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"))
        else:
            write(head + body)
        return True

    def _stream_some(self) -> bool:
        """Write pattern chunks until done (True) or the transport asks us to pause (False)."""
        stream = self.stream
        _, remaining, chunked = stream
        transport = self.transport
        while remaining and not self.writing_paused:
            if transport.is_closing():
                return False  # connection_lost clears the stream
            n = CHUNK if remaining >= CHUNK else remaining
            data = PATTERN_BLOCK if n == CHUNK else PATTERN_BLOCK[:n]
            if chunked:
                transport.writelines((b"%x\r\n" % n, data, b"\r\n"))
            else:
                transport.write(data)
            remaining -= n
        stream[1] = remaining
        if remaining:
            return False
        if chunked:
            transport.write(b"0\r\n\r\n")
        self.stream = None
        return True


# -- process -------------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> int:
    """Bind, announce on stdout, serve until SIGTERM/SIGINT; then stop listening and close all."""
    loop = asyncio.get_running_loop()
    backend = Backend(args.name, args.latency, args.fail_rate, args.status, args.seed)
    try:
        server = await loop.create_server(lambda: BackendProtocol(backend), args.host, args.port,
                                          backlog=1024, reuse_address=True)
    except OSError as exc:
        print(f"backend {args.name}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = server.sockets[0].getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    print(f"backend {args.name} listening on {host}:{port}", flush=True)
    await stopped.wait()
    server.close()  # stop listening
    for proto in list(backend.open):  # idle keep-alive connections close, busy ones are cut
        if proto.queue or proto.stream is not None:
            proto.transport.abort()
        else:
            proto.transport.close()
    await server.wait_closed()
    await asyncio.sleep(0)  # let connection_lost callbacks run
    return 0


def _cli(convert):
    """A BadOption-raising converter as an argparse type (argparse prefixes the flag name)."""

    def parse(raw: str):
        try:
            return convert("", raw)
        except BadOption as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(": ")) from None

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fulcrum example backend (HTTP/1.1 test server).")
    p.add_argument("--port", type=_cli(_number(int, 0, 65535)), required=True,
                   help="port to listen on; 0 picks a free one (printed in the listening line)")
    p.add_argument("--name", required=True, help="reported in X-Backend and every JSON body")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--latency", type=_cli(_number(float, 0.0, 3600.0)), default=0.0,
                   help="seconds to wait before answering application requests (default 0)")
    p.add_argument("--fail-rate", type=_cli(_number(float, 0.0, 1.0)), default=0.0,
                   help="probability of answering 500 instead (default 0)")
    p.add_argument("--status", type=_cli(_number(int, 200, 599)), default=200,
                   help="status of application responses (default 200)")
    p.add_argument("--seed", type=int, default=None, help="seed for --fail-rate/fail= (default random)")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop: uvloop when importable (auto, default) or plain asyncio")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loop_factory = None
    if args.loop != "asyncio":
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            if args.loop == "uvloop":
                print("backend: --loop uvloop but uvloop is not installed", file=sys.stderr)
                return 2
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
