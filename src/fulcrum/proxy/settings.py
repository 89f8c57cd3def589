"""The numbers the data plane reads on every request, resolved once from config."""
from __future__ import annotations


class ProxySettings:
    """Timeouts (seconds), limits (bytes/counts) and buffer marks for the hot path."""

    __slots__ = (
        "connect_timeout", "response_timeout", "client_header_timeout",
        "client_idle_timeout", "client_body_timeout", "pool_idle_timeout",
        "max_header_bytes", "max_header_count", "max_url_length", "max_body_size",
        "high_water", "low_water", "max_idle_per_backend", "max_requests_per_connection",
        "max_connections", "max_connections_per_ip", "min_body_rate", "tunnel_idle_timeout", "client_tick",
        "client_send_timeout",
    )

    def __init__(self, **values: float | int) -> None:
        defaults = dict(
            connect_timeout=2.0, response_timeout=30.0, client_header_timeout=10.0,
            client_idle_timeout=60.0, client_body_timeout=60.0, pool_idle_timeout=60.0,
            max_header_bytes=65536, max_header_count=100, max_url_length=8192,
            max_body_size=1 << 30, high_water=256 * 1024, low_water=64 * 1024,
            max_idle_per_backend=64, max_requests_per_connection=0,
            max_connections=10_000, max_connections_per_ip=0, min_body_rate=500, tunnel_idle_timeout=300.0,
            client_send_timeout=60.0,
        )
        unknown = set(values) - set(defaults)
        if unknown:
            raise TypeError(f"unknown proxy settings: {sorted(unknown)}")
        defaults.update(values)
        for name, value in defaults.items():
            setattr(self, name, value)
        # How often a client connection's timer must wake to honour every client timeout.
        self.client_tick = min(self.client_header_timeout, self.client_idle_timeout, self.client_body_timeout,
                               self.client_send_timeout)

    @classmethod
    def from_config(cls, config) -> "ProxySettings":
        t, lim, buf, up = config.timeouts, config.limits, config.buffers, config.upstream
        return cls(
            connect_timeout=t.connect, response_timeout=t.response,
            client_header_timeout=t.client_header, client_idle_timeout=t.client_idle,
            client_body_timeout=t.client_body, pool_idle_timeout=t.pool_idle, tunnel_idle_timeout=t.tunnel_idle,
            client_send_timeout=t.client_send,
            max_header_bytes=lim.max_header_bytes, max_header_count=lim.max_header_count,
            max_url_length=lim.max_url_length, max_body_size=lim.max_body_size,
            high_water=buf.high_water, low_water=buf.low_water,
            max_idle_per_backend=up.max_idle_per_backend,
            max_requests_per_connection=up.max_requests_per_connection,
            max_connections=lim.max_connections, max_connections_per_ip=lim.max_connections_per_ip,
            min_body_rate=lim.min_body_rate,
        )
