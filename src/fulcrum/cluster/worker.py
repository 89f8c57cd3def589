"""A data-plane worker: ``python -m fulcrum.cluster.worker``, started by the supervisor only.

It serves the listening sockets the supervisor bound and handed over (the same ports in
every worker, SO_REUSEPORT), with the proxy of the single-process mode, and takes orders
on its control channel, one at a time:

* ``start``: the config text to serve; answered once the proxy serves (the "ready").
* ``reload``: a new config text, already validated by the supervisor.
* ``sync``: pool membership and health, as the supervisor's checks and admin API have them.
* ``snapshot``: this worker's metrics (Prometheus text) and status, for the admin API.
* ``in_flight``: its requests to one backend (the admin API drains before removing).

It runs no active health checks and no admin listener. SIGTERM, or the supervisor going
away (the channel closes), shuts it down gracefully, as a single Fulcrum would. It holds the
lock of the instance's shared directory for its life (cluster/shared_dir.py), and listens on
a socket handed over only bound (a retry after a failed start) once it serves.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time

from fulcrum.admin.status import status
from fulcrum.cluster import shared_dir, sync
from fulcrum.cluster.channel import Channel
from fulcrum.config.load import load_config
from fulcrum.runtime.provision import provision
from fulcrum.filters.resources import Resources
from fulcrum.observability.logging import setup_logging
from fulcrum.observability.metrics import Metrics
from fulcrum.proxy.server import ProxyServer
from fulcrum.shell.reload import Reloader

log = logging.getLogger("fulcrum.cluster")


class Worker:
    """One worker process: its proxy, metrics and the supervisor's channel."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.index = args.index
        self.proxy: ProxyServer | None = None
        self.metrics: Metrics | None = None
        self.reloader: Reloader | None = None
        self.channel: Channel | None = None
        self.started_at = time.time()
        self.shared_lock: int | None = None  # held for life: the shared directory stays while we run
        self._stop = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # reloads come from the supervisor
        control = socket.socket(fileno=self.args.control_fd)
        _, self.channel = await loop.create_unix_connection(
            lambda: Channel(self._handle, on_close=self._stop.set), sock=control)
        await self._stop.wait()
        if self.proxy is not None:
            log.info("worker stopping", extra={"fields": {"open_connections": len(self.proxy.connections)}})
            await self.proxy.shutdown(self.proxy.runtime.config.shutdown_timeout)
        self.channel.close()

    async def _handle(self, request: dict) -> dict:
        op = request["op"]
        if op == "snapshot":
            return self._snapshot(request.get("metrics", True), request.get("status", True))
        if op == "in_flight":
            pool = self.proxy.runtime.pools.get(request["pool"])
            backends = [b for b in pool.backends if b.id == request["backend"]] if pool is not None else []
            return {"in_flight": sum(b.in_flight for b in backends)}
        if op == "sync":
            sync.apply(self.proxy.runtime, request["pools"])
            return {}
        if op == "reload":
            result = await self.reloader.reload("supervisor", text=request["text"])
            if not result.ok:
                raise RuntimeError("; ".join(result.problems))
            return {}
        if op == "start":
            await self._start(request["text"], request["pools"])
            return {"pid": os.getpid()}
        raise ValueError(f"unknown control request {op!r}")

    async def _start(self, text: str, pools: dict) -> None:
        loop = asyncio.get_running_loop()
        source = self.args.config
        config = load_config(source, text=text)
        fields = {"worker": self.index}
        setup_logging(config.log.format, config.log.level, stream=sys.stdout, levels=config.log.levels,
                      fields=fields)
        if self.shared_lock is None:
            self.shared_lock = shared_dir.hold(self.args.shared)
        runtime = provision(config, source, loop, resources=Resources(shared_dir=self.args.shared))
        sync.apply(runtime, pools)  # the supervisor's health and admin changes, before the first request
        self.proxy = ProxyServer(runtime, loop)
        self.proxy.active_checks = False
        self.metrics = Metrics(self.proxy)
        self.proxy.request_metrics = self.metrics.requests
        listen = _inherited(self.args.listen_fd)
        tls = _inherited(self.args.tls_fd) if self.args.tls_fd is not None else None
        await self.proxy.start_on(listen, tls)
        self.reloader = Reloader(self.proxy, source)
        self.reloader.log_fields = fields
        self.reloader.restart_keys = ()  # the supervisor says which settings need a restart
        log.info("worker serving", extra={"fields": {"pid": os.getpid()}})

    def _snapshot(self, metrics: bool, state: bool) -> dict:
        from prometheus_client import generate_latest

        proxy = self.proxy
        answer: dict = {}
        if metrics:
            answer["metrics"] = generate_latest(self.metrics.registry).decode()
        if state:
            answer["status"] = status(proxy.runtime, self.metrics.requests, len(proxy.connections), self.started_at)
        return answer


def _inherited(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fulcrum.cluster.worker",
                                     description="A Fulcrum worker process (started by the supervisor).")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--config", required=True, help="the config file's path (for messages)")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--tls-fd", type=int)
    parser.add_argument("--shared", required=True, help="directory of the state shared by the workers")
    return parser


def main(argv: list[str] | None = None) -> int:
    from fulcrum.shell.app import event_loop_policy

    args = _parser().parse_args(argv)
    setup_logging(stream=sys.stdout, fields={"worker": args.index})
    event_loop_policy()
    try:
        asyncio.run(Worker(args).serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
