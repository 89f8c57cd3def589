"""The proxy listener: accepts client connections and owns what they share —
the current runtime (swapped whole on reload), the set of open connections,
request ids and the idle-connection sweeper."""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket

from fulcrum.proxy.client import ClientConnection
from fulcrum.runtime.state import Runtime

log = logging.getLogger("fulcrum.proxy")

SWEEP_INTERVAL = 1.0


class ProxyServer:
    """Binds the client listener and serves it with the current runtime."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        self.connections: set[ClientConnection] = set()
        self.server: asyncio.AbstractServer | None = None
        # Ids are a per-process random prefix plus a counter: unique, and far
        # cheaper per request than uuid4.
        self._id_prefix = os.urandom(4).hex().encode()
        self._ids = itertools.count(1)
        self._sweeper: asyncio.TimerHandle | None = None

    def next_request_id(self) -> bytes:
        return b"%s-%08x" % (self._id_prefix, next(self._ids))

    async def start(self, host: str, port: int, backlog: int = 4096) -> None:
        self.server = await self.loop.create_server(
            lambda: ClientConnection(self), host, port, backlog=backlog, reuse_address=True,
        )
        for sock in self.server.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)
        self.runtime.start()

    @property
    def addresses(self) -> list[tuple]:
        return [s.getsockname() for s in self.server.sockets] if self.server else []

    def _sweep(self) -> None:
        now = self.loop.time()
        for pool in self.runtime.pools.values():
            for conns in pool.connections.values():
                conns.sweep(now)
            pool.refresh(pool.clock())  # ejections that expired, breakers ready to probe
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, close idle connections, let busy ones finish, then cut."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
        await self.runtime.stop()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = self.loop.time() + timeout
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        self.runtime.close()
