"""Fulcrum's proxy started in the test's own event loop, for states no config
can produce yet (every backend unavailable → 503)."""
from __future__ import annotations

import asyncio

import uvloop

from fulcrum.config.load import load_config_from_dict
from fulcrum.runtime.provision import provision
from fulcrum.proxy.server import ProxyServer
from tests.support.processes import pool_config


async def _get(port: int, path: bytes = b"/") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path)
    data = await reader.read()
    writer.close()
    return data


def _serve(config: dict, scenario) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        runtime = provision(load_config_from_dict({"listen": "127.0.0.1:0", **config}), "<test>", loop)
        server = ProxyServer(runtime, loop)
        await server.start("127.0.0.1", 0)
        try:
            await scenario(server, server.addresses[0][1])
        finally:
            await server.shutdown(1.0)

    uvloop.run(main())


def test_no_available_backend_is_503(backends):
    (b1, b2) = backends(2)

    async def scenario(server, port):
        pool = server.runtime.pools["web"]
        for backend in pool.backends:
            backend.available = False
        data = await _get(port)
        assert data.startswith(b"HTTP/1.1 503 ")
        assert b"no available backend" in data and b"X-Request-ID: " in data
        pool.backends[1].available = True
        for _ in range(3):
            data = await _get(port, b"/?echo=1")
            assert data.startswith(b"HTTP/1.1 200 ") and b"X-Backend: b2" in data

    _serve({"pools": {"web": pool_config(b1, b2)}}, scenario)


def test_in_flight_counts_return_to_zero(backends):
    (b1,) = backends(1)

    async def scenario(server, port):
        backend = server.runtime.pools["web"].backends[0]
        results = await asyncio.gather(*(_get(port, b"/?latency=0.05") for _ in range(20)))
        assert all(r.startswith(b"HTTP/1.1 200 ") for r in results)
        assert backend.in_flight == 0
        assert backend.requests == 20

    _serve({"pools": {"web": pool_config(b1)}}, scenario)
