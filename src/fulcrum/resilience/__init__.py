# Resilience building blocks the proxy calls on its hot path, all sans-IO (time and randomness
# are passed in): circuit breaker, outlier detection, backoff, retry budget and retry policy.
from fulcrum.resilience.backoff import full_jitter_backoff
from fulcrum.resilience.circuit_breaker import (
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
)
from fulcrum.resilience.outlier import OutlierDetector, OutlierState, panic
from fulcrum.resilience.retry_budget import RetryBudget
from fulcrum.resilience.retry_policy import (
    IDEMPOTENT,
    Decision,
    Failure,
    RetryPolicy,
    is_idempotent,
)
from fulcrum.resilience.window import RollingCounts

__all__ = [
    "IDEMPOTENT",
    "BreakerEvent",
    "BreakerState",
    "CircuitBreaker",
    "Decision",
    "Failure",
    "OutlierDetector",
    "OutlierState",
    "RetryBudget",
    "RetryPolicy",
    "RollingCounts",
    "full_jitter_backoff",
    "is_idempotent",
    "panic",
]
