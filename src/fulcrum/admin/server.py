"""The admin listener: the admin API served by uvicorn on the proxy's own event loop.

One loop, so handlers read and change pools between two proxy callbacks with no
locks. The admin socket is bound here (port 0 works: ``address`` says what was
bound); uvicorn must not touch signals, which belong to the App, nor logging,
which goes through Fulcrum's handler.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn

from fulcrum.admin.api import AdminContext, build_app  # noqa: F401 (AdminContext: for the App)
from fulcrum.admin.auth import Auth
from fulcrum.admin.exposure import check_exposure

log = logging.getLogger("fulcrum.admin")

SHUTDOWN_GRACE = 2.0  # seconds for admin requests under way (a DELETE draining) to finish


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the App owns SIGTERM/SIGINT)."""

    def capture_signals(self):  # type: ignore[override]
        return contextlib.nullcontext()


class AdminServer:
    """Binds the admin listener and serves the admin API until stopped."""

    def __init__(self, ctx: AdminContext, host: str, port: int, token: str | None) -> None:
        check_exposure(host, token)  # the config check says so too; never serve an open API off-host
        self.host, self.port = host, port
        self.app = build_app(ctx, Auth(token, host))
        self.address: tuple[str, int] | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> tuple[str, int]:
        """Bind and start serving; the bound ``(host, port)``."""
        sock = _bind(self.host, self.port)
        self.address = sock.getsockname()[:2]
        route_uvicorn_logs()
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, log_level="warning",
                                access_log=False, ws="none", server_header=False, proxy_headers=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE)
        self._server = _Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]),
                                                            name="admin server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("admin server stopped during start-up")
            await asyncio.sleep(0.005)
        return self.address

    async def stop(self) -> None:
        """Stop accepting, let requests under way finish (briefly), close."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, SHUTDOWN_GRACE + 1.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._server.force_exit = True


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"admin listener {host}:{port}: {exc.strerror}") from None
    return sock


def route_uvicorn_logs() -> None:
    # uvicorn's warnings (malformed requests …) go through Fulcrum's handler, so a
    # JSON log stays all JSON; its info lines (startup banners) are not wanted.
    ours = logging.getLogger("fulcrum")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = list(ours.handlers)
        logger.propagate = False
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
