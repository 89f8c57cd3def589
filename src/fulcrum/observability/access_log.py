"""Access-log output: lines are batched by the event loop and written by a thread.

The loop's cost per line is a list append; every ``FLUSH_INTERVAL`` (or ``BATCH`` lines) the
batch goes to the writer thread in one queue put, and the writes (and any disk stall) happen
there. Handing over each line instead would wake the thread, and trade the GIL, per request:
that cost more than the rest of the request. Memory is bounded: with ``max_pending`` lines
waiting, new lines are dropped and counted, and the writer reports how many were lost, so a
stuck disk costs log lines, never requests.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import select
import stat
import sys
import threading
from typing import IO

log = logging.getLogger("fulcrum.access")

_STOP = None
FLUSH_INTERVAL = 0.1  # seconds a line may wait on the loop before it goes to the writer
BATCH = 256           # lines that go at once, without waiting for the interval
FILE_MODE = 0o640     # a log file created here: owner writes, group reads, others nothing


class AccessLogWriter:
    """Writes queued lines to stdout, stderr or a file (appended), in batches."""

    __slots__ = ("output", "max_pending", "queue", "batch", "queued", "dropped", "failed", "written",
                 "_thread", "_stream", "_timer", "_loop")

    def __init__(self, output: str = "stdout", max_pending: int = 65_536) -> None:
        self.output = output
        self.max_pending = max_pending
        self.queue: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self.batch: list[str] = []
        # Each counter has one writer: ``queued`` and ``dropped`` the loop, ``written`` and
        # ``failed`` the thread; so the pending count needs no lock.
        self.queued = 0
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._thread: threading.Thread | None = None
        self._stream: IO[str] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def write(self, line: str) -> None:
        """Queue one line (without its newline); dropped when ``max_pending`` are waiting."""
        if self.queued - self.written >= self.max_pending:
            self.dropped += 1
            return
        self.queued += 1
        batch = self.batch
        batch.append(line)
        if len(batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Hand the lines batched so far to the writer thread."""
        if self.batch:
            self.queue.put(self.batch)
            self.batch = []

    def _tick(self) -> None:
        self.flush()
        self._timer = self._loop.call_later(FLUSH_INTERVAL, self._tick)

    def start(self) -> None:
        if self._thread is not None:
            return
        if self.output == "stdout":
            self._stream = sys.stdout
        elif self.output == "stderr":
            self._stream = sys.stderr
        else:
            # 0640 from the start: clients' addresses and paths are not for every local user,
            # and a umask can only narrow what os.open asks for (an existing file keeps its mode).
            fd = os.open(self.output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            self._stream = open(fd, "a", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, name="fulcrum-access-log", daemon=True)
        self._thread.start()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a test, a tool): every BATCH lines, and at close
        self._timer = self._loop.call_later(FLUSH_INTERVAL, self._tick)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread and close a file."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._thread is None:
            return
        self.flush()
        self.queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        if self._stream is not None and self.output not in ("stdout", "stderr"):
            self._stream.close()
        self._stream = None

    def _run(self) -> None:
        stream = self._stream
        reported = 0
        while True:
            batches = [self.queue.get()]
            try:
                while len(batches) < 64:
                    batches.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            stop = _STOP in batches
            lines = [line for batch in batches if batch is not _STOP for line in batch]
            try:
                if lines:
                    stream.flush()  # what went through the stream object first stays first
                    write_lines(stream.fileno(), lines)
            except (OSError, ValueError) as exc:  # a full disk, a closed pipe: lose lines, not requests
                self.failed += len(lines)
                log.error("access log write failed", extra={"fields": {"output": self.output, "error": str(exc)}})
            self.written += len(lines)
            lost = self.dropped + self.failed
            if lost > reported:
                log.warning("access log lines dropped", extra={"fields": {
                    "output": self.output, "dropped_total": lost, "max_pending": self.max_pending}})
                reported = lost
            if stop:
                return


def write_lines(fd: int, lines: list[str]) -> None:
    """Write ``lines`` so that processes sharing ``fd`` never tear each other's lines.

    Workers of one Fulcrum share stdout (often a pipe) and may share a file. A ``write`` to a
    file opened for appending lands whole, so a file gets the batch in one write. A pipe
    keeps writes whole only up to PIPE_BUF bytes, so it gets chunks of whole lines of at
    most that much (a single longer line is written alone). The batch is encoded once and
    cut with ``rfind`` in C: a Python step per chunk, not per line."""
    data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
    if len(data) <= select.PIPE_BUF or stat.S_ISREG(os.fstat(fd).st_mode):
        _write_all(fd, data)
        return
    start, end = 0, len(data)
    while start < end:
        stop = start + select.PIPE_BUF
        if stop < end:
            cut = data.rfind(b"\n", start, stop)
            stop = cut + 1 if cut >= start else data.find(b"\n", stop) + 1 or end
        _write_all(fd, data[start:stop])
        start = stop


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
