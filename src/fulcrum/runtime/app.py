"""Assembling and running Fulcrum: load → provision → bind → serve → shut down.

Shutdown is a fixed sequence: stop accepting, close idle keep-alive
connections, let in-flight exchanges finish up to the deadline, cut the rest.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from fulcrum import __version__
from fulcrum.config.model import Config
from fulcrum.config.provision import provision
from fulcrum.proxy.server import ProxyServer

log = logging.getLogger("fulcrum")

SHUTDOWN_TIMEOUT = 30.0


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a hard dependency
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class App:
    """The running proxy: one listener serving one runtime at a time."""

    def __init__(self, config: Config, source: str) -> None:
        self.config = config
        self.source = source
        self.proxy: ProxyServer | None = None
        self._stop = asyncio.Event()
        self._signals = 0

    async def serve(self) -> None:
        log.info("starting", extra={"fields": {"config": self.source, "version": __version__}})
        loop = asyncio.get_running_loop()
        runtime = provision(self.config, self.source, loop)
        self.proxy = ProxyServer(runtime, loop)
        host, port = self.config.listen_addr
        await self.proxy.start(host, port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        pools = {name: len(p.backends) for name, p in runtime.pools.items()}
        log.info("listening", extra={"fields": {
            "address": f"{host}:{self.proxy.addresses[0][1]}", "version": __version__,
            "pools": pools, "loop": type(loop).__module__.split(".")[0],
        }})
        await self._stop.wait()
        log.info("shutting down", extra={"fields": {"open_connections": len(self.proxy.connections)}})
        await self.proxy.shutdown(SHUTDOWN_TIMEOUT)
        log.info("stopped")

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now")
            raise SystemExit(1)
        log.info("signal received", extra={"fields": {"signal": signal.Signals(sig).name}})
        self._stop.set()


def run(config: Config, source: str) -> int:
    _event_loop_policy()
    app = App(config, source)
    asyncio.run(app.serve())
    return 0
