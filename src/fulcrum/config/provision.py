"""Provisioning: turn a validated Config into a Runtime — resolve strategies
(built-in names or dotted paths), validate their options, build backends,
connection pools and the router. Done once per config version, never per request.
"""
from __future__ import annotations

import asyncio
import random
import time

from pydantic import ValidationError

from fulcrum.balancing.backend import Backend
from fulcrum.balancing.registry import resolve
from fulcrum.config.errors import ConfigError, origin_note, problems_from_validation
from fulcrum.config.load import format_problem
from fulcrum.config.model import Config
from fulcrum.proxy.pool import ConnectionPool
from fulcrum.proxy.routing import Route, Router
from fulcrum.proxy.settings import ProxySettings
from fulcrum.runtime.state import Pool, Runtime


def provision(config: Config, source: str = "config.yaml",
              loop: asyncio.AbstractEventLoop | None = None) -> Runtime:
    """Build everything the data plane needs; raise ConfigError listing every problem."""
    settings = ProxySettings.from_config(config)
    problems: list[str] = []
    pools: dict[str, Pool] = {}
    origins = config._env_origins
    for name, pool_config in config.pools.items():
        pool = _provision_pool(name, pool_config, settings, loop, source, problems, origins)
        if pool is not None:
            pools[name] = pool
    if problems:
        raise ConfigError(problems)
    routes = [
        Route(pools[r.pool], host=r.host, path_prefix=r.path_prefix, headers=r.headers)
        for r in config.routes
    ]
    default = next(iter(pools.values())) if len(pools) == 1 and not routes else None
    return Runtime(settings, pools, Router(routes, default), config)


def _provision_pool(name, pool_config, settings, loop, source, problems, origins) -> Pool | None:
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
    backends = [Backend(b.url, weight=b.weight, id=b.id) for b in pool_config.backends]
    try:
        strategy = strategy_cls(backends, options=options, rng=random.Random(), clock=time.monotonic)
    except ValueError as exc:
        problems.append(problem(f"{path}.strategy", str(exc)))
        return None
    connections = {b.id: ConnectionPool(b, loop, settings) for b in backends}
    return Pool(name, backends, strategy, connections)
