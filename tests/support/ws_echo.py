"""A WebSocket echo backend for the tunnel tests, on the ``websockets`` library.

Run as a process: ``python -m tests.support.ws_echo --port 0``; it prints
``listening on 127.0.0.1:<port>`` once ready. ``/health`` answers 200 over plain HTTP
(Fulcrum's health checks), any other path upgrades and echoes every message back.
"""
from __future__ import annotations

import argparse
import asyncio
import http

from websockets.asyncio.server import serve


async def _echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


def _health(connection, request):
    if request.path == "/health":
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    return None


async def main(port: int) -> None:
    async with serve(_echo, "127.0.0.1", port, process_request=_health, max_size=None,
                     ping_interval=None) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
