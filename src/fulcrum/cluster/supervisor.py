"""The supervisor of a multi-process Fulcrum (``workers: N`` with N > 1): the control plane.

It owns what must be one for the whole instance — the config and its reloads, the active
health checks, the admin API, the listening sockets and the shared-memory directory — and
N worker processes (cluster/worker.py) that serve the traffic. See docs/architecture.md.

* Start: bind one SO_REUSEPORT socket per worker (cluster/sockets.py), provision its own
  runtime (health checks run here; it proxies nothing), spawn the workers and send each
  the config text and the current membership; serve once all answered.
* Health and admin changes: the whole membership of the pool concerned is pushed to every
  worker (cluster/sync.py); an admin change is answered after every worker applied it.
* Reload: read the file once, validate and provision it here, then send the same text to
  every worker; a worker that fails to apply it is replaced (and starts on the new text).
* A worker that exits is replaced on the same socket, with a log line; one that dies
  within seconds of starting is restarted after a growing delay (at most 10 s). One that
  cannot start leaves the listening group until it serves (cluster/sockets.py).
* Shared memory: one directory, removed by others only once its lock is free (shared_dir.py).
* Shutdown: SIGTERM to every worker (each drains as a single Fulcrum does), wait up to
  ``shutdown_timeout``, kill what is left, stop the admin listener, remove the shared state.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import signal
import socket
import sys
import time

from fulcrum import __version__, core
from fulcrum.admin.exposure import check_exposure
from fulcrum.cluster import shared_dir, sync
from fulcrum.cluster.channel import Channel, ChannelClosed
from fulcrum.cluster.merge import MetricsAggregate
from fulcrum.cluster.sockets import bind_group, bind_member
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_config, read_text
from fulcrum.config.model import Config, parse_host_port
from fulcrum.runtime.provision import provision
from fulcrum.observability.metrics import Metrics
from fulcrum.runtime import fd_budget
from fulcrum.shell.app import AdminStarter, host_port
from fulcrum.shell.reload import Reloader, ReloadResult

log = logging.getLogger("fulcrum.cluster")

START_TIMEOUT = 30.0     # a worker's start-up (imports, provisioning) before it is given up on
REQUEST_TIMEOUT = 10.0   # a sync or reload on one worker
SNAPSHOT_TIMEOUT = 2.0   # a worker's metrics and status for the admin API
KILL_GRACE = 5.0         # after shutdown_timeout, before SIGKILL
FAST_EXIT = 5.0          # a worker dying this soon after starting is restarted with a delay
MAX_RESTART_DELAY = 10.0


class WorkerSlot:
    """One worker position: its sockets (for every process that fills it, or None while it
    cannot start) and its current process."""

    __slots__ = ("index", "listen", "tls", "process", "channel", "pid", "state", "restarts",
                 "started_at", "fast_exits", "watcher")

    def __init__(self, index: int, listen: socket.socket | None, tls: socket.socket | None) -> None:
        self.index = index
        self.listen, self.tls = listen, tls
        self.process: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None
        self.pid: int | None = None
        self.state = "starting"   # starting | serving | restarting | stopped
        self.restarts = 0
        self.started_at = 0.0
        self.fast_exits = 0
        self.watcher: asyncio.Task | None = None

    @property
    def serving(self) -> bool:
        return self.state == "serving" and self.channel is not None and not self.channel.closed

    def row(self) -> dict:
        return {"index": self.index, "pid": self.pid, "state": self.state, "restarts": self.restarts,
                "uptime": time.monotonic() - self.started_at if self.state == "serving" else 0.0}


class ControlPlane:
    """The supervisor's runtime, in the shape the admin API, metrics and Reloader read from a
    ProxyServer: it serves no client, so its connection and tunnel counts stay 0."""

    def __init__(self, runtime, supervisor: Supervisor) -> None:
        self.runtime = runtime
        self.supervisor = supervisor
        self.connections: set = set()
        self.refused_total = self.tunnels_opened = self.tunnels_closed = 0
        self.watch_health(runtime)

    def watch_health(self, runtime) -> None:
        """Every health transition of ``runtime``'s checks is pushed to the workers at once;
        passing checks, which lift the workers' ejections, shortly after (cluster/sync.py)."""
        for pool in runtime.pools.values():
            if pool.checker is not None:
                pool.checker.on_change = functools.partial(self._health_changed, pool)
                pool.checker.on_pass = functools.partial(self._check_passed, pool)

    def _health_changed(self, pool, backend, transition) -> None:
        pool.health_changed(backend, transition)
        self.supervisor.push_soon(pool.name)

    def _check_passed(self, pool, backend) -> None:
        self.supervisor.push_soon(pool.name, delay=sync.pass_push_delay(pool))

    @staticmethod
    def start(runtime) -> None:
        """Start the health checks only: the filters' log writers have nothing to write here."""
        for pool in runtime.pools.values():
            pool.start()

    async def swap(self, runtime) -> None:
        old = self.runtime
        await old.stop()
        self.runtime = runtime
        self.watch_health(runtime)
        self.start(runtime)
        old.retire(runtime)


class ClusterReloader(Reloader):
    """Reloads validate and provision here first, then go to every worker with the same text."""

    def __init__(self, supervisor: Supervisor, **kwargs) -> None:
        super().__init__(supervisor.control, supervisor.source, **kwargs)
        self.supervisor = supervisor

    def refused(self, old: Config, new: Config) -> list[str]:
        # The workers serve sockets the supervisor bound at start; new ones need a restart.
        problems = []
        for key, value in (("listen", lambda c: c.listen), ("tls.listen", lambda c: c.tls and c.tls.listen),
                           ("workers", lambda c: c.worker_count)):
            if value(new) != value(old):
                problems.append(f"{self.source}: {key}: changing it needs a restart when workers > 1 "
                                f"(running with {value(old)!r})")
        return problems

    async def apply(self, runtime, text: str) -> None:
        await self.supervisor.control.swap(runtime)
        self.supervisor.text = text
        await self.supervisor.reload_workers(text)


class Supervisor:
    """Starts, feeds, watches and stops the workers; serves the admin API."""

    def __init__(self, config: Config, source: str) -> None:
        self.config = config
        self.source = source
        self.count = config.worker_count
        self.text = ""
        self.slots: list[WorkerSlot] = []
        self.control: ControlPlane | None = None
        self.metrics: Metrics | None = None
        self.aggregate = MetricsAggregate()
        self.shared: str | None = None
        self.addresses: dict[str, tuple] = {}  # "listen"/"tls" -> (family, address) of the group
        self.reloader: ClusterReloader | None = None
        self.restarts_total = 0
        self.processes: set[asyncio.subprocess.Process] = set()  # every live worker, replaced ones too
        self._delayed_pushes: dict[str, asyncio.TimerHandle] = {}  # pool name -> its gathered push
        self.stopping = False
        self._stop = asyncio.Event()
        self._signals = 0

    # -- start ---------------------------------------------------------------------------
    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        log.info("starting", extra={"fields": {"config": self.source, "version": __version__, "core": core.kind,
                                               "workers": self.count}})
        self.text = read_text(self.source)
        self.config = load_config(self.source, text=self.text)  # what the workers will read
        check_exposure(self.config.admin.listen_addr[0], self.config.admin.token)
        fd_budget.start_up(self.config)  # the open-files limit raised: the workers inherit it
        fd_budget.FdExhaustionLog.install(loop)
        root = shared_dir.shared_root()
        for path in shared_dir.remove_stale(root):
            log.info("removed a killed instance's shared state", extra={"fields": {"path": path}})
        self.shared, lock = shared_dir.create(root)
        try:
            await self._serve(loop)
        finally:
            for slot in self.slots:
                self._close_sockets(slot)
            shutil.rmtree(self.shared, ignore_errors=True)
            os.close(lock)  # after the removal: no cleaner may race it

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self.slots = self._bind()
        self.control = ControlPlane(provision(self.config, self.source, loop), self)
        self.metrics = Metrics(self.control)
        self.metrics.registry.register(_WorkersCollector(self))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        started = await asyncio.gather(*(self._start(slot) for slot in self.slots), return_exceptions=True)
        failed = [exc for exc in started if isinstance(exc, BaseException)]
        if failed:
            await self._stop_workers(0.0)
            raise RuntimeError(f"a worker could not start: {failed[0]}")
        self.control.start(self.control.runtime)  # health checks, once every worker hears their results
        self.reloader = ClusterReloader(self, on_result=self._reloaded)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reloader.reload("SIGHUP")))
        if self.config.watch_config:
            self.reloader.watch()
        host, _ = self.config.listen_addr
        log.info("listening", extra={"fields": {
            "address": host_port(host, self.slots[0].listen.getsockname()[1]), "version": __version__, "core": core.kind,
            "workers": self.count, "pools": {n: len(p.backends) for n, p in self.control.runtime.pools.items()},
        }})
        if self.slots[0].tls is not None:
            log.info("listening tls", extra={"fields": {
                "address": host_port(parse_host_port(self.config.tls.listen)[0],
                                     self.slots[0].tls.getsockname()[1])}})
        admin = AdminStarter(self.config, self._admin_context, self._stop)
        admin_started = loop.create_task(admin.start(loop), name="admin start")
        await self._stop.wait()
        log.info("shutting down", extra={"fields": {"workers": sum(s.serving for s in self.slots)}})
        self.stopping = True
        await self.reloader.stop()
        await self.control.runtime.stop()
        await self._stop_workers(self.config.shutdown_timeout)
        await admin.stop(admin_started)
        log.info("stopped")

    def _bind(self) -> list[WorkerSlot]:
        host, port = self.config.listen_addr
        listen = bind_group(host, port, self.count)
        tls: list = [None] * self.count
        if self.config.tls is not None:
            try:
                tls = bind_group(*parse_host_port(self.config.tls.listen), self.count)
            except OSError:
                for sock in listen:
                    sock.close()
                raise
        self.addresses["listen"] = (listen[0].family, listen[0].getsockname())
        if tls[0] is not None:
            self.addresses["tls"] = (tls[0].family, tls[0].getsockname())
        return [WorkerSlot(i, listen[i], tls[i]) for i in range(self.count)]

    def _close_sockets(self, slot: WorkerSlot) -> None:
        """Close the supervisor's copies of the slot's sockets: once no worker holds them
        either, they leave the listening group and connections queued on them are reset."""
        for sock in (slot.listen, slot.tls):
            if sock is not None:
                sock.close()
        slot.listen = slot.tls = None

    def _rejoin(self, slot: WorkerSlot) -> None:
        """New sockets for a withdrawn slot, bound but not listening: the worker's listen()
        puts them in the group once it serves, so a failed try strands no connection."""
        if slot.listen is None:
            slot.listen = bind_member(*self.addresses["listen"])
        if slot.tls is None and "tls" in self.addresses:
            try:
                slot.tls = bind_member(*self.addresses["tls"])
            except OSError:
                self._close_sockets(slot)
                raise

    def _admin_context(self, server_module):
        from fulcrum.cluster.admin import ClusterAdminContext

        return ClusterAdminContext(self, self.metrics, stopping=self._stop.is_set, reload=self._api_reload)

    async def _start(self, slot: WorkerSlot) -> None:
        """Spawn a process for ``slot`` and wait until it serves."""
        slot.state = "starting"
        slot.process = None  # the slot's previous process, if any, is gone or draining
        self._rejoin(slot)
        parent, child = socket.socketpair()
        fds = [child.fileno(), slot.listen.fileno()] + ([slot.tls.fileno()] if slot.tls is not None else [])
        argv = [sys.executable, "-m", "fulcrum.cluster.worker", "--index", str(slot.index),
                "--config", self.source, "--control-fd", str(fds[0]), "--listen-fd", str(fds[1]),
                "--shared", self.shared]
        if slot.tls is not None:
            argv += ["--tls-fd", str(fds[2])]
        try:
            # Its own session: a Ctrl-C in the terminal reaches the supervisor only, which
            # then stops the workers once (a second signal to a worker would cut it short).
            process = await asyncio.create_subprocess_exec(*argv, pass_fds=fds, start_new_session=True)
            _, channel = await asyncio.get_running_loop().create_unix_connection(Channel, sock=parent)
        finally:
            child.close()
        self.processes.add(process)
        slot.process, slot.channel, slot.pid = process, channel, process.pid
        slot.started_at = time.monotonic()
        slot.watcher = asyncio.get_running_loop().create_task(self._watch(slot, process, channel),
                                                              name=f"worker {slot.index}")
        await channel.request("start", START_TIMEOUT, text=self.text, pools=sync.membership(self.control.runtime))
        slot.state = "serving"
        # Pushes while it started skipped it (it was not serving yet): catch up once.
        await channel.request("sync", REQUEST_TIMEOUT, pools=sync.membership(self.control.runtime))
        log.info("worker started", extra={"fields": {"worker": slot.index, "pid": slot.pid}})

    # -- supervision -----------------------------------------------------------------------
    async def _watch(self, slot: WorkerSlot, process: asyncio.subprocess.Process, channel: Channel) -> None:
        code = await process.wait()
        channel.close()
        self.processes.discard(process)
        if self.stopping or slot.process is not process:
            return  # shutting down, or a process replaced on purpose (already counted)
        lived = time.monotonic() - slot.started_at
        slot.fast_exits = slot.fast_exits + 1 if lived < FAST_EXIT else 0
        delay = _restart_delay(slot.fast_exits)
        served = slot.state == "serving"
        slot.state = "restarting"
        slot.restarts += 1
        self.restarts_total += 1
        self.aggregate.retire(slot.index)
        log.warning("worker exited; starting a replacement", extra={"fields": {
            "worker": slot.index, "pid": process.pid, "exit": _exit_reason(code),
            "uptime": round(lived, 3), "restart_in": delay}})
        if not served:
            self._withdraw(slot)
        await asyncio.sleep(delay)
        await self._restart(slot)

    async def _restart(self, slot: WorkerSlot) -> None:
        while not self.stopping:
            try:
                await self._start(slot)
                return
            except Exception as exc:
                log.error("worker failed to start", extra={"fields": {"worker": slot.index, "error": str(exc)}})
            if slot.process is not None:  # it is watched like any other: its exit starts the next try
                if slot.process.returncode is None:
                    slot.process.kill()
                return
            # Nothing was spawned (no sockets, no process), so no exit will start the next try.
            self._withdraw(slot)
            slot.fast_exits += 1
            await asyncio.sleep(_restart_delay(slot.fast_exits))

    def _withdraw(self, slot: WorkerSlot) -> None:
        """The slot's worker cannot start: no connection may wait for it in its socket queue."""
        if slot.listen is None and slot.tls is None:
            return
        self._close_sockets(slot)
        log.warning("worker cannot start; its sockets left the listening group until it serves",
                    extra={"fields": {"worker": slot.index}})

    async def _stop_workers(self, timeout: float) -> None:
        """SIGTERM to every worker process (replaced ones still draining too), wait, kill the late."""
        self.stopping = True
        running = [p for p in self.processes if p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(p.wait()) for p in running]
        if waits:
            _, late = await asyncio.wait(waits, timeout=timeout + KILL_GRACE)
            for process in running:
                if process.returncode is None:
                    log.warning("worker did not stop in time; killed", extra={"fields": {"pid": process.pid}})
                    process.kill()
            if late:
                await asyncio.wait(late)
        for slot in self.slots:
            slot.state = "stopped"

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now")
            for process in self.processes:
                if process.returncode is None:
                    process.kill()
            raise SystemExit(1)
        log.info("signal received", extra={"fields": {"signal": signal.Signals(sig).name}})
        self._stop.set()

    # -- telling the workers -----------------------------------------------------------------
    async def broadcast(self, op: str, timeout: float = REQUEST_TIMEOUT, **fields) -> list[tuple[WorkerSlot, object]]:
        """Send a request to every serving worker; ``(slot, answer or exception)`` for each."""
        slots = [s for s in self.slots if s.serving]
        answers = await asyncio.gather(*(s.channel.request(op, timeout, **fields) for s in slots),
                                       return_exceptions=True)
        return list(zip(slots, answers))

    async def push(self, pool_name: str | None = None) -> None:
        """Send the membership (of one pool, or all) to every serving worker and wait until
        applied. A worker starting meanwhile gets the whole state once it serves."""
        pools = sync.membership(self.control.runtime, pool_name)
        for slot, answer in await self.broadcast("sync", pools=pools):
            if isinstance(answer, BaseException) and not isinstance(answer, ChannelClosed):
                log.error("worker did not apply a membership change; replacing it", extra={"fields": {
                    "worker": slot.index, "error": str(answer) or type(answer).__name__}})
                self._replace(slot)

    def push_soon(self, pool_name: str, delay: float = 0.0) -> None:
        """Push the pool at once, or after ``delay`` s, together with every other delayed push
        of that pool asked for meanwhile (one message carries the whole state)."""
        loop = asyncio.get_running_loop()
        if not delay:
            loop.create_task(self.push(pool_name), name=f"push {pool_name}")
        elif pool_name not in self._delayed_pushes:
            self._delayed_pushes[pool_name] = loop.call_later(delay, self._push_delayed, pool_name)

    def _push_delayed(self, pool_name: str) -> None:
        del self._delayed_pushes[pool_name]
        self.push_soon(pool_name)

    async def reload_workers(self, text: str) -> None:
        for slot, answer in await self.broadcast("reload", text=text):
            if isinstance(answer, BaseException) and not isinstance(answer, ChannelClosed):
                log.error("worker failed to apply the reload; replacing it", extra={"fields": {
                    "worker": slot.index, "error": str(answer) or type(answer).__name__}})
                self._replace(slot)
        await self.push()  # admin changes and health the new runtimes carried or rebuilt

    def _replace(self, slot: WorkerSlot) -> None:
        """Drain the slot's process and start its replacement (on the current text) at once, on
        the same socket: the old one stops accepting, the new one takes the queue."""
        old, slot.process = slot.process, None  # its watcher sees it is no longer the slot's
        slot.state = "restarting"
        slot.restarts += 1
        self.restarts_total += 1
        self.aggregate.retire(slot.index)
        if old is not None and old.returncode is None:
            old.send_signal(signal.SIGTERM)
        asyncio.get_running_loop().create_task(self._restart(slot), name=f"replace worker {slot.index}")

    async def snapshots(self, metrics: bool = False, status: bool = True) -> list[tuple[WorkerSlot, dict]]:
        """Every serving worker's status and/or metrics text (the aggregate keeps the metrics)."""
        out = []
        for slot, answer in await self.broadcast("snapshot", SNAPSHOT_TIMEOUT, metrics=metrics, status=status):
            if isinstance(answer, dict):
                if metrics:  # a late answer of a process already retired is dropped there
                    self.aggregate.update(slot.index, answer["metrics"])
                out.append((slot, answer))
        return out

    async def in_flight(self, pool_name: str, backend_id: str) -> int:
        total = 0
        for _, answer in await self.broadcast("in_flight", SNAPSHOT_TIMEOUT, pool=pool_name, backend=backend_id):
            if isinstance(answer, dict):
                total += answer["in_flight"]
        return total

    # -- reload ------------------------------------------------------------------------------
    def _reloaded(self, result: ReloadResult) -> None:
        if result.ok:
            self.config = self.control.runtime.config
        if result.trigger != "admin API":
            self.metrics.record_reload(result.ok)

    async def _api_reload(self) -> str:
        result = await self.reloader.reload("admin API")
        if not result.ok:
            raise ConfigError(result.problems)
        return f"configuration version {result.version} is serving on {sum(s.serving for s in self.slots)} workers"


class _WorkersCollector:
    """``fulcrum_workers`` (serving now) and ``fulcrum_worker_restarts_total``."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily("fulcrum_workers", "Worker processes serving now.",
                                value=sum(s.serving for s in self.supervisor.slots))
        yield CounterMetricFamily("fulcrum_worker_restarts", "Worker processes replaced after they exited.",
                                  value=self.supervisor.restarts_total)


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _restart_delay(fast_exits: int) -> float:
    """Seconds before the next try of a slot whose processes died this many times in a row
    within FAST_EXIT of starting: 0, then 0.5, 1, 2 … up to MAX_RESTART_DELAY."""
    return min(MAX_RESTART_DELAY, 0.5 * 2 ** (fast_exits - 1)) if fast_exits else 0.0


def run(config: Config, source: str) -> int:
    from fulcrum.admin.exposure import InsecureAdminListener
    from fulcrum.shell.app import event_loop_policy

    event_loop_policy()
    try:
        asyncio.run(Supervisor(config, source).serve())
    except InsecureAdminListener as exc:
        log.error("cannot start", extra={"fields": {"error": str(exc)}})
        return 2
    except ConfigError as exc:
        for line in exc.problems:
            log.error("invalid configuration", extra={"fields": {"problem": line}})
        return 2
    return 0
