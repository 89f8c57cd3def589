#!/usr/bin/env python3
"""HTTP/1.1 load generator: scripts/load-test.sh runs it when wrk is missing (or with --python).

Standard library only (uvloop is used when importable, for a higher rate). Each of
``--connections`` keep-alive connections is an asyncio task sending one GET after another to
one URL, until ``--duration`` is over or ``--requests`` have been sent, whichever comes first.
A progress bar goes to stderr (when it is a terminal, or with --progress); the summary goes to
stdout: requests, rate, latency percentiles, status counts, and how many responses each
backend gave, by the header the example backends name themselves in (X-Backend).

Exit status: 0 when at least one response arrived, 1 when none did, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import sys
import time
from array import array
from urllib.parse import urlsplit

USER_AGENT = "fulcrum-loadgen/1"
CONNECT_RETRY_DELAY = 0.05  # after a failed connect, so a down server is not hammered in a tight loop
# Failed connects per connection, with no response at all yet, after which the run stops: the
# target is not there (a wrong port), and waiting out the duration or -n would tell nothing more.
GIVE_UP_CONNECTS = 5
PROGRESS_INTERVAL = 0.1
BAR_WIDTH = 30
BAR_LINE = 90  # characters the progress line is padded to
MAX_LINE = 64 * 1024  # longest status line, header line or chunk-size line accepted
CHUNK_READ = 64 * 1024


class ProtocolError(Exception):
    """The server's response is not valid HTTP/1.1 as far as this client reads it."""


class Target:
    """Where requests go and the bytes of the request sent each time (always the same)."""

    def __init__(self, url: str, headers: list[str]) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"only http:// URLs are supported (got {url!r}); wrk does https")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        fields = {"host": ("Host", parts.netloc), "user-agent": ("User-Agent", USER_AGENT),
                  "accept": ("Accept", "*/*")}
        for raw in headers:  # -H "Name: value" replaces a default field of the same name
            name, sep, value = raw.partition(":")
            if not sep or not name.strip() or any(c in raw for c in "\r\n"):
                raise ValueError(f"-H wants 'Name: value' (got {raw!r})")
            fields[name.strip().lower()] = (name.strip(), value.strip())
        head = "".join(f"{n}: {v}\r\n" for n, v in fields.values())
        self.request = f"GET {target} HTTP/1.1\r\n{head}\r\n".encode("latin-1")


class Limits:
    """When to stop: a deadline, a number of requests, or both (the first reached wins)."""

    def __init__(self, duration: float | None, requests: int | None, connections: int) -> None:
        self.duration, self.requests, self.connections = duration, requests, connections
        self.started = time.monotonic()
        self.deadline = None if duration is None else self.started + duration
        self.issued = 0
        self.stopped: float | None = None  # when the last connection finished
        self.gave_up: str | None = None  # why the run stopped before its limits, if it did

    def elapsed(self) -> float:
        return (self.stopped or time.monotonic()) - self.started

    def take(self) -> bool:
        """Claim the right to send one more request (False: stop)."""
        if self.gave_up is not None:
            return False
        if self.requests is not None and self.issued >= self.requests:
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        self.issued += 1
        return True

    def fraction(self, completed: int) -> float:
        """How far along the run is, 0..1, by whichever limit is closer."""
        done = 0.0
        if self.duration:
            done = (time.monotonic() - self.started) / self.duration
        if self.requests:
            done = max(done, completed / self.requests)
        return min(done, 1.0)


class Stats:
    """What came back: one latency per response, counts by status, backend and error kind."""

    def __init__(self) -> None:
        self.latencies = array("d")  # seconds; an array keeps a long run's memory small
        self.statuses: collections.Counter[int] = collections.Counter()
        self.backends: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    @property
    def responses(self) -> int:
        return len(self.latencies)

    def record(self, latency: float, status: int, backend: str) -> None:
        self.latencies.append(latency)
        self.statuses[status] += 1
        self.backends[backend] += 1


# -- reading one response ----------------------------------------------------------------------


async def _line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readuntil(b"\n")
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    return line


async def _head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """Status code, HTTP version and header fields (lower-cased names; repeats joined by ', ')."""
    status_line = await _line(reader)
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {status_line[:80]!r}")
    fields: dict[str, str] = {}
    while (line := await _line(reader)) not in (b"\r\n", b"\n"):
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:80]!r}")
        key, value = name.strip().lower(), value.strip()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return int(parts[1]), parts[0].decode("ascii"), fields


async def _chunked(reader: asyncio.StreamReader) -> None:
    """Discard a chunked body and its trailer section."""
    while True:
        size_text = (await _line(reader)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            break
        await reader.readexactly(size + 2)  # data and its CRLF
    while (await _line(reader)) not in (b"\r\n", b"\n"):
        pass


async def read_response(reader: asyncio.StreamReader, backend_header: str) -> tuple[int, str, bool]:
    """Read one response to a GET, body discarded: (status, backend name, connection reusable?)."""
    status, version, fields = await _head(reader)
    while 100 <= status < 200:  # 103 Early Hints and the like come before the real response
        status, version, fields = await _head(reader)
    tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
    reusable = "close" not in tokens and (version != "HTTP/1.0" or "keep-alive" in tokens)
    if status in (204, 304):
        pass
    elif "chunked" in fields.get("transfer-encoding", "").lower():
        await _chunked(reader)
    elif "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError:
            raise ProtocolError(f"bad Content-Length {fields['content-length'][:20]!r}") from None
        await reader.readexactly(length)
    else:  # close-delimited: the body runs to the end of the connection
        while await reader.read(CHUNK_READ):
            pass
        reusable = False
    return status, fields.get(backend_header, "-"), reusable


# -- the load ----------------------------------------------------------------------------------


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):  # before OSError, of which it is a subclass
        return "timeout"
    if isinstance(exc, ProtocolError):
        return "bad response"
    if isinstance(exc, (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError)):
        return "connection closed"
    return f"other ({type(exc).__name__})"


async def worker(target: Target, limits: Limits, stats: Stats, timeout: float, backend_header: str) -> None:
    """One connection: send, read, repeat while the limits allow; reconnect when needed."""
    reader = writer = None
    try:
        while limits.take():
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(target.host, target.port, limit=MAX_LINE), timeout)
                except OSError as exc:  # TimeoutError included
                    kind = "connect timeout" if isinstance(exc, TimeoutError) else "connect"
                    stats.errors[kind] += 1
                    if not stats.responses and sum(stats.errors.values()) >= GIVE_UP_CONNECTS * limits.connections:
                        limits.gave_up = f"nothing answers at {target.host}:{target.port} ({exc})"
                    await asyncio.sleep(CONNECT_RETRY_DELAY)
                    continue
            started = time.perf_counter()
            try:
                writer.write(target.request)
                status, backend, reusable = await asyncio.wait_for(read_response(reader, backend_header), timeout)
            except (OSError, EOFError, asyncio.LimitOverrunError, ProtocolError) as exc:  # OSError: TimeoutError too
                stats.errors[_error_kind(exc)] += 1
                reusable = False
            else:
                stats.record(time.perf_counter() - started, status, backend)
            if not reusable:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def progress(limits: Limits, stats: Stats, stream) -> None:
    """Redraw a one-line progress bar until cancelled."""
    try:
        while True:
            _draw(limits, stats, stream)
            await asyncio.sleep(PROGRESS_INTERVAL)
    finally:
        _draw(limits, stats, stream, final=True)


def _draw(limits: Limits, stats: Stats, stream, final: bool = False) -> None:
    done = 1.0 if final else limits.fraction(stats.responses)
    filled = round(done * BAR_WIDTH)
    elapsed = max(limits.elapsed(), 1e-9)
    errors = sum(stats.errors.values())
    line = (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%}  {stats.responses:,} responses"
            f"  {stats.responses / elapsed:,.0f} req/s  {errors:,} errors")
    # \r goes back to the line's start; padding blanks what a longer previous line left there.
    stream.write("\r" + line.ljust(BAR_LINE) + ("\n" if final else ""))
    stream.flush()


async def run(args: argparse.Namespace, target: Target, limits: Limits, stats: Stats) -> None:
    """Drive the connections until the limits stop them."""
    bar = asyncio.create_task(progress(limits, stats, sys.stderr)) if args.progress else None
    workers = [asyncio.create_task(worker(target, limits, stats, args.timeout, args.backend_header.lower()))
               for _ in range(args.connections)]
    # At the deadline, requests still in flight are abandoned (as wrk does): not counted.
    wait = None if args.duration is None else args.duration + 0.05
    _, pending = await asyncio.wait(workers, timeout=wait)
    for task in pending:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    limits.stopped = time.monotonic()
    if bar is not None:
        bar.cancel()
        await asyncio.gather(bar, return_exceptions=True)


# -- the summary -------------------------------------------------------------------------------


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    """Columns sized to fit; the first one left-aligned, the others right-aligned."""
    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: tuple[str, ...]) -> str:
        return "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  " + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _shares(counter: collections.Counter, total: int) -> list[tuple]:
    return [(key, f"{n:,}", f"{100 * n / total:.1f}%") for key, n in sorted(counter.items(), key=lambda kv: str(kv[0]))]


def _kinds(errors: collections.Counter) -> str:
    return f" ({', '.join(f'{kind} {n:,}' for kind, n in sorted(errors.items()))})" if errors else ""


def summary(args: argparse.Namespace, stats: Stats, elapsed: float) -> str:
    """The report printed at the end, as text."""
    n = stats.responses
    limit = " and ".join(filter(None, [args.duration is not None and f"{args.duration:g} s",
                                       args.requests is not None and f"{args.requests:,} requests"]))
    out = [f"Target       {args.url}",
           f"Load         {args.connections} connection(s), up to {limit} (python load generator)",
           f"Responses    {n:,} in {elapsed:.2f} s = {n / elapsed if elapsed else 0:,.1f} req/s",
           f"Errors       {sum(stats.errors.values()):,}" + _kinds(stats.errors)]
    if n:
        ordered = sorted(stats.latencies)
        ms = {label: percentile(ordered, p) * 1000 for label, p in (("p50", 50), ("p90", 90), ("p99", 99))}
        out.append("Latency      " + "   ".join(f"{k} {v:.2f} ms" for k, v in ms.items())
                   + f"   max {ordered[-1] * 1000:.2f} ms")
        out += ["", table(("status", "count", "share"), _shares(stats.statuses, n)),
                "", table((f"backend ({args.backend_header})", "count", "share"), _shares(stats.backends, n))]
    return "\n".join(out)


# -- command line ------------------------------------------------------------------------------


def _positive(kind):
    def parse(raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (got {raw!r})")
        return value

    return parse


def _duration(raw: str) -> float:
    """Seconds, or a number with a unit: 500ms, 10s, 2m."""
    for unit, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if raw.endswith(unit):
            return _positive(float)(raw[: -len(unit)]) * scale
    return _positive(float)(raw)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="HTTP/1.1 keep-alive load generator (standard library only).")
    p.add_argument("url", help="http://host[:port]/path to GET")
    p.add_argument("-c", "--connections", type=_positive(int), default=50, help="concurrent connections (50)")
    p.add_argument("-d", "--duration", type=_duration, default=None,
                   help="how long to run: seconds, or 500ms / 10s / 2m (default 10 s unless -n is given)")
    p.add_argument("-n", "--requests", type=_positive(int), default=None, help="stop after this many requests")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="extra request header (repeatable); replaces Host, User-Agent or Accept")
    p.add_argument("--timeout", type=_duration, default=10.0, help="per connect and per response (10 s)")
    p.add_argument("--backend-header", default="X-Backend",
                   help="response header naming the backend, for the distribution (X-Backend)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show the progress bar on stderr even when it is not a terminal")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")
    args = p.parse_args(argv)
    if args.duration is None and args.requests is None:
        args.duration = 10.0
    if args.progress is None:
        args.progress = sys.stderr.isatty()
    return args


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        target = Target(args.url, args.header)
    except ValueError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    limits, stats = Limits(args.duration, args.requests, args.connections), Stats()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run(args, target, limits, stats))
    except KeyboardInterrupt:  # Ctrl-C: still report what was measured so far
        print("\nloadgen: interrupted", file=sys.stderr)
    print(summary(args, stats, limits.elapsed()))
    if limits.gave_up:
        print(f"loadgen: stopped early: {limits.gave_up}", file=sys.stderr)
    if not stats.responses:
        print(f"loadgen: no response from {args.url}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
