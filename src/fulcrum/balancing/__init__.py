# Load balancing: Backend (what a strategy sees), Strategy (the one-method interface),
# one module per strategy, and the registry that turns a configured name into a class.
from fulcrum.balancing.backend import Backend
from fulcrum.balancing.base import RequestInfo, Strategy
from fulcrum.balancing.registry import BUILTIN, resolve

__all__ = ["BUILTIN", "Backend", "RequestInfo", "Strategy", "resolve"]
