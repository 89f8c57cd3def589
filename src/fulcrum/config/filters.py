"""Settings of the request-path filters: rate limiting, CORS, security headers, the access
log, and user filters by dotted path. Each section may be given globally and per route; a
route's section is merged over the global one (the keys it sets win) and ``enabled: false``
turns a filter off for that route. Documented key by key in the annotated config.yaml."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from fulcrum.config.sections import Section
from fulcrum.http.client_address import TrustedProxies

_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ORIGIN_RE = re.compile(r"^(\*|https?://(\*\.)?[a-z0-9.-]+(:\d{1,5})?)$")


def cidrs(values: list[str]) -> list[str]:
    for i, value in enumerate(values):
        try:
            TrustedProxies([value])
        except ValueError as exc:
            raise ValueError(f"entry {i}: {str(exc).split(': ', 1)[-1]}") from None
    return values


class RateLimitConfig(Section):
    """A token bucket per client key: ``burst`` at once, then ``requests_per_second``."""

    enabled: bool = True
    requests_per_second: float = Field(100.0, gt=0)
    burst: int = Field(200, ge=1)
    key: str = "client_ip"                      # or "header:X-Api-Key"
    trusted_proxies: list[str] = []             # CIDRs whose X-Forwarded-For / Forwarded is believed
    exempt: list[str] = []                      # CIDRs never limited
    headers: bool = True                        # RateLimit-* headers on allowed responses too
    max_keys: int = Field(100_000, ge=1)        # buckets kept at most (least recently used evicted)

    @field_validator("trusted_proxies", "exempt")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        return cidrs(values)

    @field_validator("key")
    @classmethod
    def _key_form(cls, key: str) -> str:
        if key == "client_ip":
            return key
        kind, _, name = key.partition(":")
        if kind != "header" or not _HEADER_NAME_RE.match(name):
            raise ValueError(f"must be client_ip or header:<Header-Name> (got {key!r})")
        return key


class CorsConfig(Section):
    """Cross-origin requests: which origins may call, with what; preflights answered here."""

    enabled: bool = True
    allow_origins: list[str] = []               # "https://app.example.com", "https://*.example.com" or "*"
    allow_methods: list[str] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    allow_headers: list[str] = []               # request headers a page may send; [] = echo what it asks
    expose_headers: list[str] = []
    allow_credentials: bool = False
    max_age: int = Field(600, ge=0)             # seconds a browser may cache a preflight

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        cleaned = []
        for i, origin in enumerate(origins):
            origin = origin.strip().lower().rstrip("/")
            if not _ORIGIN_RE.match(origin):
                raise ValueError(
                    f"entry {i}: must be '*' or scheme://host[:port], where host may start "
                    f"with '*.' (got {origins[i]!r})")
            cleaned.append(origin)
        return cleaned

    @field_validator("allow_methods", "allow_headers", "expose_headers")
    @classmethod
    def _tokens(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HEADER_NAME_RE.match(value):
                raise ValueError(f"not a valid token (got {value!r})")
        return values


class HstsConfig(Section):
    max_age: int = Field(31_536_000, ge=0)
    include_subdomains: bool = False
    preload: bool = False


class SecurityHeadersConfig(Section):
    """Security response headers; one the backend already set is kept unless ``override``."""

    enabled: bool = True
    content_type_options: str | None = "nosniff"
    frame_options: str | None = "DENY"
    referrer_policy: str | None = "strict-origin-when-cross-origin"
    content_security_policy: str | None = None
    hsts: HstsConfig | None = None              # sent only on TLS connections
    override: bool = False


class AccessLogConfig(Section):
    """One line per request, written off the event loop by a thread."""

    enabled: bool = True
    output: str = "stdout"                      # stdout, stderr or a file path (appended to)
    format: Literal["json", "text"] | None = None   # default: log.format
    sample: float = Field(1.0, ge=0, le=1)      # share of requests logged
    always_log_errors: bool = True              # status >= 500 (and 429) logged whatever sample says
    max_pending: int = Field(65_536, ge=1)      # lines queued before new ones are dropped (counted)


class FilterRef(Section):
    """A filter by built-in name or ``pkg.module:Class`` path, with its options."""

    use: str = Field(min_length=1)
    options: dict[str, Any] = {}
