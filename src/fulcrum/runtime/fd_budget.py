"""The open-files budget: the soft RLIMIT_NOFILE raised to the hard one at start, the file
descriptors a config may need, how many client connections fit, and "too many open files"
logged once per interval rather than with a traceback per failed accept.

Invariant: a process admits at most ``FdBudget.max_clients`` client connections, so its client
and backend connections can never take the ``RESERVE`` that the admin API needs.
"""
from __future__ import annotations

import errno
import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("fulcrum")

# Descriptors for everything but client and backend connections: the listening sockets,
# the admin API and its clients, log files, config watching, stdio, the event loop's own
# (epoll, wake-up pipes, libuv's spare descriptor for shedding accepts at the limit).
# A single Fulcrum uses about 20 of them.
RESERVE = 64
LOG_INTERVAL = 10.0            # seconds between two "too many open files" lines
NR_OPEN_FALLBACK = 1 << 20     # Linux's default fs.nr_open: the ceiling when the hard limit is unlimited


@dataclass(frozen=True)
class FdBudget:
    """The descriptors one serving process may need under a config, against its limit.

    A client connection has at most one backend connection in flight. Idle pooled
    connections are at most ``idle_per_backend`` per backend, and a backend never holds
    more connections than there were clients at once (a new one is opened only when none
    is idle), so ``clients`` clients need at most
    ``2 × clients + backends × min(idle_per_backend, clients) + health_checks + reserve``.
    """

    limit: int                 # the soft open-files limit
    max_connections: int       # limits.max_connections; 0 = unlimited
    backends: int              # across all pools
    idle_per_backend: int      # upstream.max_idle_per_backend
    health_checks: int         # backends probed by active health checks
    reserve: int = RESERVE

    def needed(self, clients: int) -> int:
        """Descriptors for ``clients`` client connections and everything they may open."""
        idle = self.backends * min(self.idle_per_backend, clients)
        return 2 * clients + idle + self.health_checks + self.reserve

    @property
    def capacity(self) -> int:
        """The most client connections whose needs fit the limit (0 if not even one does)."""
        room = self.limit - self.health_checks - self.reserve
        if room <= 0:
            return 0
        full_pools = self.idle_per_backend * (2 + self.backends)  # needed at the knee, clients = idle_per_backend
        if room >= full_pools:
            return (room - self.backends * self.idle_per_backend) // 2
        return room // (2 + self.backends)

    @property
    def max_clients(self) -> int:
        """The client connections to admit: limits.max_connections, or fewer if they cannot
        fit; never 0, which would mean unlimited."""
        if self.max_connections == 0:
            return max(1, self.capacity)
        return max(1, min(self.max_connections, self.capacity))

    def warnings(self) -> list[str]:
        """What cannot fit, with the numbers and what to do; empty when everything fits."""
        if self.max_connections == 0:  # unlimited: only the reserve can be short
            if self.capacity > 0:
                return []
            return [f"limits.max_connections: the open-files limit ({self.limit}) has no room for client "
                    f"connections: one needs {self.needed(1)} ({self._parts(1)}), so Fulcrum admits at most 1; "
                    f"raise the limit (`ulimit -n`, LimitNOFILE= in a systemd unit)"]
        clients = self.max_connections
        needed = self.needed(clients)
        if needed <= self.limit:
            return []
        return [f"limits.max_connections: {clients} client connections may need {needed} open files "
                f"({self._parts(clients)}), but the open-files limit is {self.limit}, so Fulcrum admits at most "
                f"{self.max_clients}: raise the limit (`ulimit -n {needed}`, LimitNOFILE={needed} in a systemd "
                f"unit) or lower limits.max_connections to {self.max_clients}"]

    def _parts(self, clients: int) -> str:
        idle = self.backends * min(self.idle_per_backend, clients)
        return (f"{clients} clients, {clients} backend connections in flight, {idle} idle pooled "
                f"({self.backends} backends x upstream.max_idle_per_backend {self.idle_per_backend}), "
                f"{self.health_checks} health checks, {self.reserve} reserved for the admin API, logs and listeners")


def budget_for(config, limit: int) -> FdBudget:
    """The budget of one serving process (a single Fulcrum, or each worker) under ``config``."""
    pools = config.pools.values()
    return FdBudget(
        limit=limit,
        max_connections=config.limits.max_connections,
        backends=sum(len(p.backends) for p in pools),
        idle_per_backend=config.upstream.max_idle_per_backend,
        health_checks=sum(len(p.backends) for p in pools if p.health_check.enabled),
    )


# -- the process's limit ------------------------------------------------------------------------

def target_soft_limit(soft: int, hard: int, ceiling: int) -> int:
    """How far the soft limit can go: to the hard limit, or to ``ceiling`` (the kernel's
    fs.nr_open) when the hard limit is unlimited; never lower than it is."""
    top = ceiling if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY:
        return soft
    return max(soft, top)


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return NR_OPEN_FALLBACK


def soft_limit() -> int:
    """This process's soft open-files limit now."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def prospective_limit() -> int:
    """The soft limit ``fulcrum run`` would have after raising it (what ``check`` judges)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return target_soft_limit(soft, hard, _nr_open())


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft open-files limit as far as the hard limit allows: (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = target_soft_limit(soft, hard, _nr_open())
    if target == soft:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. a platform ceiling below the hard limit (macOS's OPEN_MAX)
        return soft, soft
    return soft, target


def start_up(config) -> FdBudget:
    """At start, before anything is opened: raise the limit, log it once (info), and log
    what cannot fit (warnings). Workers inherit the raised limit."""
    before, after = raise_open_files_limit()
    budget = budget_for(config, after)
    log.info("open files limit", extra={"fields": {
        "before": before, "now": after, "client_connections": budget.max_clients}})
    for line in budget.warnings():
        log.warning("open files limit too low", extra={"fields": {"problem": line}})
    return budget


# -- "too many open files" at run time ---------------------------------------------------------

class Tally:
    """Counts an event that may happen thousands of times a second and says when to log it:
    the first at once, then at most once per ``interval`` with the count since the last line.
    Sans-IO: the caller passes the time."""

    __slots__ = ("interval", "count", "next_at")

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self.count = 0
        self.next_at = float("-inf")

    def note(self, now: float) -> int:
        """One more occurrence; the count to log now (this one included), or 0 to stay quiet."""
        self.count += 1
        if now < self.next_at:
            return 0
        count, self.count = self.count, 0
        self.next_at = now + self.interval
        return count


def is_fd_exhaustion(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)


class FdExhaustionLog:
    """The event loop's exception handler: "too many open files" (EMFILE, ENFILE) becomes one
    warning per interval with the count since the last one; anything else goes on to the
    handler that was there before (or the loop's default).

    uvloop (libuv ≥ 1.45) never reaches it for a failed accept: libuv closes its spare
    descriptor, accepts and closes every pending connection and carries on, silently.
    asyncio's own loop reports each failed accept here, with a traceback, and pauses the
    listener for a second; this handler keeps that to one line per interval."""

    def __init__(self, previous=None, interval: float = LOG_INTERVAL) -> None:
        self.previous = previous
        self.tally = Tally(interval)

    @classmethod
    def install(cls, loop) -> FdExhaustionLog:
        handler = cls(loop.get_exception_handler())
        loop.set_exception_handler(handler)
        return handler

    def __call__(self, loop, context: dict) -> None:
        if not is_fd_exhaustion(context.get("exception")):
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        count = self.tally.note(loop.time())
        if count:
            log.warning("too many open files", extra={"fields": {
                "occurrences": count, "limit": soft_limit(), "what": context.get("message", ""),
                "interval": self.tally.interval}})
