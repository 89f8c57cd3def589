"""The access log: one line per request, JSON or text, formatted on the loop and written by
a thread (``observability/access_log.py``).

Fields: time (UTC, ms), in JSON also level/logger/event ("access") like component
log lines, request_id, client, method, path, status (0: the client left before
an answer), bytes_in / bytes_out (body bytes), duration_ms (head received → response
written, as the client saw it), upstream_ms (request sent → backend's response head), route,
pool, backend, tries and rate_limit (allowed, limited, or - when not evaluated).
"""
from __future__ import annotations

import json
import random
import re
import time

from fulcrum.config.filters import AccessLogConfig
from fulcrum.filters.base import Filter


# Printable ASCII without the two characters a quoted field must escape.
_PLAIN = re.compile(rb'[\x20-\x21\x23-\x5b\x5d-\x7e]*')


class _Clock:
    """Wall-clock timestamps (UTC, milliseconds), formatted once per millisecond: at
    thousands of requests a second most lines share one."""

    __slots__ = ("millis", "text")

    def __init__(self) -> None:
        self.millis = -1
        self.text = ""

    def stamp(self) -> str:
        millis = time.time_ns() // 1_000_000
        if millis != self.millis:
            self.millis = millis
            second, ms = divmod(millis, 1000)
            self.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + ".%03dZ" % ms
        return self.text


def _quoted(value: bytes) -> str:
    """A JSON string for ``value``: as is when it is plain printable ASCII, else escaped."""
    if _PLAIN.fullmatch(value):
        return '"' + value.decode() + '"'
    return json.dumps(value.decode("latin-1"))


class _Names(dict):
    """JSON strings of route, pool and backend names, made once each (config bounds them)."""

    def __missing__(self, name: str | None) -> str:
        quoted = self[name] = json.dumps(name)
        return quoted


def _outcome(limit) -> str:
    if limit is None:
        return "-"
    return "allowed" if limit.allowed else "limited"


class AccessLog(Filter):
    """Logs every finished exchange (or a sample of them)."""

    name = "access_log"
    Options = AccessLogConfig

    def __init__(self, options: AccessLogConfig, resources) -> None:
        super().__init__(options, resources)
        self.writer = resources.access_log_writer(options.output, options.max_pending)
        self.json = (options.format or resources.log_format) == "json"
        self.sample = options.sample
        self.always_errors = options.always_log_errors
        self.clock = _Clock()
        self.names = _Names()
        self.random = random.random

    def on_log(self, exchange) -> None:
        if self.sample < 1.0 and self.random() >= self.sample:
            status = exchange.status
            if not (self.always_errors and (status >= 500 or status == 429)):
                return
        self.writer.write(self.format_json(exchange) if self.json else self.format_text(exchange))

    def format_json(self, exchange) -> str:
        # Written by hand rather than json.dumps(dict): three times faster, and every value
        # that could hold a quote or a control byte still goes through JSON escaping.
        # The first keys are the component logs' own, so one stream holds both kinds of line.
        pool, backend, names = exchange.pool, exchange.backend, self.names
        return (
            f'{{"time": "{self.clock.stamp()}", "level": "info", "logger": "fulcrum.access", '
            f'"event": "access", "request_id": {_quoted(exchange.request_id)}, '
            f'"client": {_quoted(exchange.client_ip.encode())}, "method": {_quoted(exchange.method)}, '
            f'"path": {_quoted(exchange.target)}, "status": {exchange.status}, '
            f'"bytes_in": {exchange.body_bytes}, "bytes_out": {exchange.bytes_out}, '
            f'"duration_ms": {round(exchange.duration * 1000, 3)}, '
            f'"upstream_ms": {round(exchange.upstream_time * 1000, 3)}, "route": {names[exchange.route]}, '
            f'"pool": {names[pool.name if pool is not None else None]}, '
            f'"backend": {names[backend.id if backend is not None else None]}, '
            f'"tries": {exchange.tries}, "rate_limit": "{_outcome(exchange.limit)}"}}'
        )

    def format_text(self, exchange) -> str:
        pool, backend = exchange.pool, exchange.backend
        # The request line is quoted as in the common log format. A target of plain printable
        # ASCII (the usual case) is written as is; anything else goes through json.dumps, which
        # escapes quotes and control bytes, so a hostile path cannot forge a second log line.
        request = exchange.method + b" " + exchange.target
        if _PLAIN.fullmatch(request):
            request = f'"{request.decode()}"'
        else:
            request = json.dumps(request.decode("latin-1"))
        return (
            f"{self.clock.stamp()} {exchange.client_ip} {request} {exchange.status} "
            f"in={exchange.body_bytes} out={exchange.bytes_out} "
            f"duration_ms={exchange.duration * 1000:.3f} upstream_ms={exchange.upstream_time * 1000:.3f} "
            f"route={exchange.route or '-'} pool={pool.name if pool is not None else '-'} "
            f"backend={backend.id if backend is not None else '-'} tries={exchange.tries} "
            f"rate_limit={_outcome(exchange.limit)} request_id={exchange.request_id.decode('latin-1')}"
        )
