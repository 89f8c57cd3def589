# Strategy names -> classes. Built-ins are listed as "module:Class" strings and imported
# on first use; a user's class is named by dotted path. Adding one: a file + a line here.
from __future__ import annotations

from fulcrum.balancing.base import Strategy
from fulcrum.plugins import load_class

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
    """The Strategy class for a built-in name or a ``pkg.module:Class`` path
    (``pkg.module.Class`` too); ValueError with a one-line message otherwise."""
    return load_class(name, BUILTIN, Strategy, "strategy")
