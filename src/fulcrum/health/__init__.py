# Active health checking: per-backend state machines (state.py), check verdicts (probe.py),
# both sans-IO, and the asyncio checker that feeds them (checker.py).
from fulcrum.health.checker import ActiveChecker
from fulcrum.health.probe import CheckFailed, evaluate, parse_status_range
from fulcrum.health.state import Health, HealthState, Transition

__all__ = [
    "ActiveChecker", "CheckFailed", "Health", "HealthState", "Transition", "evaluate",
    "parse_status_range",
]
