# What the supervisor tells workers about backends: the membership of every pool (ids, urls,
# weights, enabled) and each backend's health as the supervisor's checks see it.
#
# The message is the whole desired state, not a change, so applying it twice, late or to a
# worker that just started gives the same result: the worker reconciles its pools to it.
# Workers run no active checks of their own; their HealthState objects are overwritten with
# the supervisor's (timestamps are CLOCK_MONOTONIC, one clock for every process of the
# host), so slow start ramps the same way in every worker.
#
# Recovery: ejections and breakers are per worker, so a worker lifts them itself from the
# health it is sent. ``passed_at`` (the latest passing check) of a healthy backend lifts every
# ejection and open breaker that began no later than it: stated as a time, not an event, so
# a repeated or late message lifts nothing that began after the check. The supervisor pushes a
# pool after passing checks too, at most once per PASS_PUSH_SHARE of the check interval.
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fulcrum.health.state import Health

if TYPE_CHECKING:
    from fulcrum.runtime.pool import Pool
    from fulcrum.runtime.state import Runtime

log = logging.getLogger("fulcrum.cluster")

_HEALTH_FIELDS = ("consecutive_ok", "consecutive_fail", "last_reason", "last_checked_at", "changed_at",
                  "passed_at")
REMOVE_TIMEOUT = 30.0  # a worker waits this long for its own requests to a removed backend
# Passing checks of one pool within this share of its check interval go out in one push:
# recovery in the workers lags by at most that, and the pushes stay few for large pools.
PASS_PUSH_SHARE = 0.5


def pass_push_delay(pool: Pool) -> float:
    """How long the supervisor gathers a pool's passing checks before pushing them."""
    return pool.checker.interval * PASS_PUSH_SHARE if pool.checker is not None else 0.0


def membership(runtime: Runtime, pool_name: str | None = None) -> dict:
    """The state to push: every pool (or just ``pool_name``; nothing if a reload removed it)."""
    if pool_name is None:
        pools = runtime.pools
    else:
        pools = {pool_name: runtime.pools[pool_name]} if pool_name in runtime.pools else {}
    return {name: [_member(pool, b) for b in pool.backends] for name, pool in pools.items()}


def _member(pool: Pool, b) -> dict:
    state = pool.checker.states.get(b.id) if pool.checker is not None else None
    health = None
    if state is not None:
        health = {"state": state.state.value, **{f: getattr(state, f) for f in _HEALTH_FIELDS}}
    return {"id": b.id, "url": b.url, "weight": b.weight, "enabled": b.enabled, "health": health}


def apply(runtime: Runtime, pools: dict[str, list[dict]]) -> None:
    """Reconcile the worker's pools to ``pools`` (as ``membership`` made it). Pools the
    worker does not have (a reload on its way) are skipped; the next sync covers them."""
    for name, members in pools.items():
        pool = runtime.pools.get(name)
        if pool is not None:
            _apply_pool(pool, members)


def _apply_pool(pool: Pool, members: list[dict]) -> None:
    wanted = {m["id"]: m for m in members}
    current = {b.id: b for b in pool.backends}
    for member in members:
        backend = current.get(member["id"])
        if backend is None:
            backend = pool.add_backend(member["url"], weight=member["weight"], id=member["id"],
                                       enabled=member["enabled"])
        if backend.weight != member["weight"]:
            pool.set_weight(backend.id, member["weight"])
        if backend.enabled != member["enabled"]:
            pool.set_enabled(backend.id, member["enabled"])
        if member["health"] is not None:
            _apply_health(pool, backend, member["health"])
    for backend_id in current.keys() - wanted.keys():
        # The supervisor removes a backend once the workers' requests to it are done; a
        # request that raced in still finishes here first.
        asyncio.get_running_loop().create_task(_remove(pool, backend_id), name=f"remove {backend_id}")


def _apply_health(pool: Pool, backend, health: dict) -> None:
    state = pool.checker.states.get(backend.id) if pool.checker is not None else None
    if state is None:
        return
    state.state = Health(health["state"])
    for field in _HEALTH_FIELDS:
        setattr(state, field, health[field])
    now = pool.clock()
    ramp = state.effective_weight(1, now) if state.healthy and state.in_slow_start(now) else 1.0
    if state.healthy != backend.healthy or ramp != backend.ramp:
        backend.ramp = ramp or 1.0
        pool.set_healthy(backend, state.healthy)
    if state.healthy and state.passed_at is not None:
        pool.health_check_passed(backend, state.passed_at)


async def _remove(pool: Pool, backend_id: str) -> None:
    try:
        await pool.remove_backend(backend_id, REMOVE_TIMEOUT)
    except LookupError:
        pass  # already gone
    except Exception as exc:
        log.warning("backend removal failed", extra={"fields": {"pool": pool.name, "backend": backend_id,
                                                                "error": str(exc)}})
