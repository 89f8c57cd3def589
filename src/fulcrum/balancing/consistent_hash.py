# Consistent hashing with bounded loads: a request key (client IP, a header or a cookie)
# maps to the same backend in every pick and every process; ring or Maglev lookup table.
from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: header and cookie names
_KEY_FORMS = "'client_ip', 'header:<Name>' or 'cookie:<name>'"
_CLIENT_IP, _HEADER, _COOKIE = 0, 1, 2


def stable_hash(data: bytes) -> int:
    """64-bit hash that is the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def cookie_value(header: bytes | None, name: bytes) -> bytes | None:
    """The value of cookie ``name`` in a ``Cookie`` header value, or None."""
    if not header or name not in header:
        return None
    for part in header.split(b";"):
        k, sep, v = part.partition(b"=")
        if sep and k.strip() == name:
            v = v.strip()
            if len(v) >= 2 and v[0] == 0x22 and v[-1] == 0x22:  # "quoted"
                v = v[1:-1]
            return v
    return None


def build_ring(ids: Sequence[str], weights: Sequence[int], replicas: int) -> tuple[list[int], list[int]]:
    """Sorted ring points and, in the same order, the index of the backend owning each.

    A backend gets ``replicas * weight`` points (weights reduced by their gcd
    first, so 100:300 costs no more than 1:3); point k of a backend always hashes
    the same, so changing one weight moves only that backend's points.
    """
    unit = math.gcd(*(w for w in weights if w >= 1)) or 1
    points: list[tuple[int, int]] = []
    for idx, (bid, w) in enumerate(zip(ids, weights)):
        prefix = bid.encode() + b"#"
        for k in range(replicas * (w // unit) if w >= 1 else 0):
            points.append((stable_hash(prefix + str(k).encode()), idx))
    points.sort()
    return [p for p, _ in points], [o for _, o in points]


def build_maglev(ids: Sequence[str], weights: Sequence[int], size: int) -> list[int]:
    """A Maglev lookup table (Eisenbud et al., NSDI 2016): slot -> backend index.

    Each backend walks its own permutation of the slots (offset + j * skip,
    size prime) and claims the next free one in turn. Weighted as Envoy does:
    in round r a backend takes a turn while ``count * max_weight < r * weight``,
    so slot counts are proportional to weight.
    """
    live = [i for i, w in enumerate(weights) if w >= 1]
    if not live:
        return []
    table = [-1] * size
    cursor = [0] * len(ids)
    skip = [1] * len(ids)
    for i in live:
        d = hashlib.blake2b(ids[i].encode(), digest_size=16).digest()
        cursor[i] = int.from_bytes(d[:8], "big") % size
        skip[i] = int.from_bytes(d[8:], "big") % (size - 1) + 1
    w_max = max(weights)
    count = [0] * len(ids)
    filled = 0
    rnd = 0
    while True:
        rnd += 1
        for i in live:
            if count[i] * w_max >= rnd * weights[i]:
                continue
            c, s = cursor[i], skip[i]
            while table[c] >= 0:
                c += s
                if c >= size:
                    c -= size
            table[c] = i
            count[i] += 1
            cursor[i] = c
            filled += 1
            if filled == size:
                return table


class ConsistentHash(Strategy):
    """Same key, same backend; with bounded loads so a hot key cannot sink one.

    The lookup structure (ring or Maglev table) is built once per instance from
    the backends' ids and weights, and rebuilt only if a weight changes to
    another value >= 1. Per pick: hash the key, find its owner, then walk on
    (ring order / table order) past owners that are unavailable or over the
    load bound. So a backend going down moves only its own keys, and keys come
    home when it returns.

    Bounded load (Mirrokni et al., "Consistent Hashing with Bounded Loads"): a
    backend may take the request while ``in_flight + 1 <= ceil(load_factor *
    (total_in_flight + 1) * weight / total_weight)`` over available backends,
    i.e. ``ceil(load_factor * (total + 1) / n)`` with equal weights. Some
    backend always satisfies it, so the walk ends.
    """

    class Options(BaseModel):
        """Options of ``consistent_hash``; defaults in brackets."""

        model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

        key: str = "client_ip"
        """What to hash: 'client_ip' [default], 'header:<Name>' or 'cookie:<name>'.
        A request without the header or cookie falls back to its client IP."""
        algorithm: Literal["ring", "maglev"] = "ring"
        """'ring' [default]: hash ring with virtual nodes, minimal key movement.
        'maglev': lookup table, O(1) lookups and a more even spread."""
        load_factor: float = Field(1.25, gt=1.0, allow_inf_nan=False)
        """How far above the (weighted) average load a backend may go [1.25]."""
        replicas: int = Field(160, ge=1, le=10_000)
        """Ring points per unit of weight [160]."""
        table_size: int = Field(65537, ge=3, le=1_000_003)
        """Maglev table slots; a prime well above the number of backends [65537]."""

        @field_validator("key")
        @classmethod
        def _key_form(cls, v: str) -> str:
            kind, sep, name = v.partition(":")
            if v == "client_ip" or (sep and kind in ("header", "cookie") and _TOKEN.fullmatch(name)):
                return v
            raise ValueError(f"must be {_KEY_FORMS} (got {v!r})")

        @field_validator("table_size")
        @classmethod
        def _prime(cls, v: int) -> int:
            if not _is_prime(v):
                raise ValueError(f"must be a prime number (got {v}; e.g. 65537 or 5003)")
            return v

    __slots__ = ("_kind", "_name", "_load_factor", "_maglev", "_weights", "_points", "_owners")
    name = "consistent_hash"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        opts = self.options
        if opts is None:
            opts = self.Options()
        elif not isinstance(opts, self.Options):
            opts = self.Options.model_validate(opts)
        self.options = opts
        if opts.algorithm == "maglev" and opts.table_size < len(self.backends):
            raise ValueError(
                f"consistent_hash: table_size must be >= the number of backends "
                f"({len(self.backends)}), got {opts.table_size}"
            )
        kind, _, name = opts.key.partition(":")
        self._kind = {"client_ip": _CLIENT_IP, "header": _HEADER, "cookie": _COOKIE}[kind]
        self._name = name.lower().encode() if kind == "header" else name.encode()
        self._load_factor = opts.load_factor
        self._maglev = opts.algorithm == "maglev"
        self._build()

    def _build(self) -> None:
        """Build the lookup structure from the current weights (provisioning work)."""
        ids = [b.id for b in self.backends]
        self._weights = [b.weight for b in self.backends]
        if self._maglev:
            self._points = None
            self._owners = build_maglev(ids, self._weights, self.options.table_size)
        else:
            self._points, self._owners = build_ring(ids, self._weights, self.options.replicas)

    def key(self, request: RequestInfo) -> bytes:
        """The bytes hashed for ``request``: the configured key, else the client IP."""
        kind = self._kind
        if kind == _HEADER:
            v = request.header(self._name)
            if v:
                return v
        elif kind == _COOKIE:
            v = cookie_value(request.header(b"cookie"), self._name)
            if v:
                return v
        return request.client_ip.encode()

    def pick(self, request: RequestInfo) -> Backend | None:
        backends = self.backends
        built = self._weights
        total_load = 0
        total_weight = 0
        stale = False
        for i, b in enumerate(backends):
            w = b.weight
            if w >= 1:
                if w != built[i]:
                    stale = True
                if b.available:
                    total_load += b.in_flight
                    total_weight += w
        if total_weight == 0:
            return None
        if stale:
            self._build()
        return self._walk(stable_hash(self.key(request)), total_load, total_weight)

    def _walk(self, h: int, total_load: int, total_weight: int) -> Backend | None:
        """From the key's position, the first eligible owner under the load bound."""
        owners = self._owners
        size = len(owners)
        if size == 0:
            return None
        pos = bisect_right(self._points, h) if self._points is not None else h % size
        if pos == size:
            pos = 0
        # in_flight + 1 <= ceil(x)  <=>  in_flight < x, for integer in_flight
        per_weight = self._load_factor * (total_load + 1) / total_weight
        backends = self.backends
        n = len(backends)
        fallback = None
        rejected = 0
        distinct = 0
        for _ in range(size):
            idx = owners[pos]
            bit = 1 << idx
            if not rejected & bit:
                b = backends[idx]
                if b.available and b.weight >= 1:
                    if b.in_flight < per_weight * b.weight:
                        return b
                    if fallback is None:
                        fallback = b
                rejected |= bit
                distinct += 1
                if distinct == n:
                    break
            pos += 1
            if pos == size:
                pos = 0
        return fallback
