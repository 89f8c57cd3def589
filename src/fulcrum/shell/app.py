"""Assembling and running Fulcrum: load → provision → bind the proxy → serve, and
start the admin listener beside it → shut down.

The admin API's web framework takes about half a second to import, so it is
imported on a worker thread while the proxy already serves; the "admin
listening" line follows the "listening" one.

Reloads (shell/reload.py) come from SIGHUP, the config file changing and the
admin API, one at a time.

Shutdown is a fixed sequence: stop accepting, close idle keep-alive
connections, let in-flight exchanges finish up to ``shutdown_timeout``, cut the
rest; then close the admin listener, which stays up (answering /ready with 503)
so operators can watch the drain.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import signal

from fulcrum import __version__, core
from fulcrum.admin.exposure import InsecureAdminListener, check_exposure
from fulcrum.config.errors import ConfigError
from fulcrum.config.model import Config
from fulcrum.runtime.provision import provision
from fulcrum.observability.metrics import Metrics
from fulcrum.proxy.server import ProxyServer
from fulcrum.runtime import fd_budget
from fulcrum.shell.reload import Reloader, ReloadResult

log = logging.getLogger("fulcrum")

def event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a hard dependency
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class App:
    """The running proxy: one listener serving one runtime at a time, and the admin
    listener beside it on the same loop."""

    def __init__(self, config: Config, source: str) -> None:
        self.config = config
        self.source = source
        self.proxy: ProxyServer | None = None
        self.metrics: Metrics | None = None
        self.admin: AdminStarter | None = None
        self.reloader: Reloader | None = None
        self._stop = asyncio.Event()
        self._signals = 0

    async def serve(self) -> None:
        log.info("starting", extra={"fields": {"config": self.source, "version": __version__}})
        loop = asyncio.get_running_loop()
        fd_budget.start_up(self.config)  # the open-files limit raised, and what cannot fit in it
        fd_budget.FdExhaustionLog.install(loop)
        runtime = provision(self.config, self.source, loop)  # admits what fits the raised limit
        self.proxy = ProxyServer(runtime, loop)
        self.metrics = Metrics(self.proxy)
        self.proxy.request_metrics = self.metrics.requests
        check_exposure(self.config.admin.listen_addr[0], self.config.admin.token)  # before binding
        host, port = self.config.listen_addr
        await self.proxy.start(host, port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.reloader = Reloader(self.proxy, self.source, on_result=self._reloaded)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reloader.reload("SIGHUP")))
        if self.config.watch_config:
            self.reloader.watch()
        pools = {name: len(p.backends) for name, p in runtime.pools.items()}
        log.info("listening", extra={"fields": {
            "address": f"{host}:{self.proxy.addresses[0][1]}", "version": __version__, "core": core.kind,
            "pools": pools, "loop": type(loop).__module__.split(".")[0],
        }})
        self.admin = AdminStarter(self.config, self._admin_context, self._stop)
        admin_started = loop.create_task(self.admin.start(loop), name="admin start")
        await self._stop.wait()
        log.info("shutting down", extra={"fields": {"open_connections": len(self.proxy.connections)}})
        self.proxy.stop_accepting()  # first: stopping the file watcher may take a moment
        await self.reloader.stop()
        await self.proxy.shutdown(self.proxy.runtime.config.shutdown_timeout)
        await self.admin.stop(admin_started)
        log.info("stopped")

    def _admin_context(self, server):
        return server.AdminContext(self.proxy, self.metrics, stopping=self._stop.is_set, reload=self._api_reload)

    def _reloaded(self, result: ReloadResult) -> None:
        if result.ok:
            self.config = self.proxy.runtime.config
        if result.trigger != "admin API":  # the API counts its own, with its answer
            self.metrics.record_reload(result.ok)

    async def _api_reload(self) -> str:
        """POST /api/v1/reload: the admin API's reload; ConfigError says what is wrong."""
        result = await self.reloader.reload("admin API")
        if not result.ok:
            raise ConfigError(result.problems)
        return f"configuration version {result.version} is serving"

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now")
            raise SystemExit(1)
        log.info("signal received", extra={"fields": {"signal": signal.Signals(sig).name}})
        self._stop.set()


class AdminStarter:
    """Starts the admin listener beside the serving proxy (a signal during its start-up must
    not wait for it before the proxy stops accepting) and stops it after the proxy.

    The admin API's web framework is imported on a worker thread; ``make_context(module)``
    builds the AdminContext from the imported ``fulcrum.admin.server``. If the listener
    cannot start, ``stop_event`` is set (so the proxy stops) and ``stop`` raises why."""

    def __init__(self, config: Config, make_context, stop_event: asyncio.Event) -> None:
        self.config = config
        self.make_context = make_context
        self.stop_event = stop_event
        self.server = None  # fulcrum.admin.server.AdminServer, once imported

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            module = await loop.run_in_executor(None, importlib.import_module, "fulcrum.admin.server")
            host, port = self.config.admin.listen_addr
            self.server = module.AdminServer(self.make_context(module), host, port, self.config.admin.token)
            host, port = await self.server.start()
        except BaseException:
            self.stop_event.set()  # serve() stops the proxy, then raises what went wrong
            raise
        log.info("admin listening", extra={"fields": {"address": host_port(host, port)}})

    async def stop(self, started: asyncio.Task) -> None:
        await asyncio.wait([started])
        if self.server is not None:
            await self.server.stop()
        if not started.cancelled() and started.exception() is not None:
            raise started.exception()  # the admin listener could not start: so Fulcrum cannot


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(config: Config, source: str) -> int:
    event_loop_policy()
    app = App(config, source)
    try:
        asyncio.run(app.serve())
    except InsecureAdminListener as exc:
        log.error("cannot start", extra={"fields": {"error": str(exc)}})
        return 2
    return 0
