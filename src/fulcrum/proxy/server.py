"""The proxy listener: accepts client connections and owns what they share —
the current runtime (swapped whole on reload), the set of open connections and
the connection limits, request ids and the idle-connection sweeper."""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Protocol

from fulcrum.config.model import parse_host_port
from fulcrum.proxy.client import ClientConnection
from fulcrum.proxy.clock import monotonic
from fulcrum.proxy.request_ids import RequestIds

log = logging.getLogger("fulcrum.proxy")

SWEEP_INTERVAL = 1.0


class ServedRuntime(Protocol):
    """What the listener needs of a runtime (runtime/state.py builds it): the settings and
    pools its connections use, the TLS contexts, and the start/stop/retire of a reload."""

    settings: object
    pools: dict
    config: object
    tls: object
    resources: object

    def start(self, checks: bool = True) -> None: ...
    async def stop(self) -> None: ...
    def retire(self, successor: "ServedRuntime") -> None: ...
    def close(self) -> None: ...


class ProxyServer:
    """Binds the client listener and serves it with the current runtime."""

    def __init__(self, runtime: ServedRuntime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        self.connections: set[ClientConnection] = set()
        # TLS connections still in their handshake (also in ``connections``): a failed handshake
        # never reaches the protocol, so the sweeper drops those past their deadline.
        self.in_handshake: set[ClientConnection] = set()
        self.per_address: dict[str, int] = {}   # open connections per peer, when limited
        self.refused_total = 0
        self.tunnels_opened = self.tunnels_closed = 0  # WebSocket tunnels, for metrics
        self.tls_server: asyncio.AbstractServer | None = None
        self.backlog = 4096
        self.request_metrics = None  # observability's per-request recorder, when metrics are on
        self.active_checks = True  # False in a worker: the supervisor checks and tells it
        self.server: asyncio.AbstractServer | None = None
        self.request_ids = RequestIds()
        self._sweeper: asyncio.TimerHandle | None = None

    def handshaking(self, conn: ClientConnection) -> None:
        """A TLS connection was accepted: it counts as open (and against max_connections)
        from now, not from the end of its handshake."""
        self.connections.add(conn)
        self.in_handshake.add(conn)

    def admit(self, conn: ClientConnection) -> str | None:
        """Count a new connection in, or say why it is refused (limits.max_connections*)."""
        settings = self.runtime.settings
        if conn.tls:
            self.in_handshake.discard(conn)
            self.connections.discard(conn)  # counted since accept; judged below like the rest
        if settings.max_connections and len(self.connections) >= settings.max_connections:
            return self._refuse(conn, f"too many open connections (limit {settings.max_connections})")
        per_address = settings.max_connections_per_ip
        if per_address:
            count = self.per_address.get(conn.client_ip, 0)
            if count >= per_address:
                return self._refuse(conn, f"too many connections from {conn.client_ip} (limit {per_address})")
            self.per_address[conn.client_ip] = count + 1
            conn.counted = True
        self.connections.add(conn)
        return None

    def _refuse(self, conn: ClientConnection, reason: str) -> str:
        self.refused_total += 1
        log.debug("connection refused", extra={"fields": {"client": conn.client_ip, "reason": reason}})
        return reason

    def release(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        self.in_handshake.discard(conn)
        if conn.counted:
            conn.counted = False
            left = self.per_address.get(conn.client_ip, 1) - 1
            if left > 0:
                self.per_address[conn.client_ip] = left
            else:
                self.per_address.pop(conn.client_ip, None)

    async def start(self, host: str, port: int, backlog: int = 4096) -> None:
        """Bind the plain listener, and the TLS one when configured."""
        self.backlog = backlog
        self.server = await self._listen(lambda: ClientConnection(self), host, port, backlog)
        if self.runtime.tls is not None:
            self.tls_server = await self._listen_tls(self.runtime)
        self._started()

    async def start_on(self, sock: socket.socket, tls_sock: socket.socket | None = None,
                       backlog: int = 4096) -> None:
        """Serve listening sockets bound by someone else (a worker's, from the supervisor)."""
        self.backlog = backlog
        self.server = await self.loop.create_server(lambda: ClientConnection(self), sock=sock, backlog=backlog)
        if tls_sock is not None and self.runtime.tls is not None:
            self.tls_server = await self.loop.create_server(
                lambda: ClientConnection(self, tls=True), sock=tls_sock, backlog=backlog,
                ssl=self.runtime.tls.context, ssl_handshake_timeout=self.runtime.settings.client_header_timeout)
            self.runtime.resources.tls_port = tls_sock.getsockname()[1]
        self._started()

    def _started(self) -> None:
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)
        self.runtime.start(self.active_checks)

    async def _listen_tls(self, runtime: ServedRuntime) -> asyncio.AbstractServer:
        host, port = parse_host_port(runtime.config.tls.listen)
        server = await self._listen(lambda: ClientConnection(self, tls=True), host, port, self.backlog,
                                    ssl=runtime.tls.context)  # handshakes bounded by timeouts.client_header
        bound = server.sockets[0].getsockname()[1]
        runtime.resources.tls_port = bound  # for https redirects (port 0 binds a free one)
        log.info("listening tls", extra={"fields": {"address": f"{host}:{bound}"}})
        return server

    async def swap(self, runtime: ServedRuntime) -> None:
        """Serve ``runtime`` from now on (a reload). New requests, on new and on kept-alive
        connections, use it; exchanges under way finish on the runtime they started with.
        A changed listen address is bound before anything changes (a failure raises OSError
        and the old runtime goes on); the old listener then stops accepting, and the
        connections it accepted stay open."""
        old = self.runtime
        plain = tls = None
        if runtime.config.listen != old.config.listen:
            plain = await self._listen(lambda: ClientConnection(self), *runtime.config.listen_addr, self.backlog)
        # A TLS change that keeps tls.listen is applied to the bound listener (binding the
        # same address twice would fail); a new address gets a listener of its own.
        tls_in_place = (runtime.tls is not None and old.tls is not None and self.tls_server is not None
                        and runtime.config.tls.listen == old.config.tls.listen)
        if runtime.tls is not old.tls and runtime.tls is not None and not tls_in_place:
            try:
                tls = await self._listen_tls(runtime)
            except OSError:
                if plain is not None:
                    plain.close()
                raise
        await old.stop()
        self.runtime = runtime
        runtime.start(self.active_checks)
        old.retire(runtime)
        if plain is not None:
            self.server.close()
            self.server = plain
            host, port = plain.sockets[0].getsockname()[:2]
            log.info("listening", extra={"fields": {"address": f"{host}:{port}", "reason": "reload"}})
        if runtime.tls is not old.tls:
            if tls_in_place:
                runtime.tls.adopt(old.tls.context)
                runtime.resources.tls_port = old.resources.tls_port
                log.info("tls settings applied", extra={"fields": {"address": runtime.config.tls.listen}})
            else:
                if self.tls_server is not None:
                    self.tls_server.close()
                self.tls_server = tls

    async def _listen(self, factory, host: str, port: int, backlog: int, ssl=None) -> asyncio.AbstractServer:
        timeout = {"ssl_handshake_timeout": self.runtime.settings.client_header_timeout} if ssl else {}
        server = await self.loop.create_server(factory, host, port, backlog=backlog, reuse_address=True, ssl=ssl,
                                               **timeout)
        for sock in server.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return server

    @property
    def addresses(self) -> list[tuple]:
        return [s.getsockname() for s in self.server.sockets] if self.server else []

    def _sweep(self) -> None:
        now = monotonic()  # the clock the connections' deadlines are read on
        if self.in_handshake:
            for conn in [c for c in self.in_handshake if c.handshake_until < now]:
                self.release(conn)  # its handshake failed or timed out
        for pool in self.runtime.pools.values():
            for conns in pool.connections.values():
                conns.sweep(now)
            pool.refresh(pool.clock())  # ejections that expired, breakers ready to probe
        if self.runtime.tls is not None:
            self.runtime.tls.reload_changed()  # renewed certificates, for new handshakes
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def stop_accepting(self) -> None:
        """Close the listeners (new connections are refused) and stop the sweeper; idempotent."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for listener in (self.server, self.tls_server):
            if listener is not None:
                listener.close()

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, close idle connections, let busy ones finish, then cut."""
        self.stop_accepting()
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
