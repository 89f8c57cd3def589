"""Snapshots of the live state for the admin API: status, readiness, backend rows.

Read-only: nothing here changes a pool or a backend (the breaker and outlier
helpers called are the side-effect-free ones).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fulcrum import __version__, core

if TYPE_CHECKING:
    from fulcrum.balancing.backend import Backend
    from fulcrum.observability.metrics import RequestMetrics
    from fulcrum.runtime.pool import Pool
    from fulcrum.runtime.state import Runtime


def status(runtime: Runtime, metrics: RequestMetrics, open_connections: int, started_at: float) -> dict:
    """The whole picture: pools with their backends, and routes."""
    metrics.retire(runtime.pools)  # the dashboard polls this: old backends' objects are let go
    responses = metrics.responses()
    now = time.time()
    return {
        "version": __version__, "core": core.kind, "time": now, "uptime": now - started_at,
        "open_connections": open_connections, "requests_total": metrics.total_requests(),
        "pools": [pool_status(p, metrics, responses) for p in list(runtime.pools.values())],
        "routes": route_status(runtime),
    }


def pool_status(pool: Pool, metrics: RequestMetrics, responses: dict | None = None) -> dict:
    backends = list(pool.backends)
    if responses is None:
        responses = metrics.responses()
    total_requests = sum(b.requests for b in backends)
    total_weight = sum(b.weight for b in backends)
    now = pool.clock()
    rows = [backend_status(pool, b, metrics, responses.get((pool.name, b.id), {}),
                           total_requests, total_weight, now) for b in backends]
    return {
        "name": pool.name, "strategy": pool.strategy.name or type(pool.strategy).__name__,
        "panicking": pool.panicking, "available": sum(b.available for b in backends),
        "in_flight": sum(b.in_flight for b in backends), "requests": total_requests,
        "backends": rows,
    }


def backend_status(pool: Pool, b: Backend, metrics: RequestMetrics, responses: dict[str, int],
                   total_requests: int, total_weight: int, now: float) -> dict:
    percentiles = metrics.percentiles(b) or {}
    return {
        "id": b.id, "url": b.url, "state": backend_state(b), "enabled": b.enabled,
        "healthy": b.healthy, "ejected": b.ejected, "available": b.available, "weight": b.weight,
        "effective_weight": b.weight * b.ramp if b.available else 0.0,
        "in_flight": b.in_flight, "requests": b.requests, "failures": b.failures,
        "last_error": b.last_error, "responses": responses,
        "latency": {"ewma": b.latency.value if b.latency.observed else None,
                    "samples": len(metrics.recent.get(b, ())), **percentiles},
        "breaker": _breaker(b, now),
        "health_check": _health(pool, b, now),
        "outlier": _outlier(pool, b, now),
        "share_of_traffic": b.requests / total_requests if total_requests else 0.0,
        "share_of_weight": b.weight / total_weight if total_weight else 0.0,
    }


def backend_state(b: Backend) -> str:
    """One word for the row, the most important reason first."""
    if not b.enabled:
        return "draining" if b.in_flight else "disabled"
    if not b.healthy:
        return "unhealthy"
    if b.ejected:
        return "ejected"
    if b.breaker is not None and b.breaker.state.value != "closed":
        return "breaker_open" if b.breaker.state.value == "open" else "probing"
    return "slow_start" if b.ramp < 1.0 else "up"


def _breaker(b: Backend, now: float) -> dict | None:
    breaker = b.breaker
    if breaker is None:
        return None
    retry_at = breaker.retry_at
    return {
        "state": breaker.state.value, "consecutive_failures": breaker.consecutive_failures,
        "opened_total": breaker.opened_total, "last_reason": breaker.last_reason,
        "retry_in": max(0.0, retry_at - now) if retry_at is not None else None,
    }


def _health(pool: Pool, b: Backend, now: float) -> dict | None:
    state = pool.checker.states.get(b.id) if pool.checker is not None else None
    if state is None:
        return None
    return {
        "state": state.state.value, "consecutive_ok": state.consecutive_ok,
        "consecutive_fail": state.consecutive_fail, "last_reason": state.last_reason,
        "checked_ago": now - state.last_checked_at if state.last_checked_at is not None else None,
    }


def _outlier(pool: Pool, b: Backend, now: float) -> dict | None:
    state = pool.outliers.state(b.id) if pool.outliers is not None else None
    if state is None:
        return None
    until = state.ejected_until
    ejected = until is not None and until > now
    return {"ejected": ejected, "ejected_for": until - now if ejected else None,
            "times_ejected": state.times_ejected}


def route_status(runtime: Runtime) -> list[dict]:
    config = runtime.config
    if config is None:
        return []
    return [{"name": r.label, "pool": r.pool, "host": r.host,
             "path_prefix": r.path_prefix, "headers": dict(r.headers)} for r in config.routes]


def readiness(runtime: Runtime, stopping: bool) -> dict:
    """Ready when not shutting down and every pool has a backend that may be picked."""
    pools = {name: sum(b.available for b in p.backends) for name, p in runtime.pools.items()}
    problems = [f"pool {name!r} has no available backend" for name, n in pools.items() if n == 0]
    if stopping:
        problems.insert(0, "shutting down")
    return {"ready": not problems, "pools": pools, "problems": problems}
