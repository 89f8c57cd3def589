"""The admin API's request and response bodies (pydantic); the OpenAPI document is
generated from these, so what it says is what the handlers return.

Times are seconds (floats); shares are fractions of 1.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fulcrum.config.model import BackendConfig

# Consistent hashing spends memory in proportion to weight; keep runtime changes sane.
MAX_WEIGHT = 1000
BACKEND_ID = r"^[A-Za-z0-9._:~\[\]-]+$"  # it appears in URL paths
# A backend url as a pattern the OpenAPI document can carry: http://name-or-IPv4[:port][/].
# (An IPv6 literal needs the config file: no short pattern says which are valid.)
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
BACKEND_URL = rf"^http://[A-Za-z0-9.-]+(:{_PORT})?/?$"
_BACKEND_URL = re.compile(BACKEND_URL)

BackendState = Literal["up", "slow_start", "probing", "breaker_open", "ejected", "unhealthy",
                       "draining", "disabled"]


class Problem(BaseModel):
    """An error: what went wrong and, where it helps, what to do."""

    detail: str


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Ready when every pool has a backend that may be picked (and not shutting down)."""

    ready: bool
    pools: dict[str, int] = Field(description="available backends per pool")
    problems: list[str] = []


class Latency(BaseModel):
    """Upstream latency: peak-EWMA estimate and percentiles over recent responses."""

    ewma: float | None = Field(description="peak-EWMA of response times; null before the first response")
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    samples: int = Field(0, description="recent responses the percentiles are computed over")


class BreakerStatus(BaseModel):
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    opened_total: int
    retry_in: float | None = Field(description="seconds until an open breaker lets a probe through")
    last_reason: str


class HealthCheckStatus(BaseModel):
    state: Literal["healthy", "unhealthy"]
    consecutive_ok: int
    consecutive_fail: int
    last_reason: str | None
    checked_ago: float | None = Field(description="seconds since the last check")


class OutlierStatus(BaseModel):
    ejected: bool
    ejected_for: float | None = Field(description="seconds of ejection left")
    times_ejected: int


class BackendStatus(BaseModel):
    """One backend as the balancer sees it now."""

    id: str
    url: str
    state: BackendState = Field(description="the one word that matters most, from the flags below")
    enabled: bool = Field(description="false once drained or disabled by an operator")
    healthy: bool
    ejected: bool
    available: bool = Field(description="may be picked now")
    weight: int
    effective_weight: float = Field(description="weight scaled by slow start; 0 when not available")
    in_flight: int
    requests: int = Field(description="requests sent to it, retries included")
    failures: int = Field(description="gateway failures: connect errors, resets, timeouts, 502-504")
    last_error: str | None
    responses: dict[str, int] = Field(description="finished client requests it answered, by status class")
    latency: Latency
    breaker: BreakerStatus | None
    health_check: HealthCheckStatus | None
    outlier: OutlierStatus | None
    share_of_traffic: float = Field(description="its requests / the pool's requests")
    share_of_weight: float = Field(description="its weight / the pool's total weight")


class PoolStatus(BaseModel):
    name: str
    strategy: str
    panicking: bool = Field(description="balancing over all backends because too few are available")
    available: int = Field(description="backends that may be picked now")
    in_flight: int
    requests: int
    backends: list[BackendStatus]


class RouteStatus(BaseModel):
    name: str
    pool: str | None = Field(description="its pool; null for a redirect route")
    host: str | None
    path_prefix: str
    headers: dict[str, str]


class WorkerStatus(BaseModel):
    """One worker process of a multi-process Fulcrum (``workers`` > 1)."""

    index: int
    pid: int | None
    state: Literal["starting", "serving", "restarting", "stopped"]
    restarts: int = Field(description="times this worker was replaced after it exited")
    uptime: float = Field(description="seconds since the current process started serving")
    open_connections: int | None = Field(None, description="client connections open on it now")
    requests_total: int | None = Field(None, description="finished requests of the current process")


class Status(BaseModel):
    """Everything the dashboard shows, in one document."""

    version: str
    core: Literal["compiled", "pure-python"] = Field(
        description="the data plane's core: compiled (Cython) or the pure-Python fallback")
    time: float = Field(description="Unix time of this snapshot")
    uptime: float
    open_connections: int
    requests_total: int = Field(description="finished client requests")
    pools: list[PoolStatus]
    routes: list[RouteStatus]
    workers: list[WorkerStatus] | None = Field(None, description="worker processes (null: a single process)")


class NewBackend(BackendConfig):
    """A backend to add: as in the config file, plus whether it takes traffic at once."""

    url: str = Field(json_schema_extra={"pattern": BACKEND_URL},
                     description="http://host:port (port 80 when left out); a name or an IPv4 address")
    weight: int = Field(1, ge=1, le=MAX_WEIGHT)
    id: str | None = Field(None, min_length=1, max_length=200, pattern=BACKEND_ID,
                           description="default: host:port")
    enabled: bool = True

    @field_validator("url", mode="before")
    @classmethod
    def _documented_form(cls, url: object) -> object:
        # The document's pattern, checked first with a message a person can act on.
        if isinstance(url, str) and not _BACKEND_URL.fullmatch(url):
            raise ValueError(f"must be http://host[:port] with a host name or an IPv4 address (got {url!r})")
        return url


class BackendPatch(BaseModel):
    """Fields to change; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    weight: int | None = Field(None, ge=1, le=MAX_WEIGHT)
    enabled: bool | None = None


class ReloadResult(BaseModel):
    reloaded: bool
    detail: str
