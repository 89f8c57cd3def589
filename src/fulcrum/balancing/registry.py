# Strategy names -> classes. Built-ins are listed as "module:Class" strings and imported
# on first use; a user's class is named by dotted path. Adding one: a file + a line here.
from __future__ import annotations

import importlib

from fulcrum.balancing.base import Strategy

BUILTIN: dict[str, str] = {
    "round_robin": "fulcrum.balancing.round_robin:RoundRobin",
    "weighted_round_robin": "fulcrum.balancing.weighted_round_robin:WeightedRoundRobin",
    "least_connections": "fulcrum.balancing.least_connections:LeastConnections",
    "random": "fulcrum.balancing.random_choice:RandomChoice",
    "power_of_two": "fulcrum.balancing.power_of_two:PowerOfTwo",
    "peak_ewma": "fulcrum.balancing.peak_ewma:PeakEwmaP2C",
    "consistent_hash": "fulcrum.balancing.consistent_hash:ConsistentHash",
}


def resolve(name: str) -> type[Strategy]:
    """The Strategy class for a built-in name or a ``pkg.module:Class`` path.

    ``pkg.module.Class`` is accepted too. Raises ValueError with a one-line
    message naming what was asked for and what went wrong.
    """
    target = BUILTIN.get(name)
    if target is None:
        if ":" not in name and "." not in name.strip("."):
            known = ", ".join(BUILTIN)
            raise ValueError(
                f"unknown strategy {name!r} (built in: {known}; or a dotted path module:Class)"
            )
        target = name
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"strategy {name!r}: expected a dotted path module:Class")
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error raised while importing
        raise ValueError(
            f"strategy {name!r}: cannot import module {module_name!r} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(
                f"strategy {name!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not (isinstance(obj, type) and issubclass(obj, Strategy)) or obj is Strategy:
        raise ValueError(
            f"strategy {name!r}: {module_name}:{attr} is not a Strategy subclass (got {obj!r})"
        )
    return obj
