"""Many short connections: a closed connection's memory is released at once,
not held until its timers would have fired."""
from __future__ import annotations

from tests.support.processes import pool_config
from tests.support.rawhttp import connect, read_until_close


def test_closed_connections_are_released(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum({"pools": {"web": pool_config(b1)}})
    request = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

    def churn(n: int) -> None:
        for _ in range(n):
            sock = connect(lb.port)
            sock.sendall(request)
            assert read_until_close(sock).startswith(b"HTTP/1.1 200 ")
            sock.close()

    churn(500)  # warm up allocator pools
    before = lb.rss_kb()
    churn(5000)
    growth_mb = (lb.rss_kb() - before) / 1024
    # Held until their timers fired, 5,000 connections cost ~15 MB here.
    assert growth_mb < 5, f"RSS grew {growth_mb:.1f} MB over 5,000 closed connections"
