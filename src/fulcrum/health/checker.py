# Active health checks on the running loop: one task per backend sends GET <path> on a fresh
# connection every interval ± jitter. A check never raises: every error is a failed result.
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Callable, Sequence

import httptools

from fulcrum.balancing.backend import Backend
from fulcrum.health.probe import (
    CONNECT, DEFAULT_EXPECT_STATUS, RESPONSE, CheckFailed, StatusRange, check_status_range,
    describe_error, evaluate, parse_status_range,
)
from fulcrum.health.state import HealthState, Transition

log = logging.getLogger("fulcrum.health")

MAX_HEAD = 64 * 1024  # response status line + headers; beyond it the check fails
MAX_BODY = 64 * 1024  # body bytes kept for expect_body; reading stops there
READ_SIZE = 64 * 1024
USER_AGENT = "fulcrum-health-check"

OnChange = Callable[[Backend, Transition], None]
# A check of the backend passed and it is healthy (so passive ejections may be lifted).
OnPass = Callable[[Backend], None]


def first_delay(interval: float, jitter: float, rng: random.Random) -> float:
    """Delay before a backend's first check: at once, spread over ``jitter × interval``."""
    return rng.uniform(0.0, jitter * interval)


def next_delay(interval: float, jitter: float, rng: random.Random) -> float:
    """Time from one check's start to the next: ``interval`` ± ``jitter`` (a fraction)."""
    return interval * (1.0 + rng.uniform(-jitter, jitter))


def request_bytes(backend: Backend, path: str) -> bytes:
    """The check request: its own connection, closed after one response."""
    host = f"[{backend.host}]" if ":" in backend.host else backend.host
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{backend.port}\r\n"
            f"User-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n").encode("latin-1")


def _check_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"health check path must start with / (got {path!r})")
    if any(c <= " " or c == "\x7f" or c > "~" for c in path):
        raise ValueError(f"health check path must be printable ASCII without spaces (got {path!r})")


class _Response:
    """httptools callbacks for one check response: the status and up to MAX_BODY of the body."""

    __slots__ = ("parser", "status", "body", "head_bytes", "complete")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status: int | None = None
        self.body = bytearray()
        self.head_bytes = 0
        self.complete = False

    @property
    def done(self) -> bool:
        return self.complete or len(self.body) >= MAX_BODY

    def feed(self, data: bytes) -> None:
        if self.status is None:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.complete = True  # a 101 answer: the status is all we need
        except httptools.HttpParserError as exc:
            raise CheckFailed(f"invalid response: {exc}") from None
        if self.status is None and self.head_bytes > MAX_HEAD:
            raise CheckFailed(f"response head larger than {MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, chunk: bytes) -> None:
        room = MAX_BODY - len(self.body)
        if room > 0:
            self.body += chunk[:room]

    def on_message_complete(self) -> None:
        self.complete = True


class _Attempt:
    """One check: connect, send, read until the response is complete, truncated or closed.
    ``phase`` says how far it got, to word a timeout."""

    __slots__ = ("phase",)

    def __init__(self) -> None:
        self.phase = CONNECT

    async def run(self, host: str, port: int, request: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        self.phase = RESPONSE
        try:
            writer.write(request)
            response = _Response()
            while not response.done:
                data = await reader.read(READ_SIZE)
                if not data:
                    break  # EOF: a close-delimited body ends here; so might a truncated one
                response.feed(data)
            if response.status is None:
                raise CheckFailed("connection closed before a response")
            return response.status, bytes(response.body)
        finally:
            writer.close()


class ActiveChecker:
    """Checks every backend of a pool over HTTP, on the running loop.

    Every ``interval`` seconds ± ``jitter`` (a fraction of the interval, drawn
    from ``rng``, so checks of many backends spread out) each backend gets
    ``GET path`` with ``Host: host:port``, ``User-Agent: fulcrum-health-check``
    and ``Connection: close`` on a connection of its own (never the proxy's
    pool). The status and up to 64 KiB of body must arrive within ``timeout``.
    The result goes through :func:`probe.evaluate` (``expect_status`` inclusive
    range, ``expect_body`` substring) into the backend's :class:`HealthState`;
    a transition calls ``on_change(backend, transition)`` synchronously on the
    loop. Every passing check of a backend that is healthy afterwards (the one
    that makes it healthy included, after ``on_change``) calls
    ``on_pass(backend)``: the pool lifts a passive ejection and half-opens an
    open breaker on it, as Envoy does. Intervals count from the start of one
    check to the start of the next; a check slower than the interval is
    followed by the next at once.

    ``clock`` stamps results and slow start (monotonic seconds, the strategies'
    clock). Checks log at debug level only; an exception raised by
    ``on_change`` or ``on_pass`` is logged and the checks go on.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        path: str = "/health",
        interval: float = 2.0,
        timeout: float = 1.0,
        healthy_threshold: int = 2,
        unhealthy_threshold: int = 3,
        expect_status: StatusRange | str | int = DEFAULT_EXPECT_STATUS,
        expect_body: bytes | str | None = None,
        jitter: float = 0.1,
        slow_start: float = 0.0,
        rng: random.Random | None = None,
        on_change: OnChange | None = None,
        on_pass: OnPass | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_path(path)
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds (got {interval})")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds (got {timeout})")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be a fraction in [0, 1) (got {jitter})")
        if isinstance(expect_status, (str, int)):
            expect_status = parse_status_range(expect_status)
        check_status_range(expect_status)
        # configuration
        self.backends = list(backends)
        self.path = path
        self.interval, self.timeout, self.jitter = interval, timeout, jitter
        self.expect_status = tuple(expect_status)
        self.expect_body = expect_body.encode() if isinstance(expect_body, str) else expect_body
        self.rng = rng or random.Random()
        self.on_change = on_change
        self.on_pass = on_pass
        self.clock = clock
        self._thresholds = {"healthy_threshold": healthy_threshold,
                            "unhealthy_threshold": unhealthy_threshold, "slow_start": slow_start}
        # per backend, keyed by id
        self.states: dict[str, HealthState] = {}
        self._requests: dict[str, bytes] = {}
        for backend in self.backends:
            if backend.id in self.states:
                raise ValueError(f"duplicate backend id {backend.id!r}")
            self._register(backend)
        # running: one task per backend id
        self._tasks: dict[str, asyncio.Task] = {}
        self._started = False

    def _register(self, backend: Backend) -> None:
        self.states[backend.id] = HealthState(**self._thresholds)
        self._requests[backend.id] = request_bytes(backend, self.path)

    def state(self, backend_id: str) -> HealthState:
        return self.states[backend_id]

    def effective_weight(self, backend: Backend) -> float:
        """The backend's weight as health and slow start scale it now."""
        return self.states[backend.id].effective_weight(backend.weight, self.clock())

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> None:
        """Schedule one checking task per backend on the running loop (idempotent)."""
        if self._started:
            return
        self._started = True
        for backend in self.backends:
            self._schedule(backend)

    def _schedule(self, backend: Backend) -> None:
        delay = first_delay(self.interval, self.jitter, self.rng)
        self._tasks[backend.id] = asyncio.get_running_loop().create_task(
            self._run(backend, delay), name=f"health-check {backend.id}")

    async def stop(self) -> None:
        """Cancel every checking task and wait until they are gone."""
        tasks, self._tasks = list(self._tasks.values()), {}
        self._started = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- membership (admin API) ----------------------------------------------------
    def add(self, backend: Backend) -> None:
        """Check ``backend`` too, from now on; it starts HEALTHY like every backend."""
        if backend.id in self.states:
            raise ValueError(f"duplicate backend id {backend.id!r}")
        self._register(backend)
        self.backends = [*self.backends, backend]
        if self._started:  # running: the new backend gets its own task at once
            self._schedule(backend)

    def remove(self, backend_id: str) -> None:
        """Stop checking a backend and forget its state (a check under way is cancelled)."""
        task = self._tasks.pop(backend_id, None)
        if task is not None:
            task.cancel()
        self.backends = [b for b in self.backends if b.id != backend_id]
        self.states.pop(backend_id, None)
        self._requests.pop(backend_id, None)

    async def _run(self, backend: Backend, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            started = self.clock()
            try:
                await self.check_now(backend)
            except Exception:  # a bug here must not end this backend's checks
                log.exception("health check crashed", extra={"fields": {"backend": backend.id}})
            elapsed = self.clock() - started
            await asyncio.sleep(max(0.0, next_delay(self.interval, self.jitter, self.rng) - elapsed))

    async def check_now(self, backend: Backend) -> tuple[bool, str]:
        """Check ``backend`` once and record the result; ``(ok, reason)``."""
        status, body, error = await self._fetch(backend)
        ok, reason = evaluate(status, body, error, self.expect_status, self.expect_body)
        state = self.states[backend.id]
        transition = state.record(ok, self.clock(), reason)
        log.debug("health check", extra={"fields": {"backend": backend.id, "ok": ok, "reason": reason}})
        if transition is not None and self.on_change is not None:
            self._report("on_change", self.on_change, backend, transition)
        if ok and state.healthy and self.on_pass is not None:
            self._report("on_pass", self.on_pass, backend)
        return ok, reason

    @staticmethod
    def _report(name: str, callback: Callable, *args) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception(f"health {name} failed", extra={"fields": {"backend": args[0].id}})

    async def _fetch(self, backend: Backend) -> tuple[int | None, bytes | None, str | None]:
        """``(status, body, None)``, or ``(None, None, reason)`` when the check failed to run."""
        attempt = _Attempt()
        try:
            async with asyncio.timeout(self.timeout):
                status, body = await attempt.run(backend.host, backend.port, self._requests[backend.id])
        except Exception as exc:  # CancelledError is a BaseException and passes through
            return None, None, describe_error(exc, phase=attempt.phase, timeout=self.timeout)
        return status, body, None
