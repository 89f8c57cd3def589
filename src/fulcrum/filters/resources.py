"""What filters share across routes and config versions, and what has a lifetime of its
own: the clock, the component log format, the access-log writers (one per output, however
many routes log to it), the rate-limit bucket tables and the filter instances of the config in
use (so a reload can reuse them). One Resources lives as long as the process serves; reloads
hand it on.

With ``workers: N`` every worker process builds its own Resources from the same config; state
that must hold across workers (rate-limit buckets) lives in files under ``shared_dir``, each
named after the filter's place in the config so that every worker opens the same file."""
from __future__ import annotations

import hashlib
import os
from time import monotonic
from typing import Callable

from fulcrum.filters.shared_buckets import SharedBucketTable
from fulcrum.filters.token_bucket import BucketTable
from fulcrum.observability.access_log import AccessLogWriter


class Resources:
    """Shared by the filters of one runtime; ``start``/``close`` follow the runtime's."""

    def __init__(self, clock: Callable[[], float] = monotonic, log_format: str = "text",
                 shared_dir: str | None = None) -> None:
        self.clock = clock
        self.log_format = log_format
        self.shared_dir = shared_dir  # shared by all workers of one instance; None: one process
        self.writers: dict[str, AccessLogWriter] = {}
        self.tables: list[SharedBucketTable] = []
        self.tls_port = 443  # set by the listener once the TLS port is bound
        self.filters: dict[tuple, object] = {}  # (config path, class, settings JSON) -> instance in use
        self.building: tuple | None = None  # the filters key of the filter being constructed

    def bucket_table(self, rate: float, burst: float, max_keys: int) -> BucketTable | SharedBucketTable:
        """Token buckets for the filter being built: in this process, or shared by all workers.

        The shared file is named after ``building`` (place in the config, class, settings), which
        comes out the same in every worker, so the same filter in each opens the same buckets.
        """
        if self.shared_dir is None:
            return BucketTable(rate, burst, max_keys)
        if self.building is None:
            raise RuntimeError("Resources.bucket_table with shared_dir needs .building (set by FilterBuilder)")
        where, cls, settings = self.building
        # Not hash() or id(): those differ between processes.
        name = f"{where}|{cls.__module__}.{cls.__qualname__}|{settings}"
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        table = SharedBucketTable(os.path.join(self.shared_dir, "ratelimit-" + digest), rate, burst, max_keys)
        self.tables.append(table)
        return table

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
        for table in self.tables:
            table.close()
        self.tables.clear()
