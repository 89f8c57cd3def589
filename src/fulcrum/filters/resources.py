"""What filters share across routes and config versions, and what has a lifetime of its
own: the clock, the component log format, the access-log writers (one per output, however
many routes log to it) and the filter instances of the config in use (so a reload can reuse
them). One Resources lives as long as the process serves; reloads hand it on."""
from __future__ import annotations

from time import monotonic
from typing import Callable

from fulcrum.observability.access_log import AccessLogWriter


class Resources:
    """Shared by the filters of one runtime; ``start``/``close`` follow the runtime's."""

    def __init__(self, clock: Callable[[], float] = monotonic, log_format: str = "text") -> None:
        self.clock = clock
        self.log_format = log_format
        self.writers: dict[str, AccessLogWriter] = {}
        self.tls_port = 443  # set by the listener once the TLS port is bound
        self.filters: dict[tuple, object] = {}  # (config path, class, settings JSON) -> instance in use

    def access_log_writer(self, output: str, max_pending: int) -> AccessLogWriter:
        writer = self.writers.get(output)
        if writer is None:
            writer = self.writers[output] = AccessLogWriter(output, max_pending)
        return writer

    def start(self) -> None:
        """Start writers not yet running (idempotent: called for every config version)."""
        for writer in self.writers.values():
            writer.start()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
