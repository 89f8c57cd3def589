# The configuration schema: pydantic models that only validate (no I/O, no provisioning).
# Every field has a documented default except a pool's backends; unknown keys are errors.
"""Fulcrum's configuration models.

``Config`` is the root. Field checks live on the fields; checks that need several
fields (routes naming pools, duplicate backends) live in ``cross_check`` and run
from ``Config``'s model validator, reported as one ``config_cross_check`` error
whose ``ctx["problems"]`` holds ``(path, message)`` pairs that
``errors.problems_from_validation`` expands into one line each. Pydantic runs
that validator only once every field is valid, so cross-field problems show up
after the field problems are fixed.
"""
from __future__ import annotations

import ipaddress
import os
import re
import types
from typing import Annotated, Any, Literal, Sequence, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fulcrum.config.filters import (
    AccessLogConfig, CorsConfig, FilterRef, RateLimitConfig, SecurityHeadersConfig, cidrs,
)
from fulcrum.config.pool_policies import (
    CircuitBreakerConfig, HealthCheckConfig, OutlierDetectionConfig, RetryConfig,
)
from fulcrum.config.rewrites import (
    REFUSED_REQUEST, REFUSED_RESPONSE, HeaderRules, QueryValue, RedirectConfig, RewriteConfig,
    rewrite_problems, rule_problems,
)
from fulcrum.config.sections import PositiveDuration, Section, UrlPath
from fulcrum.config.tls import TlsConfig
from fulcrum.config.units import Size

CROSS_CHECK_ERROR = "config_cross_check"

_POOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_HOSTNAME_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_IPV6_HOST_RE = re.compile(r"^\[[0-9a-f:.]+\]$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → ``("127.0.0.1", 8080)``; ``"[::1]:8080"`` → ``("::1", 8080)``."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address needs brackets
    # Port 0 binds a free port, announced in the "listening" log line (tests use it).
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"must be host:port with port 0..65535, e.g. 127.0.0.1:8080 or [::1]:8080 (got {value!r})"
        )
    return host, int(port)


def _check_listen(value: str) -> str:
    parse_host_port(value)
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


ListenAddress = Annotated[str, AfterValidator(_check_listen)]


ADMIN_TOKEN_MIN_LENGTH = 16  # off loopback: a token anyone on the network may try to guess


class AdminConfig(Section):
    """The admin API listener and its bearer token (None: no auth, keep it on loopback; off
    loopback it is required, at least ADMIN_TOKEN_MIN_LENGTH characters)."""

    listen: ListenAddress = "127.0.0.1:9090"
    token: str | None = None

    @property
    def listen_addr(self) -> tuple[str, int]:
        return parse_host_port(self.listen)


class LogConfig(Section):
    """Log line format and minimum level (level names are case-insensitive)."""

    format: Literal["text", "json"] = "text"
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"
    # Per component: {"fulcrum.proxy": "debug", "fulcrum.health": "warning"}
    levels: dict[str, Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)]] = {}

    @field_validator("levels")
    @classmethod
    def _component_names(cls, levels: dict[str, str]) -> dict[str, str]:
        for name in levels:
            if name != "fulcrum" and not name.startswith("fulcrum."):
                raise ValueError(f"component loggers are named fulcrum.<component> (got {name!r})")
        return levels


class Timeouts(Section):
    """Every deadline the proxy enforces, in seconds; all must be > 0."""

    connect: PositiveDuration = 2.0          # TCP connect to a backend
    response: PositiveDuration = 30.0        # backend must start answering (status line) → 504
    client_header: PositiveDuration = 10.0   # whole request head must arrive (slowloris) → 408
    client_idle: PositiveDuration = 60.0     # idle keep-alive client connection is closed
    pool_idle: PositiveDuration = 60.0       # idle pooled backend connection is closed
    client_body: PositiveDuration = 60.0     # no request-body bytes for this long → close
    tunnel_idle: PositiveDuration = 300.0    # an upgraded (WebSocket) connection silent both ways → close
    client_send: PositiveDuration = 60.0     # a client that accepts no response bytes for this long → close


class Limits(Section):
    """Request size limits and the status each one answers with."""

    max_header_bytes: Annotated[Size, Field(gt=0)] = 65536   # → 431
    max_header_count: int = Field(100, ge=1)                 # → 431
    max_url_length: Annotated[Size, Field(gt=0)] = 8192      # → 414
    max_body_size: Size = 1 << 30                            # → 413; 0 = unlimited
    max_connections: int = Field(10_000, ge=0)               # open client connections → 503; 0 = unlimited
    max_connections_per_ip: int = Field(0, ge=0)             # per peer address → 503; 0 = unlimited
    min_body_rate: Size = 500                                # bytes/s a request body must average, else close; 0 = off


class UpstreamConfig(Section):
    """Backend connection reuse."""

    max_idle_per_backend: int = Field(64, ge=0)          # idle keep-alive conns kept per backend
    max_requests_per_connection: int = Field(0, ge=0)    # then close it; 0 = unlimited


class Buffers(Section):
    """Write-buffer marks for backpressure: pause the reader above high, resume below low."""

    high_water: Annotated[Size, Field(gt=0)] = 262144
    low_water: Size = 65536

    @model_validator(mode="after")
    def _low_below_high(self) -> Buffers:
        if self.low_water >= self.high_water:
            raise PydanticCustomError(
                CROSS_CHECK_ERROR, "low_water must be < high_water",
                {"problems": [("low_water",
                               f"must be < high_water ({self.high_water}) (got {self.low_water})")]},
            )
        return self


class BackendConfig(Section):
    """One upstream server: ``http://host[:port][/]`` (port defaults to 80)."""

    url: str
    weight: int = Field(1, ge=1)
    id: str | None = Field(None, min_length=1)

    @field_validator("url")
    @classmethod
    def _http_host_port(cls, url: str) -> str:
        _split_backend_url(url)
        return url.strip()

    @property
    def host(self) -> str:
        return _split_backend_url(self.url)[0]

    @property
    def port(self) -> int:
        return _split_backend_url(self.url)[1]

    @property
    def key(self) -> str:
        """The backend's identity in its pool: ``id``, else ``host:port`` (as Backend does)."""
        return self.id or f"{self.host}:{self.port}"


def _split_backend_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise ValueError("https backends are not supported yet")
    try:
        port = parts.port
    except ValueError:
        port = -1
    bad = (scheme != "http" or not parts.hostname or parts.username is not None
           or parts.path not in ("", "/") or parts.query or parts.fragment
           or port is not None and not 1 <= port <= 65535)
    if bad:
        raise ValueError(f"must be http://host:port with no path or query (got {url!r})")
    return parts.hostname, port or 80


class PoolConfig(Section):
    """A named group of backends and the strategy that spreads requests over them."""

    strategy: str = Field("round_robin", min_length=1)
    options: dict[str, Any] = {}   # strategy-specific; validated when provisioned
    backends: list[BackendConfig] = Field(min_length=1)
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    outlier_detection: OutlierDetectionConfig = Field(default_factory=OutlierDetectionConfig)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # Below this share of available backends, balance over all of them (Envoy's
    # panic mode) rather than crush the few left; 0 = never.
    panic_threshold: float = Field(0.0, ge=0, le=1)


class RouteConfig(Section):
    """Sends matching requests to a pool (or answers them with a redirect); the first
    matching route wins.

    ``host`` is exact (``api.example.com``) or a wildcard (``*.example.com``, which
    matches any subdomain but not the bare domain); it is compared lower-cased and
    the Host header's port is ignored when matching, so ``host`` carries no port.
    ``headers`` must all match exactly; header names are case-insensitive.
    ``methods``: one of them (upper case; HEAD is not implied by GET). ``query``: each
    parameter's first value (percent-decoded, ``+`` as space) equals the one given.
    """

    host: str | None = None
    path_prefix: UrlPath = "/"
    headers: dict[str, str] = {}
    methods: list[str] = []                         # [] = any method
    query: dict[str, QueryValue] = {}
    pool: str | None = None                         # required unless ``redirect`` is set
    name: str | None = Field(None, min_length=1)   # in logs and metrics; default: the pool's name
    # Rewrites of the request sent to the backend, in this order; then the filters' own.
    strip_prefix: bool = False                      # drop path_prefix from the target
    rewrite: RewriteConfig | None = None
    request_headers: HeaderRules | None = None      # after the global request_headers
    response_headers: HeaderRules | None = None     # after the global response_headers
    # Answered by the proxy, before the other filters: a redirect, or 403 for a client
    # address outside ``allow`` / inside ``deny`` (as resolved through trusted_proxies).
    redirect: RedirectConfig | None = None
    allow: list[str] | None = Field(None, min_length=1)
    deny: list[str] | None = Field(None, min_length=1)
    # Filters for this route: merged over the global sections (the keys given here win).
    rate_limit: RateLimitConfig | None = None
    cors: CorsConfig | None = None
    security_headers: SecurityHeadersConfig | None = None
    access_log: AccessLogConfig | None = None
    filters: list[FilterRef] = []                  # run after the global ``filters``

    @property
    def label(self) -> str:
        """The route's name in logs, metrics and the admin API: ``name``, else its pool's."""
        return self.name or self.pool or "redirect"

    @field_validator("host")
    @classmethod
    def _host_pattern(cls, host: str | None) -> str | None:
        if host is None:
            return None
        host = host.lower()
        if host.startswith("["):
            if not _IPV6_HOST_RE.match(host):
                raise ValueError(f"must be a bracketed IPv6 address without a port (got {host!r})")
        elif ":" in host:
            raise ValueError(f"must not include a port; the Host header's port is ignored (got {host!r})")
        elif not _HOSTNAME_RE.match(host):
            raise ValueError(f"must be a host name like api.example.com or *.example.com (got {host!r})")
        return host

    @field_validator("methods")
    @classmethod
    def _method_tokens(cls, methods: list[str]) -> list[str]:
        for method in methods:
            if not _HEADER_NAME_RE.match(method):
                raise ValueError(f"not a method name (got {method!r})")
        return list(dict.fromkeys(m.upper() for m in methods))

    @field_validator("allow", "deny")
    @classmethod
    def _client_networks(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else cidrs(values)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        lowered: dict[str, str] = {}
        for name, value in headers.items():
            if not _HEADER_NAME_RE.match(name):
                raise ValueError(f"not a valid header name (got {name!r})")
            if name.lower() in lowered:
                raise ValueError(f"header {name!r} given twice (names are case-insensitive)")
            lowered[name.lower()] = value
        return lowered


class Config(Section):
    """The whole configuration file. Only ``pools`` has no usable default."""

    # Which config paths environment variables set, so later checks (provisioning)
    # can name the variable too. Not part of the schema.
    _env_origins: dict[str, str] = PrivateAttr(default_factory=dict)

    listen: ListenAddress = "127.0.0.1:8080"
    admin: AdminConfig = Field(default_factory=AdminConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    buffers: Buffers = Field(default_factory=Buffers)
    pools: dict[str, PoolConfig] = {}
    routes: list[RouteConfig] = []
    # The request-path filters, for every route (a route may override each section).
    rate_limit: RateLimitConfig | None = None
    cors: CorsConfig | None = None
    security_headers: SecurityHeadersConfig | None = None
    access_log: AccessLogConfig = Field(default_factory=AccessLogConfig)
    filters: list[FilterRef] = []
    # Header edits for every route (and the requests no route matches), before the route's own.
    request_headers: HeaderRules | None = None
    response_headers: HeaderRules | None = None
    tls: TlsConfig | None = None      # a TLS listener beside ``listen``; null = none
    # Who the client is: the peer, unless the peer is one of these proxies (CIDRs); then the
    # address they vouch for in ``client_ip_header``. Used by X-Forwarded-For, the rate limiter,
    # the access log and the forwarded_headers policy.
    trusted_proxies: list[str] = []
    client_ip_header: Literal["x-forwarded-for", "x-real-ip", "forwarded"] = "x-forwarded-for"
    # A client's Forwarded and X-Real-IP: passed on only from trusted_proxies (remove_untrusted),
    # always (keep) or never (remove).
    forwarded_headers: Literal["remove_untrusted", "keep", "remove"] = "remove_untrusted"
    watch_config: bool = True         # reload when the config file changes (SIGHUP and the API always can)
    shutdown_timeout: PositiveDuration = 30.0   # SIGTERM/SIGINT: how long in-flight requests may take to finish
    # Data-plane processes sharing the listeners (SO_REUSEPORT) under a supervisor; "auto" = one
    # per CPU this process may run on. 1 serves from a single process with no supervisor.
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1

    @property
    def worker_count(self) -> int:
        """``workers`` as a number (``auto`` resolved against this machine's CPUs)."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        return self.workers

    @property
    def listen_addr(self) -> tuple[str, int]:
        return parse_host_port(self.listen)

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_networks(cls, values: list[str]) -> list[str]:
        return cidrs(values)

    @field_validator("client_ip_header", mode="before")
    @classmethod
    def _header_lower(cls, value: object) -> object:
        return _lower(value)

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        problems = cross_check(self)
        if problems:
            summary = "; ".join(f"{path}: {message}" for path, message in problems)
            raise PydanticCustomError(CROSS_CHECK_ERROR, "{summary}",
                                      {"summary": summary, "problems": problems})
        return self


def cross_check(config: Config) -> list[tuple[str, str]]:
    """Problems spanning several fields, as ``(dotted.path, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    if not config.pools:
        problems.append(("pools", "at least one pool is required"))
    for name, pool in config.pools.items():
        if not _POOL_NAME_RE.match(name):
            problems.append((f"pools.{name}", "pool names may use only letters, digits, '_' and '-'"))
        problems.extend(_duplicate_backends(f"pools.{name}", pool))
    if config.tls is not None:
        try:
            parse_host_port(config.tls.listen)
        except ValueError as exc:
            problems.append(("tls.listen", str(exc)))
    host, _ = config.admin.listen_addr
    if not config.admin.token and not is_loopback(host):
        problems.append(("admin.token", f"required when admin.listen is not on loopback "
                         f"(listen is {config.admin.listen}); set it or FULCRUM_ADMIN__TOKEN"))
    elif config.admin.token and len(config.admin.token) < ADMIN_TOKEN_MIN_LENGTH and not is_loopback(host):
        problems.append(("admin.token", f"must be at least {ADMIN_TOKEN_MIN_LENGTH} characters when admin.listen "
                         f"is not on loopback (listen is {config.admin.listen}; got "
                         f"{len(config.admin.token)} characters); set a longer one here or in FULCRUM_ADMIN__TOKEN"))
    for key, refused in (("request_headers", REFUSED_REQUEST), ("response_headers", REFUSED_RESPONSE)):
        if getattr(config, key) is not None:
            problems.extend(rule_problems(key, getattr(config, key), refused))
    known = ", ".join(config.pools) or "none"
    for i, route in enumerate(config.routes):
        problems.extend(_route_problems(f"routes[{i}]", route, known, config.pools))
    return problems


def _route_problems(path: str, route: RouteConfig, known: str, pools: dict) -> list[tuple[str, str]]:
    problems = []
    if route.redirect is not None:
        if route.pool is not None:
            problems.append((f"{path}.redirect", f"a route with a redirect answers itself and takes no pool "
                             f"(got pool {route.pool!r})"))
        for key in ("strip_prefix", "rewrite", "request_headers"):
            if getattr(route, key):
                problems.append((f"{path}.{key}", "has no effect on a route with a redirect "
                                 "(no request is sent to a backend)"))
    elif route.pool is None:
        problems.append((f"{path}.pool", "required (only a route with a redirect has no pool)"))
    elif route.pool not in pools:
        problems.append((f"{path}.pool", f"no pool named {route.pool!r} (pools: {known})"))
    if route.allow is not None and route.deny is not None:
        problems.append((f"{path}.deny", "cannot be combined with allow (give one list)"))
    if route.rewrite is not None:
        problems.extend(rewrite_problems(f"{path}.rewrite", route.rewrite))
    if route.request_headers is not None:
        problems.extend(rule_problems(f"{path}.request_headers", route.request_headers, REFUSED_REQUEST))
    if route.response_headers is not None:
        problems.extend(rule_problems(f"{path}.response_headers", route.response_headers, REFUSED_RESPONSE))
    return problems


def is_loopback(host: str) -> bool:
    """True for addresses only this host can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def _duplicate_backends(path: str, pool: PoolConfig) -> list[tuple[str, str]]:
    problems = []
    seen_addr: dict[tuple[str, int], int] = {}
    seen_key: dict[str, int] = {}
    for i, backend in enumerate(pool.backends):
        addr = (backend.host, backend.port)
        if addr in seen_addr:
            problems.append((f"{path}.backends[{i}].url",
                             f"duplicate backend (same as backends[{seen_addr[addr]}])"))
        elif backend.key in seen_key:
            first = seen_key[backend.key]
            problems.append((f"{path}.backends[{i}].id",
                             f"duplicate backend id {backend.key!r} (same as backends[{first}])"))
        seen_addr.setdefault(addr, i)
        seen_key.setdefault(backend.key, i)
    return problems


def annotation_at(
    path: Sequence[str | int], root: type[BaseModel] | None = None,
) -> tuple[Any, list[Any]] | None:
    """The type expected at ``path`` below ``root`` (default ``Config``) and its
    metadata (validators, constraints), or None when the path leaves the schema.
    Dict keys and list indices step into the value/item type; ``X | None`` is
    reported as ``X``."""
    annotation, metadata = _unwrap(root or Config, [])
    for part in path:
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            annotation, metadata = _unwrap(field.annotation, list(field.metadata))
        elif origin is dict:
            annotation, metadata = _unwrap(get_args(annotation)[1], [])
        elif origin is list and isinstance(part, int):
            annotation, metadata = _unwrap(get_args(annotation)[0], [])
        else:
            return None
    return annotation, metadata


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            metadata = metadata + extra
        elif origin in (Union, types.UnionType):
            rest = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation, metadata
            annotation = rest[0]
        else:
            return annotation, metadata
