# Event counts over a rolling time window in fixed buckets, shared by the
# circuit breaker (failure ratio) and the retry budget. Sans-IO: callers pass ``now``.
from __future__ import annotations

from array import array


class RollingCounts:
    """Event counts over a rolling time window, kept in fixed time buckets.

    The window is cut into ``buckets`` slices of ``window / buckets`` seconds,
    each holding one count per column (e.g. requests and failures). Adding
    bumps the current slice; moving into a new slice clears the slices the
    clock passed over and subtracts them from the running totals, so adding
    and reading are O(1) amortised and allocate nothing per event.

    A total covers the current slice plus the ``buckets - 1`` before it: events
    between ``window - window / buckets`` and ``window`` seconds old. A clock
    that steps back counts into the newest slice.

    The counts are machine integers (``array`` of int64, flat: ``column * buckets + slice``),
    which the compiled core reads and writes without making an int object per event.
    """

    __slots__ = ("window", "width", "size", "counts", "totals", "head", "started")

    def __init__(self, window: float, buckets: int = 10, columns: int = 2) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds (got {window})")
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1 (got {buckets})")
        if columns < 1:
            raise ValueError(f"columns must be >= 1 (got {columns})")
        self.window = window
        self.width = window / buckets
        self.size = buckets
        self.counts = array("q", bytes(8 * buckets * columns))
        self.totals = array("q", bytes(8 * columns))
        self.head = 0          # absolute slice number of the newest slice, once started
        self.started = False   # an event or a read has placed the window

    def _advance(self, now: float) -> int:
        """Move the newest slice up to ``now``; return its index in the ring."""
        slot = int(now // self.width)
        head = self.head
        if self.started and slot <= head:
            return head % self.size
        self.head = slot
        if not self.started or slot - head >= self.size:
            self.started = True
            self._zero()
            return slot % self.size
        totals, counts, size = self.totals, self.counts, self.size
        for s in range(head + 1, slot + 1):
            i = s % size
            for c in range(len(totals)):
                k = c * size + i
                totals[c] -= counts[k]
                counts[k] = 0
        return slot % size

    def add(self, now: float, column: int, n: int = 1) -> None:
        """Count ``n`` events in ``column`` at ``now``."""
        if self.started and now // self.width <= self.head:
            i = self.head % self.size  # still in the newest slice: _advance's fast path, inlined
        else:
            i = self._advance(now)
        self.counts[column * self.size + i] += n
        self.totals[column] += n

    def total(self, now: float, column: int) -> int:
        """Events in ``column`` over the window ending at ``now``."""
        self._advance(now)
        return self.totals[column]

    def _zero(self) -> None:
        counts, totals = self.counts, self.totals
        for k in range(len(counts)):
            counts[k] = 0
        for k in range(len(totals)):
            totals[k] = 0

    def clear(self) -> None:
        """Forget every count (the window keeps its position)."""
        self._zero()
