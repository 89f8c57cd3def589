"""Per-client rate limiting: a token bucket per key (the client IP, or a header's value).

The client IP is the one the exchange resolved (top-level ``trusted_proxies`` and
``client_ip_header``); ``rate_limit.trusted_proxies`` overrides the list for this filter,
reading the same header, so a client cannot spoof its way out of its limit. Over the limit: 429 with Retry-After; every limited response, and
allowed ones unless ``headers: false``, carries RateLimit-Limit / -Remaining / -Reset
(draft-ietf-httpapi-ratelimit-headers). Memory: at most ``max_keys`` buckets (LRU); with
workers, one table in shared memory for all of them (``Resources.bucket_table``), which
evicts the oldest bucket of a full group of 8 instead.
"""
from __future__ import annotations

import math

from fulcrum.config.filters import RateLimitConfig
from fulcrum.filters.base import Filter, Reply, ResponseHead
from fulcrum.http.client_address import TrustedProxies


class RateLimit(Filter):
    """Answers 429 once a client's bucket is empty."""

    name = "rate_limit"
    Options = RateLimitConfig

    def __init__(self, options: RateLimitConfig, resources) -> None:
        super().__init__(options, resources)
        self.table = resources.bucket_table(options.requests_per_second, options.burst, options.max_keys)
        self.trusted = TrustedProxies(options.trusted_proxies)
        self.exempt = TrustedProxies(options.exempt)
        self.key_header = options.key[7:].lower().encode() if options.key != "client_ip" else None
        self.always_headers = options.headers
        self.clock = resources.clock

    def on_request(self, exchange) -> Reply | None:
        # rate_limit.trusted_proxies overrides the top-level list for this filter only: the
        # address it yields is this limiter's key, never what the log or allow-lists see.
        client = exchange.forwarded_client(self.trusted) if self.trusted else exchange.client_ip
        if self.exempt and self.exempt.trusts(client):
            return None
        key = client
        if self.key_header is not None:
            value = exchange.header(self.key_header)
            if value is not None:  # without the header, the client is limited by its address
                key = "h:" + value.decode("latin-1")
        decision = self.table.take(key, self.clock())
        exchange.limit = decision
        if decision.allowed:
            return None
        return Reply(429, "rate limit exceeded", [("Retry-After", str(max(1, math.ceil(decision.retry_after))))])

    def on_response(self, exchange, head: ResponseHead) -> None:
        decision = exchange.limit
        if decision is None or (decision.allowed and not self.always_headers):
            return
        head.lines += (b"RateLimit-Limit: %d\r\n" % decision.limit,
                       b"RateLimit-Remaining: %d\r\n" % decision.remaining,
                       b"RateLimit-Reset: %d\r\n" % math.ceil(decision.reset))
