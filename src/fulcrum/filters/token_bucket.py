# Token buckets for rate limiting: one bucket's arithmetic, and a table of buckets per key whose
# memory is bounded (LRU, at most ``max_keys``). Sans-IO: ``now`` (monotonic seconds) is passed in.
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

# Slack for float rounding in ``now - stamp``: 0.999999 tokens counts as one. Without it a take
# exactly 1/rate seconds after the bucket ran dry could be refused because the clock's floats
# came out a hair short. The gift is at most a millionth of a token per take.
_EPS = 1e-6

# How many idle buckets one ``BucketTable.take`` may drop from the cold end: more than one per
# call so that sweeping outpaces insertion, few enough that no call does much work.
_SWEEP_PER_TAKE = 2


def _check(rate: float, burst: float) -> None:
    if not rate > 0:
        raise ValueError(f"token bucket rate must be > 0 tokens/s (got {rate})")
    if not burst >= 1:
        raise ValueError(f"token bucket burst must be >= 1 (got {burst})")


def check_table(rate: float, burst: float, max_keys: int, idle_after: float | None) -> float:
    """Validate a bucket table's settings; its ``idle_after`` (default: the refill time)."""
    _check(rate, burst)
    if max_keys < 1:
        raise ValueError(f"bucket table max_keys must be >= 1 (got {max_keys})")
    refill_time = burst / rate
    if idle_after is None:
        return refill_time
    if idle_after < refill_time:
        raise ValueError(
            f"bucket table idle_after must be >= burst / rate = {refill_time:g} s, "
            f"the time an idle bucket takes to refill (got {idle_after})"
        )
    return idle_after


class TokenBucket:
    """One token bucket: holds up to ``burst`` tokens, refills at ``rate`` tokens per second.

    A request takes one token; with none left it is refused. The bucket starts full, so a new
    client may send ``burst`` requests at once and then ``rate`` per second. Refill is computed
    lazily from the time of the last call (``stamp``), so an idle bucket costs nothing.
    The read methods refill too (they are what the RateLimit-* response headers report), so
    call them with the same ``now`` as the ``take`` they describe.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float, tokens: float | None = None) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        self.tokens = burst if tokens is None else min(float(tokens), burst)
        self.stamp = now

    def _refill(self, now: float) -> float:
        elapsed = now - self.stamp
        if elapsed > 0:  # a clock that steps back refills nothing and keeps the later stamp
            tokens = self.tokens + elapsed * self.rate
            self.tokens = tokens if tokens < self.burst else self.burst
            self.stamp = now
        return self.tokens

    def take(self, now: float) -> bool:
        """Take one token if there is one; True if the request is allowed."""
        tokens = self._refill(now)
        if tokens < 1.0 - _EPS:
            return False
        self.tokens = tokens - 1.0 if tokens >= 1.0 else 0.0
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until one token is available (0.0 if one is available now)."""
        missing = 1.0 - self._refill(now)
        return missing / self.rate if missing > _EPS else 0.0

    def remaining(self, now: float) -> int:
        """Whole tokens available now (RateLimit-Remaining)."""
        return int(self._refill(now) + _EPS)

    def reset_after(self, now: float) -> float:
        """Seconds until the bucket is full again (RateLimit-Reset)."""
        missing = self.burst - self._refill(now)
        return missing / self.rate if missing > _EPS else 0.0

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst}, tokens={self.tokens:.3f}, stamp={self.stamp})"


class Decision(NamedTuple):
    """The outcome of one ``BucketTable.take``, with what the IETF RateLimit headers need.

    ``limit`` is the burst (RateLimit-Limit), ``remaining`` the whole tokens left after this
    request (RateLimit-Remaining), ``reset`` the seconds until the bucket is full again
    (RateLimit-Reset) and ``retry_after`` the seconds until the next request would be allowed
    (Retry-After on a 429; 0.0 when this one was allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset: float
    retry_after: float


class _Slot:
    """A keyed bucket's state; rate and burst live once on the table."""

    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class BucketTable:
    """Token buckets per key (a client IP, an API key …) in bounded memory.

    Every key has a bucket of ``burst`` tokens refilled at ``rate`` per second; a key seen for
    the first time gets a full one. Buckets live in an ``OrderedDict`` kept in least-recently-
    used order, so the cold end also holds the oldest ``stamp``.

    Memory is bounded two ways:

    * **Idle expiry.** A bucket untouched for ``burst / rate`` seconds has refilled to full, and a
      full bucket behaves exactly like the fresh one a new key gets: dropping it loses nothing.
      Each ``take`` drops up to two such buckets from the cold end (``expired_total``).
      ``idle_after`` defaults to that refill time; it may be longer, never shorter (a shorter one
      would hand clients fresh bursts early).
    * **The ``max_keys`` bound.** When a new key would make the table hold more than ``max_keys``
      buckets, the least recently used one is evicted (``evicted_total``). If that bucket was
      not yet full, its client gets a fresh, full bucket on its next request: the documented
      price of bounded memory under a flood of distinct keys. Size ``max_keys`` above the number
      of clients active within ``burst / rate`` seconds and that never happens.

    Per call: one dict lookup, ``move_to_end`` and float arithmetic; a new key allocates one
    small slotted object (and may free one).
    """

    __slots__ = ("rate", "burst", "limit", "max_keys", "idle_after", "buckets", "evicted_total", "expired_total")

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000, idle_after: float | None = None) -> None:
        idle_after = check_table(rate, burst, max_keys, idle_after)
        self.rate = rate
        self.burst = burst
        self.limit = int(burst)
        self.max_keys = max_keys
        self.idle_after = idle_after
        self.buckets: OrderedDict[str, _Slot] = OrderedDict()
        self.evicted_total = 0
        self.expired_total = 0

    def __len__(self) -> int:
        return len(self.buckets)

    def __contains__(self, key: object) -> bool:
        return key in self.buckets

    def take(self, key: str, now: float) -> Decision:
        """Take one token from ``key``'s bucket and say whether the request is allowed."""
        buckets = self.buckets
        self._sweep(now)  # first: a bucket it drops was full, the same as the fresh one below
        slot = buckets.get(key)
        if slot is None:
            slot = buckets[key] = _Slot(self.burst, now)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
                self.evicted_total += 1
        else:
            buckets.move_to_end(key)
            elapsed = now - slot.stamp
            if elapsed > 0:
                tokens = slot.tokens + elapsed * self.rate
                slot.tokens = tokens if tokens < self.burst else self.burst
                slot.stamp = now
        return self._decide(slot)

    def _decide(self, slot: _Slot) -> Decision:
        tokens = slot.tokens
        rate = self.rate
        if tokens < 1.0 - _EPS:
            return Decision(False, self.limit, 0, (self.burst - tokens) / rate, (1.0 - tokens) / rate)
        tokens = slot.tokens = tokens - 1.0 if tokens >= 1.0 else 0.0
        return Decision(True, self.limit, int(tokens + _EPS), (self.burst - tokens) / rate, 0.0)

    def _sweep(self, now: float) -> None:
        """Drop up to ``_SWEEP_PER_TAKE`` buckets idle for ``idle_after`` from the cold end."""
        buckets = self.buckets
        horizon = now - self.idle_after
        for _ in range(_SWEEP_PER_TAKE):
            if not buckets:
                return
            oldest = next(iter(buckets.values()))
            if oldest.stamp > horizon:
                return
            buckets.popitem(last=False)
            self.expired_total += 1

    def peek(self, key: str, now: float) -> TokenBucket:
        """A detached copy of ``key``'s bucket as of ``now`` (a full one if unknown); for status pages."""
        slot = self.buckets.get(key)
        if slot is None:
            return TokenBucket(self.rate, self.burst, now)
        bucket = TokenBucket(self.rate, self.burst, slot.stamp, slot.tokens)
        bucket._refill(now)
        return bucket

    def __repr__(self) -> str:
        return f"BucketTable(rate={self.rate}, burst={self.burst}, max_keys={self.max_keys}, keys={len(self.buckets)})"
