"""One upstream server as the balancer sees it: address, weight and live counters.

A Backend is shared by the strategy (which reads it) and the proxy (which updates
``in_flight`` and ``latency`` around every exchange). It holds no sockets.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from fulcrum.balancing.ewma import PeakEwma


class Backend:
    """An upstream server: ``http://host:port`` with a weight and in-flight count.

    ``available`` is the one flag strategies look at; the pool recomputes it from
    ``enabled``, ``healthy``, ``ejected`` and the breaker whenever one of them
    changes, so picking stays a plain read.
    """

    __slots__ = (
        "id", "url", "host", "port", "weight", "in_flight", "available",
        "enabled", "healthy", "ejected", "breaker", "ramp", "latency", "requests",
        "failures", "last_error",
    )

    def __init__(self, url: str, weight: int = 1, id: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"backend url must be http://host:port (got {url!r})")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.id = id or f"{self.host}:{self.port}"
        self.weight = weight
        self.in_flight = 0
        self.enabled = True      # operator's switch (admin API)
        self.healthy = True      # active health checks
        self.ejected = False     # passive outlier detection
        self.breaker = None      # CircuitBreaker, when the pool has one
        self.ramp = 1.0          # slow start: share of its picks a recovering backend accepts
        self.available = True    # what strategies read; recomputed by the pool
        self.latency = PeakEwma()
        self.requests = 0
        self.failures = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"Backend({self.id!r}, weight={self.weight}, in_flight={self.in_flight})"
