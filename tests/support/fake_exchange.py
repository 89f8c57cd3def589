"""A finished exchange as the log phase hands it to ``RequestMetrics.observe``: just the fields
it reads, for metrics tests without sockets."""
from __future__ import annotations

from dataclasses import dataclass

from fulcrum.balancing.backend import Backend


@dataclass
class FakeExchange:
    """The fields the log phase hands to ``observe``."""

    pool: object = None
    backend: Backend | None = None
    method: bytes = b"GET"
    status: int = 200
    route: str = "web"
    body_bytes: int = 0
    bytes_out: int = 0
    tries: int = 1
    duration: float = 0.001
    upstream_time: float = 0.0005
    rate_limited: bool = False
