"""Per-pool resilience settings: active health checks, passive outlier detection,
circuit breakers and retries. Every key has a default; ``enabled: false`` turns
a mechanism off. Documented key by key in the annotated config.yaml."""
from __future__ import annotations

from pydantic import Field, field_validator

from fulcrum.config.sections import PositiveDuration, Section, UrlPath
from fulcrum.config.units import Duration, Size


class HealthCheckConfig(Section):
    """Active checks: GET ``path`` on every backend each ``interval`` (± jitter)."""

    enabled: bool = True
    path: UrlPath = "/health"
    interval: PositiveDuration = 2.0
    timeout: PositiveDuration = 1.0
    jitter: float = Field(0.1, ge=0, lt=1)          # share of interval, spreads checks out
    healthy_threshold: int = Field(2, ge=1)         # consecutive successes to come back
    unhealthy_threshold: int = Field(3, ge=1)       # consecutive failures to leave
    expect_status: str = "200-399"                  # a code or an inclusive range
    expect_body: str | None = None                  # substring the body must contain
    slow_start: Duration = 0.0                      # ramp a recovered backend's weight; 0 = off

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: str) -> str:
        low, _, high = str(value).partition("-")
        try:
            lo, hi = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"must be a status code or a range like 200-399 (got {value!r})") from None
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"must be a status code or a range within 100-599 (got {value!r})")
        return str(value)


class OutlierDetectionConfig(Section):
    """Passive ejection after consecutive gateway failures (connect error, reset, 502/503/504)."""

    enabled: bool = True
    consecutive_failures: int = Field(5, ge=1)
    base_ejection_time: PositiveDuration = 30.0     # × number of ejections so far
    max_ejection_time: PositiveDuration = 300.0
    max_ejection_percent: int = Field(50, ge=0, le=100)


class CircuitBreakerConfig(Section):
    """Per-backend breaker, and a cap on requests in flight to one backend."""

    enabled: bool = True
    failure_threshold: int = Field(5, ge=1)         # consecutive failures to open
    failure_ratio: float = Field(0.5, ge=0, le=1)   # or this share failing in `window`; 0 = off
    window: PositiveDuration = 10.0
    min_requests: int = Field(20, ge=1)             # before the ratio counts
    reset_timeout: PositiveDuration = 10.0          # open → half-open
    half_open_requests: int = Field(1, ge=1)        # probes let through when half-open
    max_in_flight: int = Field(1000, ge=1)          # over it: another backend, else 503


class RetryConfig(Section):
    """Retries with exponential backoff (full jitter) inside a retry budget."""

    attempts: int = Field(3, ge=1)                  # tries in all, the first included
    backoff_base: PositiveDuration = 0.025
    backoff_max: PositiveDuration = 1.0
    budget: float = Field(0.2, ge=0)                # retries ≤ budget × requests over budget_window
    budget_window: PositiveDuration = 10.0
    min_retries_per_second: float = Field(3.0, ge=0)
    on_status: list[int] = [502, 503, 504]
    per_try_timeout: Duration = 0.0                 # 0 = timeouts.response
    deadline: Duration = 0.0                        # overall, from the first try; 0 = none
    max_body: Size = 65536                          # bodies up to this are kept for replay
    tries_header: bool = False                      # add X-Fulcrum-Tries to responses

    @field_validator("on_status")
    @classmethod
    def _statuses(cls, statuses: list[int]) -> list[int]:
        bad = [s for s in statuses if not 100 <= s <= 599]
        if bad:
            raise ValueError(f"must be HTTP status codes (got {bad})")
        return statuses
