# One view of many processes: the supervisor's admin API merges its own metrics and status
# with every worker's, so /metrics and /api/v1/status read as if one process served it all.
#
# Pure data in, data out: nothing here talks to a worker or reads a clock. Invariants:
# merged counters and histograms never go backwards while a worker slot is restarted
# (``MetricsAggregate.retire``), a worker's unreadable exposition never breaks a scrape,
# and ``merge_status`` returns new dicts shaped like ``fulcrum.admin.status.status()``
# without changing its inputs.
from __future__ import annotations

import copy
import logging
import operator
from typing import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

log = logging.getLogger("fulcrum.cluster")

# How each family's samples combine across processes. Keys are family names as
# prometheus_client's parser gives them: counters without ``_total``; info families
# arrive as gauges that keep ``_info`` (text format 0.0.4 has no info type).
SUPERVISOR = "supervisor"  # the supervisor's samples only; workers' copies are ignored
WORKERS = "workers"        # the workers' samples summed; the supervisor's copy is ignored
SUM = "sum"                # supervisor + workers (+ retired workers' counts): the whole instance
MAX = "max"
MIN = "min"
WORKERS_MAX = "workers_max"  # the largest of the workers' values; the supervisor's is ignored

RULES: dict[str, str] = {
    # The supervisor owns config, membership and health checks: its values are the truth,
    # and workers' copies are at best the same and at worst a reload behind.
    "fulcrum_build_info": SUPERVISOR,
    "fulcrum_config_reloads": SUPERVISOR,      # the supervisor reloads; workers just apply it
    "fulcrum_backend_weight": SUPERVISOR,
    "fulcrum_backend_healthy": SUPERVISOR,     # the supervisor runs the active checks
    "fulcrum_backend_enabled": SUPERVISOR,
    "fulcrum_workers": SUPERVISOR,             # supervisor-only families
    "fulcrum_worker_restarts": SUPERVISOR,
    # Each worker has its own breakers; the supervisor's never see traffic. The sum per
    # (pool, backend, state) is how many workers have that breaker in that state.
    "fulcrum_circuit_breaker_state": WORKERS,
    # Flags and estimates: "1 if any process says so" and the most pessimistic latency.
    # Available and panic are the workers' own (breakers and ejections count there; the
    # supervisor's pools see health only): available is 1 if any worker may pick the
    # backend, so traffic can still reach it.
    "fulcrum_backend_ejected": MAX,
    "fulcrum_backend_available": WORKERS_MAX,
    "fulcrum_backend_latency_ewma_seconds": MAX,
    "fulcrum_pool_panic": WORKERS_MAX,
    "process_max_fds": MAX,                    # a limit, not an amount: summing means nothing
    "python_info": MAX,                        # same labels everywhere; the value stays 1
    "process_start_time_seconds": MIN,         # the instance started with its first process
    # Everything else is an amount the instance as a whole has: requests, bytes, histogram
    # buckets, in-flight requests, connections, tunnels, CPU seconds, memory, open fds.
}

_OPS: dict[str, Callable[[float, float], float]] = {
    SUPERVISOR: operator.add, WORKERS: operator.add, SUM: operator.add, MAX: max, MIN: min,
    WORKERS_MAX: max}
# Which source a rule reads (None: every source).
_SOURCE = {SUPERVISOR: SUPERVISOR, WORKERS: WORKERS, WORKERS_MAX: WORKERS}
# Families whose samples only grow; a dead worker's last values are carried over.
_CUMULATIVE = {"counter", "histogram", "summary"}
_CREATED = "_created"


def rule_for(family: str) -> str:
    """The merge rule of a family (by its parsed name); SUM unless ``RULES`` says otherwise."""
    rule = RULES.get(family)
    if rule is None and family.endswith(_CREATED):
        # prometheus_client's own Counter and Histogram add a creation-time gauge beside
        # the family: it follows a supervisor-owned family, otherwise the earliest wins.
        parent = RULES.get(family[: -len(_CREATED)])
        rule = SUPERVISOR if parent == SUPERVISOR else MIN
    return rule or SUM


SampleKey = tuple[str, frozenset]  # (sample name, label pairs)


class _Family:
    """One parsed family: its metadata and its samples by (sample name, labels)."""

    __slots__ = ("name", "type", "documentation", "samples")

    def __init__(self, name: str, type: str, documentation: str) -> None:
        self.name = name
        self.type = type
        self.documentation = documentation
        self.samples: dict[SampleKey, float] = {}


Exposition = dict[str, _Family]  # family name -> family, in exposition order


def parse(text: str) -> Exposition:
    """A text exposition as families; raises whatever the parser raises on bad input."""
    families: Exposition = {}
    for parsed in text_string_to_metric_families(text):
        family = families.get(parsed.name)
        if family is None:
            family = families[parsed.name] = _Family(parsed.name, parsed.type, parsed.documentation)
        for s in parsed.samples:
            family.samples[(s.name, _label_key(s.labels))] = s.value
    return families


def _label_key(labels: dict[str, str]) -> frozenset:
    # Bucket bounds are numbers written as text; one spelling per number so "1" and "1.0"
    # from two processes land in the same bucket.
    out = {}
    for name, value in labels.items():
        if name in ("le", "quantile"):
            try:
                value = floatToGoString(float(value))
            except ValueError:
                pass
        out[name] = value
    return frozenset(out.items())


class MetricsAggregate:
    """The latest Prometheus exposition of every worker slot, merged with the
    supervisor's own at render time according to ``RULES``.

    ``update`` keeps a slot's latest scrape; ``retire`` is called when the process in a
    slot died, before its replacement's first ``update``: the dead process's counters
    and histograms are folded into a carried-over total added to every later render, so
    merged counters never go backwards; its gauges are forgotten. What it counted after
    its last scrape is lost. Not thread-safe: use it from the supervisor's loop.

    A process is told apart by its ``process_start_time_seconds``: a scrape of a process
    already retired from the slot (one that answered just before it died) is dropped
    rather than counted twice, and a new process in a slot that was never retired
    retires the old one first. Without that sample only ``retire`` says so.
    """

    def __init__(self) -> None:
        self._workers: dict[int, Exposition] = {}
        self._carried: Exposition = {}
        self._retired_start: dict[int, float] = {}  # slot -> start time of its last dead process

    @property
    def slots(self) -> list[int]:
        """Worker slots with a known exposition."""
        return sorted(self._workers)

    def update(self, worker: int, text: str) -> None:
        """Remember ``text`` as the latest exposition of slot ``worker``. Text that does
        not parse is logged and dropped; the slot keeps its previous exposition."""
        try:
            parsed = parse(text)
        except Exception as exc:  # the parser raises more than ValueError on odd input
            log.warning("worker metrics unreadable; keeping the previous scrape",
                        extra={"fields": {"worker": worker, "error": repr(exc)[:200]}})
            return
        started = _start_time(parsed)
        if started is not None and started == self._retired_start.get(worker):
            return  # late: its counts were carried over when it was retired
        current = self._workers.get(worker)
        if current is not None and started is not None and _start_time(current) not in (None, started):
            self.retire(worker)
        self._workers[worker] = parsed

    def retire(self, worker: int) -> None:
        """The process in slot ``worker`` died: carry its counts over, forget its gauges."""
        dead = self._workers.pop(worker, None)
        if dead is None:
            return
        started = _start_time(dead)
        if started is not None:
            self._retired_start[worker] = started
        for family in dead.values():
            if family.type in _CUMULATIVE and rule_for(family.name) in (SUM, WORKERS):
                _fold(self._carried, family)

    def render(self, supervisor_text: str) -> bytes:
        """The merged exposition (text format 0.0.4). ``supervisor_text`` is the
        supervisor's own ``generate_latest`` output; unlike a worker's, it must parse."""
        sources = [(SUPERVISOR, parse(supervisor_text))]
        sources += [(WORKERS, self._workers[slot]) for slot in sorted(self._workers)]
        sources.append((WORKERS, self._carried))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(list(_merge(sources))))
        return generate_latest(registry)


def _start_time(exposition: Exposition) -> float | None:
    family = exposition.get("process_start_time_seconds")
    return family.samples.get(("process_start_time_seconds", frozenset())) if family else None


def _fold(into: Exposition, family: _Family) -> None:
    kept = into.get(family.name)
    if kept is None:
        kept = into[family.name] = _Family(family.name, family.type, family.documentation)
    for key, value in family.samples.items():
        if any(name == "quantile" for name, _ in key[1]):
            continue  # a summary's quantiles are not amounts; its _count and _sum are
        kept.samples[key] = kept.samples.get(key, 0.0) + value


def _merge(sources: list[tuple[str, Exposition]]) -> Iterator[Metric]:
    """Each family once, in order of first appearance, its samples combined by its rule."""
    names = dict.fromkeys(name for _, families in sources for name in families)
    for name in names:
        rule = rule_for(name)
        wanted = [families[name] for role, families in sources
                  if name in families and _SOURCE.get(rule, role) == role]
        if wanted:
            yield _combined(wanted, _OPS[rule])


def _combined(families: list[_Family], op: Callable[[float, float], float]) -> Metric:
    first = families[0]  # metadata from the first process that has the family
    values: dict[SampleKey, float] = {}
    for family in families:
        for key, value in family.samples.items():
            values[key] = op(values[key], value) if key in values else value
    metric = Metric(first.name, first.documentation, first.type)
    metric.samples = [Sample(name, dict(labels), value) for (name, labels), value in values.items()]
    return metric


class _Families:
    """A one-shot collector over already-merged families (what ``generate_latest`` reads)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


# -- status ------------------------------------------------------------------------------
# Breaker states from least to most severe: the merged row shows the worst worker's.
_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}
_PERCENTILES = ("p50", "p90", "p99")


def merge_status(base: dict, workers: list[dict]) -> dict:
    """The supervisor's ``status()`` (``base``: membership, config, health; no traffic)
    merged with the workers' ``status()`` dicts (traffic and passive resilience state).

    Pools and backends are those of ``base``: a pool or backend a worker does not know
    contributes nothing from that worker, and one only a worker knows is not shown."""
    merged = {key: copy.deepcopy(value) for key, value in base.items() if key != "pools"}
    merged["open_connections"] = sum(w["open_connections"] for w in workers)
    merged["requests_total"] = sum(w["requests_total"] for w in workers)
    merged["pools"] = [merge_pool(pool, _pools_named(workers, pool["name"])) for pool in base["pools"]]
    return merged


def _pools_named(workers: list[dict], name: str) -> list[dict]:
    return [pool for w in workers for pool in w["pools"] if pool["name"] == name]


def merge_pool(base_pool: dict, worker_pools: list[dict]) -> dict:
    """One pool of ``status()`` (as ``pool_status`` returns it) merged with the same pool
    from each worker; its ``backends`` list is what /pools/{pool}/backends answers."""
    merged = {key: copy.deepcopy(value) for key, value in base_pool.items() if key != "backends"}
    sources = [base_pool, *worker_pools]  # the supervisor's traffic is zero: adding it is harmless
    merged["in_flight"] = sum(p["in_flight"] for p in sources)
    merged["requests"] = sum(p["requests"] for p in sources)
    merged["panicking"] = any(p["panicking"] for p in sources)
    rows = merge_rows(base_pool["backends"], [p["backends"] for p in worker_pools], merged["requests"])
    merged["available"] = sum(1 for row in rows if row["available"])
    merged["backends"] = rows
    return merged


def merge_rows(base_rows: list[dict], worker_rows_lists: list[list[dict]],
               pool_requests: int | None = None) -> list[dict]:
    """Backend rows of one pool, matched by id: ``base_rows`` from the supervisor, one
    list per worker. ``share_of_traffic`` is over ``pool_requests`` (the merged pool's
    requests), or over the merged rows' requests when not given. Under membership skew
    (a worker still sending to a backend the supervisor removed) shares may add up to
    less than 1: the rest went to backends not shown."""
    by_id = [{row["id"]: row for row in rows} for rows in worker_rows_lists]
    merged = [merge_row(base, [rows[base["id"]] for rows in by_id if base["id"] in rows])
              for base in base_rows]
    total = pool_requests if pool_requests is not None else sum(row["requests"] for row in merged)
    for row in merged:
        row["share_of_traffic"] = row["requests"] / total if total else 0.0
    return merged


def merge_row(base: dict, rows: list[dict]) -> dict:
    """One backend: ``base`` (the supervisor's row) with the rows of the workers that know
    it. ``share_of_traffic`` is left as base's; ``merge_rows`` sets it from the pool."""
    merged = copy.deepcopy(base)  # config, health check, weights: the supervisor's
    sources = [base, *rows]
    for key in ("in_flight", "requests", "failures"):
        merged[key] = sum(s[key] for s in sources)
    merged["responses"] = _sum_counts(s["responses"] for s in sources)
    if base["last_error"] is None:
        merged["last_error"] = next((r["last_error"] for r in rows if r["last_error"] is not None), None)
    merged["ejected"] = any(s["ejected"] for s in sources)
    # The supervisor knows enabled and healthy; a worker also knows its breaker and
    # ejections. The backend is available if any worker may still pick it.
    merged["available"] = base["available"] and (not rows or any(r["available"] for r in rows))
    merged["latency"] = _latency([s["latency"] for s in sources])
    merged["breaker"] = _breaker([*(r["breaker"] for r in rows), base["breaker"]])
    merged["outlier"] = _outlier([s["outlier"] for s in sources])
    merged["effective_weight"] = base["effective_weight"] if merged["available"] else 0.0
    merged["state"] = merged_state(merged, base["state"])
    return merged


def _sum_counts(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in dicts:
        for key, n in counts.items():
            out[key] = out.get(key, 0) + n
    return out


def _latency(latencies: list[dict]) -> dict:
    """EWMA: the mean of the processes that measured one. Percentiles: the slowest
    process's, an upper bound (percentiles of separate samples do not combine exactly)."""
    ewmas = [lat["ewma"] for lat in latencies if lat.get("ewma") is not None]
    merged = {"ewma": sum(ewmas) / len(ewmas) if ewmas else None,
              "samples": sum(lat.get("samples", 0) for lat in latencies)}
    for point in _PERCENTILES:
        values = [lat[point] for lat in latencies if lat.get(point) is not None]
        if values:
            merged[point] = max(values)
    return merged


def _breaker(breakers: list[dict | None]) -> dict | None:
    """The most severe state, with that worker's reason and retry time (the first such
    worker; base comes last so its untouched breaker is shown only if no worker has one)."""
    present = [b for b in breakers if b is not None]
    if not present:
        return None
    worst = max(present, key=lambda b: _SEVERITY.get(b["state"], 0))  # max keeps the first
    merged = dict(worst)
    merged["consecutive_failures"] = max(b["consecutive_failures"] for b in present)
    merged["opened_total"] = sum(b["opened_total"] for b in present)
    return merged


def _outlier(outliers: list[dict | None]) -> dict | None:
    present = [o for o in outliers if o is not None]
    if not present:
        return None
    left = [o["ejected_for"] for o in present if o["ejected_for"] is not None]
    return {"ejected": any(o["ejected"] for o in present),
            "ejected_for": max(left) if left else None,
            "times_ejected": sum(o["times_ejected"] for o in present)}


def merged_state(row: dict, base_state: str) -> str:
    """``status.backend_state`` over a merged row: the most important reason first.
    Slow start is the supervisor's to know (it ramps from its health checks)."""
    if not row["enabled"]:
        return "draining" if row["in_flight"] else "disabled"
    if not row["healthy"]:
        return "unhealthy"
    if row["ejected"]:
        return "ejected"
    breaker = row["breaker"]
    if breaker is not None and breaker["state"] != "closed":
        return "breaker_open" if breaker["state"] == "open" else "probing"
    return "slow_start" if base_state == "slow_start" else "up"
