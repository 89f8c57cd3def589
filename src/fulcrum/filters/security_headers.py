"""Security response headers: X-Content-Type-Options, X-Frame-Options, Referrer-Policy,
and optionally Content-Security-Policy and Strict-Transport-Security (sent only on TLS
connections: HSTS over plain HTTP is ignored by browsers and misleads readers). A header
the backend already set is kept unless ``override``."""
from __future__ import annotations

from fulcrum.config.filters import SecurityHeadersConfig
from fulcrum.filters.base import Filter, ResponseHead


class SecurityHeaders(Filter):
    """Adds the configured security headers to every response."""

    name = "security_headers"
    Options = SecurityHeadersConfig

    def __init__(self, options: SecurityHeadersConfig, resources) -> None:
        super().__init__(options, resources)
        pairs = [
            (b"X-Content-Type-Options", options.content_type_options),
            (b"X-Frame-Options", options.frame_options),
            (b"Referrer-Policy", options.referrer_policy),
            (b"Content-Security-Policy", options.content_security_policy),
        ]
        self.headers = [(name, value.encode("latin-1")) for name, value in pairs if value]
        self.hsts: bytes | None = None
        if options.hsts is not None:
            hsts = options.hsts
            value = f"max-age={hsts.max_age}"
            value += "; includeSubDomains" if hsts.include_subdomains else ""
            value += "; preload" if hsts.preload else ""
            self.hsts = value.encode()
        self.override = options.override

    def on_response(self, exchange, head: ResponseHead) -> None:
        for name, value in self.headers:
            head.set(name, value, self.override)
        if self.hsts is not None and exchange.secure:
            head.set(b"Strict-Transport-Security", self.hsts, self.override)
