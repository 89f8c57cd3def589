# Retry delays: AWS "full jitter" exponential backoff. Pure function of its arguments;
# randomness comes from the injected random.Random, and no attempt number can overflow it.
from __future__ import annotations

import math
import random


def full_jitter_backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """A delay drawn uniformly from ``[0, min(cap, base * 2**attempt))`` seconds.

    ``attempt`` is 0 before the first retry, 1 before the second, and so on.
    Full jitter spreads retries from many clients over the whole interval,
    which drains a backlog faster than equal or no jitter (AWS Architecture
    Blog, "Exponential Backoff And Jitter"). The mean is half the ceiling.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0 (got {attempt})")
    if base < 0:
        raise ValueError(f"backoff base must be >= 0 seconds (got {base})")
    if cap < 0:
        raise ValueError(f"backoff cap must be >= 0 seconds (got {cap})")
    try:
        ceiling = math.ldexp(base, attempt)  # base * 2**attempt without a float power
    except OverflowError:
        ceiling = cap
    if ceiling > cap:
        ceiling = cap
    return rng.random() * ceiling
