"""Keep-alive connections to one backend: idle ones kept LIFO, bounded, expired.

LIFO reuse keeps the warmest connections busy and lets the cold end of the
list age out; the sweeper closes connections idle longer than ``pool_idle``.
Connecting is the one step of the request path that truly waits, so it is the
one place a task is created.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from fulcrum.balancing.backend import Backend
from fulcrum.proxy.clock import monotonic
from fulcrum.proxy.settings import ProxySettings
from fulcrum.proxy.upstream import UpstreamConnection


class ConnectionPool:
    """Idle keep-alive connections to one backend, and new ones on demand."""

    __slots__ = ("backend", "loop", "settings", "idle", "opened", "closed")

    def __init__(self, backend: Backend, loop: asyncio.AbstractEventLoop, settings: ProxySettings) -> None:
        self.backend = backend
        self.loop = loop
        self.settings = settings
        self.idle: list[UpstreamConnection] = []  # most recently used last (a list: C calls when compiled)
        self.opened = 0
        self.closed = False

    def acquire(self) -> UpstreamConnection | None:
        """The most recently used idle connection still open, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def give_back(self, conn: UpstreamConnection) -> None:
        """Take a connection back after a clean exchange, or close it."""
        limit = self.settings.max_requests_per_connection
        if (
            self.closed or conn.closed or not conn.reusable
            or len(self.idle) >= self.settings.max_idle_per_backend
            or (limit and conn.served >= limit)
        ):
            conn.close()
            return
        if conn.read_paused:
            conn.resume_reading()
        conn.idle_since = monotonic()
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        """An idle connection was closed by the backend."""
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def connect(self, exchange: object, on_done: Callable[[object, UpstreamConnection | None, str | None], None]) -> asyncio.Task:
        """Open a new connection for ``exchange``; ``on_done(exchange, conn, error)``."""
        task = self.loop.create_task(self._open())

        def done(t: asyncio.Task) -> None:
            if t.cancelled():
                return
            exc = t.exception()
            if exc is None:
                on_done(exchange, t.result(), None)
            else:
                on_done(exchange, None, _describe(exc, self.settings.connect_timeout))

        task.add_done_callback(done)
        return task

    async def _open(self) -> UpstreamConnection:
        backend = self.backend
        _, conn = await asyncio.wait_for(
            self.loop.create_connection(lambda: UpstreamConnection(self), backend.host, backend.port),
            self.settings.connect_timeout,
        )
        self.opened += 1
        return conn

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than ``pool_idle`` (oldest first)."""
        idle = self.idle
        cutoff = now - self.settings.pool_idle_timeout
        expired = 0
        while expired < len(idle) and (idle[expired].closed or idle[expired].idle_since <= cutoff):
            expired += 1
        if expired:
            stale = idle[:expired]
            del idle[:expired]
            for conn in stale:
                conn.close()

    def close(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"connect timed out after {timeout:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connect failed: {exc.strerror}"
    return f"connect failed: {exc!r}"
