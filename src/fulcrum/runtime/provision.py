"""Provisioning: turn a validated Config into a Runtime — resolve strategies
(built-in names or dotted paths), validate their options, build backends,
connection pools and the router. Done once per config version, never per request.

On a reload the previous runtime is passed in and what is the same carries over:
a backend with the same pool, id and url is the same Backend object (its in-flight
count, latency, breaker and health) with its pooled connections; a filter with the
same settings is the same instance (its rate-limit buckets); the access-log writers
and an unchanged TLS setup are shared.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time

from pydantic import ValidationError

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.registry import resolve
from fulcrum.config.errors import ConfigError, origin_note, problems_from_validation
from fulcrum.config.load import format_problem
from fulcrum.config.model import Config
from fulcrum.filters.builder import FilterBuilder
from fulcrum.http.client_address import TrustedProxies
from fulcrum.filters.resources import Resources
from fulcrum.proxy.pool import ConnectionPool
from fulcrum.proxy.routing import Route, Router
from fulcrum.proxy.tls import TlsTerminator
from fulcrum.proxy.settings import ProxySettings
from fulcrum.health.checker import ActiveChecker
from fulcrum.resilience.circuit_breaker import CircuitBreaker
from fulcrum.resilience.outlier import OutlierDetector
from fulcrum.resilience.retry_budget import RetryBudget
from fulcrum.resilience.retry_policy import RetryPolicy
from fulcrum.runtime import fd_budget
from fulcrum.runtime.pool import Pool
from fulcrum.runtime.state import Destination, Runtime

log = logging.getLogger("fulcrum.pool")


def provision(config: Config, source: str = "config.yaml",
              loop: asyncio.AbstractEventLoop | None = None, previous: Runtime | None = None,
              resources: Resources | None = None) -> Runtime:
    """Build everything the data plane needs; raise ConfigError listing every problem.

    Nothing of ``previous`` is changed unless the new runtime is complete, except
    weights and connection settings of carried-over backends, applied as it is built.
    ``resources``: for a first runtime, what its filters share (a worker's has the
    shared-memory directory); a reload takes ``previous``'s."""
    settings = ProxySettings.from_config(_within_open_files(config))
    problems: list[str] = []
    pools: dict[str, Pool] = {}
    origins = config._env_origins
    for name, pool_config in config.pools.items():
        before = _previous_pool(previous, name)
        pool = _provision_pool(name, pool_config, settings, loop, source, problems, origins, before)
        if pool is not None:
            pools[name] = pool
    tls = None
    if previous is not None and previous.tls is not None and previous.config.tls == config.tls:
        tls = previous.tls  # unchanged: the TLS listener keeps its contexts (and need not rebind)
    elif config.tls is not None:
        try:
            tls = TlsTerminator(config.tls.certificates, config.tls.min_version, config.tls.ciphers)
        except ValueError as exc:
            where, _, message = str(exc).partition(": ")
            problems.append(format_problem(source, f"tls.{where}", message))
    if previous is not None:
        resources = previous.resources
    elif resources is None:
        resources = Resources()
    resources.log_format = config.log.format
    filters = FilterBuilder(config, resources, source, problems)
    chain = filters.chain(None, "")
    route_chains = [filters.chain(r, f"routes[{i}].") for i, r in enumerate(config.routes)]
    if problems:
        raise ConfigError(problems)
    filters.commit()
    routes = [
        Route(Destination(r.label, pools[r.pool] if r.pool else None, route_chain),
              host=r.host, path_prefix=r.path_prefix, headers=r.headers, methods=r.methods, query=r.query)
        for r, route_chain in zip(config.routes, route_chains)
    ]
    default = None
    if len(pools) == 1 and not routes:
        pool = next(iter(pools.values()))
        default = Destination(pool.name, pool, chain)
    runtime = Runtime(settings, pools, Router(routes, default), config, resources, chain,
                      trusted=TrustedProxies(config.trusted_proxies),
                      client_ip_header=config.client_ip_header.encode(),
                      forwarded_headers=config.forwarded_headers)
    runtime.tls = tls
    return runtime


def _within_open_files(config: Config) -> Config:
    """``config`` with limits.max_connections lowered to the client connections this process's
    open-files limit has room for (runtime/fd_budget.py), so the admin API keeps its reserve.
    Only the settings are built from it: the runtime keeps the config as written."""
    admitted = fd_budget.budget_for(config, fd_budget.soft_limit()).max_clients
    if admitted == config.limits.max_connections:
        return config
    limits = config.limits.model_copy(update={"max_connections": admitted})
    return config.model_copy(update={"limits": limits})


def _previous_pool(previous: Runtime | None, name: str) -> tuple[Pool, object] | None:
    if previous is None or name not in previous.pools or name not in previous.config.pools:
        return None
    return previous.pools[name], previous.config.pools[name]


def _provision_pool(name, pool_config, settings, loop, source, problems, origins, before=None) -> Pool | None:
    path = f"pools.{name}"

    def problem(where: str, message: str) -> str:
        return format_problem(source, where, message + origin_note(where, origins))

    try:
        strategy_cls = resolve(pool_config.strategy)
    except ValueError as exc:
        problems.append(problem(f"{path}.strategy", str(exc)))
        return None
    options = None
    if strategy_cls.Options is not None:
        try:
            options = strategy_cls.Options.model_validate(pool_config.options)
        except ValidationError as exc:
            problems.extend(problems_from_validation(
                exc, source, pool_config.options, origins, prefix=f"{path}.options", root=strategy_cls.Options))
            return None
    elif pool_config.options:
        problems.append(problem(f"{path}.options", f"strategy {pool_config.strategy!r} takes no options"))
        return None
    old_pool, old_config = before if before is not None else (None, None)
    kept = _kept_backends(old_pool, pool_config)
    backends = [kept.get(b.key) or Backend(b.url, weight=b.weight, id=b.id) for b in pool_config.backends]
    same_breakers = old_config is not None and old_config.circuit_breaker == pool_config.circuit_breaker
    for backend in backends:
        if not (same_breakers and backend.id in kept):
            backend.breaker = (_breaker(name, backend, pool_config.circuit_breaker)
                               if pool_config.circuit_breaker.enabled else None)
    try:
        strategy = strategy_cls(backends, options=options, rng=random.Random(), clock=time.monotonic)
    except ValueError as exc:
        problems.append(problem(f"{path}.strategy", str(exc)))
        return None
    connections = {b.id: ConnectionPool(b, loop, settings) for b in backends if b.id not in kept}
    for backend_id in kept:  # their pooled connections carry over, with the new settings
        connections[backend_id] = old_pool.connections[backend_id]
        connections[backend_id].settings = settings
    connections = {b.id: connections[b.id] for b in backends}
    same_outliers = old_config is not None and old_config.outlier_detection == pool_config.outlier_detection
    pool = Pool(
        name, backends, strategy, connections,
        outliers=old_pool.outliers if same_outliers else _outliers(pool_config.outlier_detection),
        retry=_retry_policy(pool_config.retry),
        budget=RetryBudget(pool_config.retry.budget, pool_config.retry.budget_window,
                           pool_config.retry.min_retries_per_second),
        max_in_flight=pool_config.circuit_breaker.max_in_flight if pool_config.circuit_breaker.enabled else 0,
        panic_threshold=pool_config.panic_threshold,
        tries_header=pool_config.retry.tries_header,
    )
    hc = pool_config.health_check
    if hc.enabled:
        pool.checker = ActiveChecker(
            backends, path=hc.path, interval=hc.interval, timeout=hc.timeout,
            healthy_threshold=hc.healthy_threshold, unhealthy_threshold=hc.unhealthy_threshold,
            expect_status=hc.expect_status, expect_body=hc.expect_body, jitter=hc.jitter,
            slow_start=hc.slow_start, on_change=pool.health_changed,
        )
        pool.slow_start = hc.slow_start
        if old_pool is not None and old_pool.checker is not None:
            for backend_id in kept:  # a backend's health so far carries over
                _carry_health(pool.checker.states[backend_id], old_pool.checker.states.get(backend_id))
    pool.refresh(pool.clock())
    # What the admin API needs to add backends at run time: built like the ones above.
    cb = pool_config.circuit_breaker
    pool.set_builders(
        strategy=lambda members: strategy_cls(members, options=options, rng=random.Random(), clock=time.monotonic),
        connections=lambda backend: ConnectionPool(backend, loop, settings),
        breaker=(lambda backend: _breaker(name, backend, cb)) if cb.enabled else None,
    )
    return pool


def _kept_backends(old_pool: Pool | None, pool_config) -> dict[str, Backend]:
    """The previous pool's backends that the new config keeps (same id and url), re-weighted."""
    if old_pool is None:
        return {}
    old = {b.id: b for b in old_pool.backends}
    kept = {}
    for cfg in pool_config.backends:
        backend = old.get(cfg.key)
        if backend is not None and backend.url == cfg.url:
            backend.weight = cfg.weight
            kept[backend.id] = backend
    return kept


_HEALTH_FIELDS = ("state", "consecutive_ok", "consecutive_fail", "last_reason", "last_checked_at", "changed_at")


def _carry_health(new, old) -> None:
    if old is not None:
        for field in _HEALTH_FIELDS:
            setattr(new, field, getattr(old, field))


def _breaker(pool_name: str, backend: Backend, cfg) -> CircuitBreaker:
    def changed(old, new, reason: str) -> None:
        log.warning("circuit breaker", extra={"fields": {
            "pool": pool_name, "backend": backend.id, "old": old.value, "new": new.value, "reason": reason}})

    return CircuitBreaker(
        failure_threshold=cfg.failure_threshold, failure_ratio=cfg.failure_ratio, window=cfg.window,
        min_requests=cfg.min_requests, reset_timeout=cfg.reset_timeout,
        half_open_requests=cfg.half_open_requests, on_change=changed,
    )


def _outliers(cfg) -> OutlierDetector | None:
    if not cfg.enabled:
        return None
    return OutlierDetector(cfg.consecutive_failures, cfg.base_ejection_time,
                           cfg.max_ejection_time, cfg.max_ejection_percent)


def _retry_policy(cfg) -> RetryPolicy | None:
    if cfg.attempts <= 1:
        return None
    return RetryPolicy(
        attempts=cfg.attempts, on_status=frozenset(cfg.on_status), backoff_base=cfg.backoff_base,
        backoff_max=cfg.backoff_max, per_try_timeout=cfg.per_try_timeout or None,
        deadline=cfg.deadline or None, max_body=cfg.max_body,
    )
