# Token buckets per key shared by the worker processes of one Fulcrum instance, so a client gets
# its rate limit once and not once per worker. Same interface and arithmetic as BucketTable.
#
# Layout: a file (in /dev/shm) mapped MAP_SHARED by every worker, ``groups`` × 8 slots of
# struct ``<Qdd`` (tag, tokens, stamp), 24 bytes each, no header. A key's tag is the first 8
# bytes of its blake2b digest (0 mapped to 1); the tag's low bits pick its group; the key lives
# in one of that group's 8 slots or nowhere. Tag 0 marks an empty slot, so the zeroed memory of
# a new file is an empty table: processes racing to create it need no initialisation step.
# Each opens it O_CREAT and extends it to the table's size if it is empty; a file of another size
# is someone else's table and is refused. Whoever owns the directory removes the file.
#
# Invariants:
# * A group is read and written only under a POSIX byte-range lock on byte ``group`` of the
#   file. The kernel drops a process's record locks when it dies, so a SIGKILLed worker can
#   never leave a group locked (a process-shared semaphore could stay taken forever).
# * POSIX locks belong to the process, not the thread or the fd: they do not exclude threads of
#   one process, and closing any fd on the file drops all of the process's locks on it. A take
#   never yields, so one event-loop thread per process is safe; several threads are not.
# * Memory is trusted no further than it must be: tokens read are clamped to [0, burst] and a
#   stamp that is NaN or infinite is replaced by ``now``. A worker killed mid-write leaves at
#   worst fields of two writes side by side (a refill too generous by at most ``burst``);
#   garbage must not hand a client infinite tokens, or none for ever.
# * ``now`` must come from one clock for all processes: time.monotonic (CLOCK_MONOTONIC) is
#   host-wide on Linux. A stamp slightly later than ``now`` is normal (another worker read the
#   clock later but took the lock first): it refills nothing and the later stamp is kept.
# * Two keys with equal tags (about 1 in 2**64 per pair) share a bucket.
from __future__ import annotations

import fcntl
import math
import mmap
import os
import struct
from hashlib import blake2b

from fulcrum.filters.token_bucket import _EPS, Decision, check_table

_WAYS = 8
_SLOT = struct.Struct("<Qdd")
_SLOT_BYTES = _SLOT.size  # 24
_GROUP_BYTES = _WAYS * _SLOT_BYTES
# One unpack reads a group's 8 tags (a hit needs nothing else to find its slot); the stamps
# are read only when a key must be placed. Measured against unpacking the whole group (24
# values) and against 8 per-slot unpacks, the tags-only read is about twice as fast.
_TAGS = struct.Struct("<" + "Q16x" * _WAYS)
_STAMPS = struct.Struct("<" + "16xd" * _WAYS)
_VALUES = struct.Struct("<dd")  # tokens, stamp: at slot offset + 8
_NEVER = -math.inf  # elapsed time is never below this but for a NaN or infinite stamp

# Key -> tag memo per table: hashing costs about 0.6 µs, a dict hit 0.05 µs. Cleared when full,
# so a flood of distinct keys costs one insert each and memory stays bounded.
_TAG_MEMO = 4096


def key_tag(key: str) -> int:
    """The 64-bit tag a key is stored under (never 0, which marks an empty slot)."""
    digest = blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


def table_bytes(max_keys: int) -> int:
    """The file size of a table sized for ``max_keys``."""
    return _groups(max_keys) * _GROUP_BYTES


def _groups(max_keys: int) -> int:
    # Twice the slots asked for: groups fill unevenly, and at one slot per key ~6-14% of
    # max_keys active clients would be evicted (a fresh burst each); at two, well under 1%.
    return 1 << max(0, math.ceil(2 * max_keys / _WAYS) - 1).bit_length()


class SharedBucketTable:
    """Token buckets per key in a file mapped by several processes; ``take`` as BucketTable's.

    Memory is fixed: ``groups`` × 8 slots of 24 bytes, ``groups`` the power of two that makes
    at least ``2 × max_keys`` slots (6 MiB for the default 100 000 keys). A key not yet in its group takes an empty slot, else the group's
    oldest slot. If that one was idle for ``idle_after`` (default ``burst / rate``) it had
    refilled to full, the same as a fresh bucket, and nothing is lost (``expired_total``);
    otherwise its client gets a fresh bucket on its next request (``evicted_total``), the
    documented price of bounded memory. Both counters are this process's only.

    Unlike BucketTable's LRU, eviction is per group: a group can fill while others have room,
    hence the doubled slot count. (At one slot per key, 6-14% of ``max_keys`` clients active
    at once were evicted in measurements.)

    Per call: a memoised hash, two ``lockf`` system calls, one struct unpack of the group's tags,
    one of the slot and one pack.
    """

    __slots__ = ("path", "rate", "burst", "limit", "max_keys", "idle_after", "groups",
                 "evicted_total", "expired_total", "_fd", "_mem", "_mask", "_tags")

    def __init__(self, path: str, rate: float, burst: float, max_keys: int = 100_000,
                 idle_after: float | None = None) -> None:
        idle_after = check_table(rate, burst, max_keys, idle_after)
        self.path = path
        self.rate = rate
        self.burst = burst
        self.limit = int(burst)
        self.max_keys = max_keys
        self.idle_after = idle_after
        self.groups = _groups(max_keys)
        self.evicted_total = 0
        self.expired_total = 0
        self._mask = self.groups - 1
        self._tags: dict[str, int] = {}
        self._fd = -1
        self._mem: mmap.mmap | None = None
        self._open(path, self.groups * _GROUP_BYTES)

    def _open(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            found = os.fstat(fd).st_size
            if found == 0:  # new: racing creators all extend to the same size, zero-filled
                os.ftruncate(fd, size)
            elif found != size:
                raise ValueError(f"shared bucket table {path}: file is {found} bytes, expected {size} "
                                 f"(another table's file, or one made for different max_keys)")
            self._mem = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def take(self, key: str, now: float) -> Decision:
        """Take one token from ``key``'s bucket and say whether the request is allowed."""
        tag = self._tags.get(key)
        if tag is None:
            tag = self._remember(key)
        group = tag & self._mask
        offset = group * _GROUP_BYTES
        mem = self._mem
        burst = self.burst
        fd = self._fd
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, group)
        try:
            tags = _TAGS.unpack_from(mem, offset)
            if tag not in tags:
                at = self._place(mem, offset, tags, now)
                tokens, stamp = burst, now
            else:
                at = offset + tags.index(tag) * _SLOT_BYTES
                tokens, stamp = _VALUES.unpack_from(mem, at + 8)
                if not 0.0 <= tokens <= burst:  # torn or corrupt (NaN fails both comparisons)
                    tokens = burst if tokens > burst else 0.0
                elapsed = now - stamp
                if elapsed > 0:
                    tokens += elapsed * self.rate
                    if tokens > burst:
                        tokens = burst
                    stamp = now
                elif not elapsed > _NEVER:  # a NaN or infinite stamp: garbage, not a time
                    stamp = now
            allowed = tokens >= 1.0 - _EPS
            if allowed:
                tokens = tokens - 1.0 if tokens >= 1.0 else 0.0
            _SLOT.pack_into(mem, at, tag, tokens, stamp)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, group)
        rate = self.rate
        if allowed:
            return Decision(True, self.limit, int(tokens + _EPS), (burst - tokens) / rate, 0.0)
        return Decision(False, self.limit, 0, (burst - tokens) / rate, (1.0 - tokens) / rate)

    def _remember(self, key: str) -> int:
        tags = self._tags
        if len(tags) >= _TAG_MEMO:
            tags.clear()
        tag = tags[key] = key_tag(key)
        return tag

    def _place(self, mem: mmap.mmap, offset: int, tags: tuple[int, ...], now: float) -> int:
        """The offset of the slot a new key takes in the group at ``offset`` (the lock is held)."""
        if 0 in tags:
            return offset + tags.index(0) * _SLOT_BYTES
        stamps = _STAMPS.unpack_from(mem, offset)
        oldest = min(stamps)
        way = stamps.index(oldest)
        if oldest <= now - self.idle_after:
            self.expired_total += 1  # refilled to full: the fresh bucket replacing it is the same
        else:
            self.evicted_total += 1
        return offset + way * _SLOT_BYTES

    def __len__(self) -> int:
        """Occupied slots, idle ones included (a full scan: for status pages, not per request)."""
        mem = self._mem
        if mem is None:
            return 0
        return sum(1 for (tag,) in struct.iter_unpack("<Q16x", mem) if tag)

    def close(self) -> None:
        """Unmap and close (idempotent). Drops any record locks this process holds on the file."""
        if self._mem is not None:
            self._mem.close()
            self._mem = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __repr__(self) -> str:
        return (f"SharedBucketTable(path={self.path!r}, rate={self.rate}, burst={self.burst}, "
                f"max_keys={self.max_keys}, groups={self.groups})")
