"""Hot reload: read the config file again, validate and provision it completely, and only
then swap it in — in-process, atomically, without dropping a connection.

Triggers: a change to the config file (watchfiles), SIGHUP, or ``POST /api/v1/reload``.
Reloads run one at a time. If anything is wrong (YAML, validation, provisioning, binding a
changed listen address) the running config stays and the problems are logged and returned.
A changed file is read only once it has stayed the same (size, mtime and content) for
``SETTLE_INTERVAL``: a file still being written is never applied, even when its first part
happens to parse. Writers should still replace it atomically (write a temporary file, then
rename it over the config).

What carries over (runtime/provision.py): backends that stay keep their pooled connections,
in-flight counts, latency, health and breaker state; unchanged filters keep their state
(rate-limit buckets). In-flight exchanges and open tunnels finish on what they started with.
Removed backends drain: their exchanges finish, their idle connections close. Log settings
apply at once; ``admin`` and ``watch_config`` need a restart (a reload says so in the log).
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_config, read_text
from fulcrum.runtime.provision import provision
from fulcrum.observability.logging import setup_logging

if TYPE_CHECKING:
    from fulcrum.proxy.server import ProxyServer

log = logging.getLogger("fulcrum.reload")

SETTLE_INTERVAL = 0.25  # seconds a changed config file must stay unchanged before it is read


@dataclass
class ReloadResult:
    """What a reload did: ``ok``, the config version now serving, and problems when not ok."""

    ok: bool
    version: int
    problems: list[str] = field(default_factory=list)
    trigger: str = ""


class Reloader:
    """Reloads ``source`` into ``proxy``; ``on_result`` hears of every attempt (metrics)."""

    def __init__(self, proxy: "ProxyServer", source: str,
                 on_result: Callable[[ReloadResult], None] | None = None) -> None:
        self.proxy = proxy
        self.source = source
        self.on_result = on_result
        self.version = 1
        self.applied_text: str | None = None  # the text of the last successful reload
        self.log_fields: dict | None = None  # added to every log line (a worker's index)
        self.restart_keys: tuple[str, ...] = ("admin", "watch_config")  # a change is only logged
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def reload(self, trigger: str, text: str | None = None) -> ReloadResult:
        """Reload the config file (or ``text``, its content as the supervisor read it)."""
        async with self._lock:
            try:
                result = await self._reload(trigger, text)
            except Exception as exc:  # a bug: the running config stays, and it is said once
                log.exception("config reload failed: internal error", extra={"fields": {"trigger": trigger}})
                result = ReloadResult(False, self.version, [f"internal error: {exc!r}"], trigger)
        if self.on_result is not None:
            self.on_result(result)
        return result

    async def _reload(self, trigger: str, text: str | None) -> ReloadResult:
        loop = asyncio.get_running_loop()
        old_config = self.proxy.runtime.config
        try:
            text = read_text(self.source) if text is None else text
            config = load_config(self.source, text=text)
            refused = self.refused(old_config, config)
            if refused:
                raise ConfigError(refused)
            # A dry run first: every problem is found while nothing shared has been touched.
            provision(config, self.source, loop)
            runtime = provision(config, self.source, loop, previous=self.proxy.runtime)
            await self.apply(runtime, text)
        except ConfigError as exc:
            return self._failed(trigger, exc.problems)
        except OSError as exc:  # a changed listen address that cannot be bound
            return self._failed(trigger, [f"{self.source}: listen: cannot bind: {exc.strerror or exc}"])
        self.version += 1
        self.applied_text = text
        self._apply_process_settings(old_config, config)
        log.info("config reloaded", extra={"fields": {
            "trigger": trigger, "version": self.version, "pools": list(runtime.pools),
            "routes": len(runtime.config.routes)}})
        return ReloadResult(True, self.version, trigger=trigger)

    def refused(self, old, new) -> list[str]:
        """Changes this process cannot make without a restart, as problems (none here)."""
        return []

    async def apply(self, runtime, text: str) -> None:
        """Put the provisioned ``runtime`` in service (the supervisor's also tells its workers)."""
        await self.proxy.swap(runtime)

    def _apply_process_settings(self, old, new) -> None:
        """Log settings apply at once; the admin listener and the watcher stay as started."""
        if new.log != old.log:
            setup_logging(new.log.format, new.log.level, stream=sys.stdout, levels=new.log.levels,
                          fields=self.log_fields)
            # The admin server's warnings follow the new handler (an admin server still being
            # imported routes them itself when it starts).
            route = getattr(sys.modules.get("fulcrum.admin.server"), "route_uvicorn_logs", None)
            if route is not None:
                route()
        kept = [key for key in self.restart_keys if getattr(new, key) != getattr(old, key)]
        if kept:
            log.warning("these settings take effect at the next restart", extra={"fields": {"keys": kept}})

    def _failed(self, trigger: str, problems: list[str]) -> ReloadResult:
        log.error("config reload failed; the running config stays", extra={"fields": {
            "trigger": trigger, "version": self.version, "problems": problems}})
        return ReloadResult(False, self.version, problems, trigger)

    # -- the file watcher ----------------------------------------------------------------
    def watch(self, debounce_ms: int = 300, settle: float = SETTLE_INTERVAL) -> None:
        """Reload when the config file changes and has settled (editors often replace it: its
        directory is watched)."""
        self._watcher = asyncio.get_running_loop().create_task(self._watch(debounce_ms, settle),
                                                               name="config watcher")

    async def _watch(self, debounce_ms: int, settle: float) -> None:
        from watchfiles import awatch

        path = Path(self.source).resolve()

        def ours(change, changed: str) -> bool:
            return Path(changed).resolve() == path

        async for _ in awatch(path.parent, watch_filter=ours, debounce=debounce_ms, stop_event=self._stop,
                              recursive=False):
            # The path as configured, not as resolved at start: a symlink may point elsewhere now.
            text = await settled(Path(self.source), settle)
            if text is not None and text == self.applied_text:
                # Changes seen while it settled, already applied (a failed reload is retried).
                log.debug("config file unchanged since the last reload", extra={"fields": {"path": self.source}})
                continue
            await self.reload("file changed", text=text)

    async def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.cancel()
            # wait() neither raises the watcher's own end nor swallows our caller's
            # cancellation (a second signal must still stop the app at once).
            await asyncio.wait([self._watcher])
            self._watcher = None


def _state(path: Path) -> tuple | None:
    """What says whether ``path`` changed: size, mtime and content (None while it is missing)."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            return info.st_size, info.st_mtime_ns, f.read()
    except OSError:
        return None


async def settled(path: Path, interval: float) -> str | None:
    """The text of ``path`` once it has stayed the same for ``interval`` seconds; None when it
    stayed missing or is not UTF-8 (the reload then reads it itself and says why it cannot).
    A writer that pauses for less than ``interval`` is waited for."""
    seen = _state(path)
    log.debug("config file changed; waiting until it settles", extra={"fields": {"path": str(path)}})
    while True:
        await asyncio.sleep(interval)
        now = _state(path)
        if now == seen:
            try:
                return None if now is None else now[2].decode("utf-8")
            except UnicodeDecodeError:
                return None
        seen = now
