"""Prometheus metrics: per-request figures aggregated in plain Python on the hot path,
and everything else read from live state when Prometheus scrapes.

Invariant: the proxy's only call is ``RequestMetrics.observe(exchange)``, once per
finished request; it touches plain ints and lists (no locks, no prometheus_client
objects), and ``FulcrumCollector`` turns them into metric families at scrape time.
Gauges such as in-flight requests or breaker state are never recorded at all: the
collector reads them off the backends, so they cost the data plane nothing.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily,
)
from prometheus_client.registry import Collector

from fulcrum import __version__

if TYPE_CHECKING:
    from fulcrum.balancing.backend import Backend


class ServedProxy(Protocol):
    """What the metrics read of the proxy listener (proxy/server.py): counts and the runtime."""

    connections: set
    refused_total: int
    tunnels_opened: int
    tunnels_closed: int
    runtime: object  # its pools: backends and their state

# Seconds; fine at the low end, where a load balancer's own time lives.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0)
# Recent upstream latencies kept per backend for the dashboard's percentiles.
RECENT_SAMPLES = 256
# llhttp accepts only registered methods, but label values stay few and known.
_METHODS = {m.encode(): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")}
_STATUS_CLASS = {0: "none", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_BREAKER_STATES = ("closed", "open", "half_open")


class _Series:
    """Counts for one (pool, backend, method, status class, route) combination."""

    __slots__ = ("requests", "bytes_in", "bytes_out", "retries", "rate_limited",
                 "duration", "duration_sum", "upstream", "upstream_sum")

    def __init__(self, buckets: int) -> None:
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.retries = 0
        self.rate_limited = 0
        self.duration = [0] * (buckets + 1)   # per bucket, not cumulative; last is +Inf
        self.duration_sum = 0.0
        self.upstream = [0] * (buckets + 1)
        self.upstream_sum = 0.0

    def merge(self, other: _Series) -> None:
        for name in ("requests", "bytes_in", "bytes_out", "retries", "rate_limited", "duration_sum",
                     "upstream_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duration = [a + b for a, b in zip(self.duration, other.duration)]
        self.upstream = [a + b for a, b in zip(self.upstream, other.upstream)]


def bucket(bounds: tuple[float, ...], value: float) -> int:
    """The index of the first bound >= ``value`` (``bisect_left``), written out: a C loop over
    doubles in the compiled core, where bisect is a Python call that boxes ``value``."""
    lo, hi = 0, len(bounds)
    while lo < hi:
        mid = (lo + hi) // 2
        bound = bounds[mid]
        if bound < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


class RequestMetrics:
    """What finished requests add up to, kept as plain numbers until a scrape.

    ``count`` is the one hot-path call (``observe`` reads an exchange's fields for it): a tuple, a dict lookup, a few integer
    additions and two ``bucket`` searches. ``series`` maps
    ``(pool, backend, method, status // 100, route)`` to its counts, with the
    Pool and Backend objects themselves as keys (hashing by identity is cheaper
    than reading names); the collector turns them into labels and sums over the
    labels each metric does not carry. ``retire`` folds the series of pools and
    backends that are gone (removed, or replaced by a reload) into ``retired``,
    keyed by label values, so the old objects can be freed and the counters
    never go back. ``recent[backend]`` holds the last ``RECENT_SAMPLES`` upstream
    latencies of each backend (dashboard percentiles).
    """

    __slots__ = ("bounds", "series", "retired", "recent")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.series: dict[tuple, _Series] = {}
        self.retired: dict[tuple[str, str, str, str, str], _Series] = {}
        self.recent: dict[Backend, deque[float]] = {}

    def observe(self, exchange) -> None:
        """Count one finished request, as the log phase sees it (an exchange, or a rejection
        answered before one was made)."""
        self.count(exchange.pool, exchange.backend, exchange.method, exchange.status, exchange.route,
                   exchange.body_bytes, exchange.bytes_out, exchange.tries, exchange.rate_limited,
                   exchange.duration, exchange.upstream_time)

    def count(self, pool, backend, method: bytes, status: int, route: str, bytes_in: int, bytes_out: int,
              tries: int, rate_limited: bool, duration: float, upstream: float) -> None:
        """Count one finished request from its fields (``pool`` and ``backend`` may be None)."""
        key = (pool, backend, method, status // 100, route)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series(len(self.bounds))
        s.requests += 1
        s.bytes_in += bytes_in
        s.bytes_out += bytes_out
        if tries > 1:
            s.retries += tries - 1
        if rate_limited:
            s.rate_limited += 1
        bounds = self.bounds
        s.duration[bucket(bounds, duration)] += 1
        s.duration_sum += duration
        if upstream and backend is not None:
            s.upstream[bucket(bounds, upstream)] += 1
            s.upstream_sum += upstream
            recent = self.recent.get(backend)
            if recent is None:
                recent = self.recent[backend] = deque(maxlen=RECENT_SAMPLES)
            recent.append(upstream)

    def labelled(self) -> Iterator[tuple[tuple[str, str, str, str, str], _Series]]:
        """Each series with its labels: (pool, backend, method, status class, route)."""
        for key, s in list(self.series.items()):
            yield _labels(key), s
        yield from list(self.retired.items())

    def retire(self, pools: dict) -> None:
        """Fold the series of pools and backends no longer in ``pools`` into ``retired``
        (scrape time, not the hot path)."""
        live_pools = set(pools.values())
        live_backends = {b for pool in live_pools for b in pool.backends}
        for key in list(self.series):
            pool, backend = key[0], key[1]
            if (pool is None or pool in live_pools) and (backend is None or backend in live_backends):
                continue
            labels = _labels(key)
            gone = self.series.pop(key)
            kept = self.retired.get(labels)
            if kept is None:
                self.retired[labels] = gone
            else:
                kept.merge(gone)
        for backend in [b for b in self.recent if b not in live_backends]:
            del self.recent[backend]

    def total_requests(self) -> int:
        return sum(s.requests for _, s in self.labelled())

    def responses(self) -> dict[tuple[str, str], dict[str, int]]:
        """Finished requests by (pool, backend) and status class."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for (pool, backend, _method, status, _route), s in self.labelled():
            counts = out.setdefault((pool, backend), {})
            counts[status] = counts.get(status, 0) + s.requests
        return out

    def percentiles(self, backend: Backend, points: Iterable[float] = (0.5, 0.9, 0.99)) -> dict[str, float] | None:
        """Upstream latency percentiles in seconds over the backend's recent responses."""
        samples = sorted(self.recent.get(backend, ()))
        if not samples:
            return None
        last = len(samples) - 1
        return {f"p{round(p * 100):d}": samples[min(last, int(p * len(samples)))] for p in points}


def _labels(key: tuple) -> tuple[str, str, str, str, str]:
    pool, backend, method, status, route = key
    return (pool.name if pool is not None else "", backend.id if backend is not None else "",
            _METHODS.get(method, "other"), _STATUS_CLASS.get(status, "other"), route)


class Metrics:
    """The admin side's metrics: a registry of its own with the process and platform
    collectors, the live-state collector, and the counts of cold-path events."""

    def __init__(self, proxy: "ServedProxy") -> None:
        self.requests = RequestMetrics()
        self.reloads = {"success": 0, "failure": 0}
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(FulcrumCollector(proxy, self))

    def record_reload(self, ok: bool) -> None:
        """Count one configuration reload (the hot-reload path calls this)."""
        self.reloads["success" if ok else "failure"] += 1


class FulcrumCollector(Collector):
    """Builds every ``fulcrum_*`` family at scrape time from the proxy's live state
    and the request aggregates. Reads only; never blocks the loop for long."""

    def __init__(self, proxy: "ServedProxy", metrics: Metrics) -> None:
        self.proxy = proxy
        self.metrics = metrics

    def collect(self) -> Iterator:
        yield InfoMetricFamily("fulcrum_build", "Fulcrum version.", value={"version": __version__})
        proxy = self.proxy
        yield GaugeMetricFamily("fulcrum_open_client_connections",
                                "Client connections open now.", value=len(proxy.connections))
        yield CounterMetricFamily("fulcrum_refused_connections",
                                  "Client connections refused over limits.max_connections(_per_ip).",
                                  value=proxy.refused_total)
        yield GaugeMetricFamily("fulcrum_open_tunnels", "WebSocket tunnels open now.",
                                value=proxy.tunnels_opened - proxy.tunnels_closed)
        yield CounterMetricFamily("fulcrum_tunnels", "WebSocket tunnels opened (after a 101).",
                                  value=proxy.tunnels_opened)
        reloads = CounterMetricFamily("fulcrum_config_reloads", "Configuration reloads by result.",
                                      labels=["result"])
        for result, count in self.metrics.reloads.items():
            reloads.add_metric([result], count)
        yield reloads
        pools = self.proxy.runtime.pools
        self.metrics.requests.retire(pools)
        yield from _request_families(self.metrics.requests)
        yield from _backend_families(pools)


def _request_families(requests: RequestMetrics) -> Iterator:
    """Requests, durations, bytes, retries and rate limiting from the aggregates.

    Series are summed by label values first: a backend removed and added again is
    two Backend objects but one set of labels."""
    totals: dict[tuple, list[int]] = {}
    by_backend: dict[tuple, list[int]] = {}
    by_route: dict[tuple, list[int]] = {}
    duration: dict[tuple, list] = {}
    upstream: dict[tuple, list] = {}
    for (pool, backend, method, status, route), s in requests.labelled():
        _add(totals, (pool, backend, method, status, route), (s.requests,))
        _add(by_backend, (pool, backend, route), (s.bytes_in, s.bytes_out))
        _add(by_route, (pool, route), (s.retries, s.rate_limited))
        _add_histogram(duration, (pool, route, method, status), s.duration, s.duration_sum)
        if backend:
            _add_histogram(upstream, (pool, backend), s.upstream, s.upstream_sum)
    yield _counter("fulcrum_requests", "Finished client requests.",
                   ["pool", "backend", "method", "status_class", "route"], totals, 0)
    labels = ["pool", "backend", "route"]
    yield _counter("fulcrum_request_body_bytes", "Request body bytes received from clients.", labels, by_backend, 0)
    yield _counter("fulcrum_response_body_bytes", "Response body bytes sent to clients.", labels, by_backend, 1)
    yield _counter("fulcrum_retries", "Retries (tries beyond the first).", ["pool", "route"], by_route, 0)
    yield _counter("fulcrum_rate_limited_requests", "Requests refused by rate limiting.", ["pool", "route"],
                   by_route, 1)
    yield _histogram("fulcrum_request_duration_seconds",
                     "Request duration as clients see it, from the request head to the response's end.",
                     ["pool", "route", "method", "status_class"], duration, requests.bounds)
    yield _histogram("fulcrum_upstream_duration_seconds",
                     "Time from sending a request to a backend until its response head arrived.",
                     ["pool", "backend"], upstream, requests.bounds)


def _counter(name: str, doc: str, labels: list[str], table: dict[tuple, list[int]],
             column: int) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, row in table.items():
        family.add_metric(list(key), row[column])
    return family


def _add(table: dict[tuple, list[int]], key: tuple, values: tuple[int, ...]) -> None:
    row = table.setdefault(key, [0] * len(values))
    for i, v in enumerate(values):
        row[i] += v


def _add_histogram(table: dict[tuple, list], key: tuple, counts: list[int], total: float) -> None:
    row = table.get(key)
    if row is None:
        table[key] = [list(counts), total]
        return
    merged = row[0]
    for i, c in enumerate(counts):
        merged[i] += c
    row[1] += total


def _histogram(name: str, doc: str, labels: list[str], table: dict[tuple, list],
               bounds: tuple[float, ...]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, (counts, total) in table.items():
        if not any(counts):
            continue
        cumulative, buckets = 0, []
        for bound, count in zip((*bounds, float("inf")), counts):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family.add_metric(list(key), buckets, total)
    return family


# Per-backend families: key, type, name, help. Counters lose their _total here and get it back
# on exposition, as prometheus_client's families expect.
_GAUGE, _COUNTER = GaugeMetricFamily, CounterMetricFamily
_BACKEND_FAMILIES = (
    ("in_flight", _GAUGE, "fulcrum_backend_in_flight_requests", "Requests in flight to the backend."),
    ("weight", _GAUGE, "fulcrum_backend_weight", "Configured weight."),
    ("healthy", _GAUGE, "fulcrum_backend_healthy", "1 when active health checks pass."),
    ("enabled", _GAUGE, "fulcrum_backend_enabled", "1 unless an operator drained or disabled it."),
    ("ejected", _GAUGE, "fulcrum_backend_ejected", "1 while outlier detection ejects it."),
    ("available", _GAUGE, "fulcrum_backend_available", "1 when the balancer may pick it."),
    ("latency", _GAUGE, "fulcrum_backend_latency_ewma_seconds", "Peak-EWMA response latency."),
    ("tries", _COUNTER, "fulcrum_upstream_requests", "Requests sent to the backend, retries included."),
    ("failures", _COUNTER, "fulcrum_upstream_failures", "Gateway failures (connect, reset, timeout, 502-504)."),
    ("opens", _COUNTER, "fulcrum_circuit_breaker_opens", "Times the circuit breaker opened."),
    ("ejections", _COUNTER, "fulcrum_outlier_ejections", "Ejections by outlier detection."),
)


def _backend_families(pools: dict) -> Iterator:
    """Per-backend state read off the live pools."""
    labels = ["pool", "backend"]
    fams = {key: kind(name, doc, labels=labels) for key, kind, name, doc in _BACKEND_FAMILIES}
    fams["breaker"] = GaugeMetricFamily("fulcrum_circuit_breaker_state", "1 for the breaker's current state.",
                                        labels=labels + ["state"])
    panic = GaugeMetricFamily("fulcrum_pool_panic", "1 while the pool balances over all backends (panic mode).",
                              labels=["pool"])
    for pool in list(pools.values()):
        panic.add_metric([pool.name], float(pool.panicking))
        for b in list(pool.backends):
            _backend_samples(fams, pool, b)
    yield panic
    yield from fams.values()


def _backend_samples(fams: dict, pool, b: Backend) -> None:
    key = [pool.name, b.id]
    fams["in_flight"].add_metric(key, b.in_flight)
    fams["weight"].add_metric(key, b.weight)
    fams["healthy"].add_metric(key, float(b.healthy))
    fams["enabled"].add_metric(key, float(b.enabled))
    fams["ejected"].add_metric(key, float(b.ejected))
    fams["available"].add_metric(key, float(b.available))
    fams["latency"].add_metric(key, b.latency.value if b.latency.observed else 0.0)
    fams["tries"].add_metric(key, b.requests)
    fams["failures"].add_metric(key, b.failures)
    if b.breaker is not None:
        state = b.breaker.state.value
        for name in _BREAKER_STATES:
            fams["breaker"].add_metric(key + [name], float(state == name))
        fams["opens"].add_metric(key, b.breaker.opened_total)
    if pool.outliers is not None:
        state = pool.outliers.state(b.id)
        fams["ejections"].add_metric(key, state.times_ejected if state is not None else 0)
