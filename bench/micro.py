"""Per-request CPU of Fulcrum's Python data plane, without sockets.

Drives one ClientConnection and one pooled UpstreamConnection over in-memory
transports: a request in, a response back, N times. What it measures is the
proxy's own work (parsing, header rewriting, picking, bookkeeping) — the part
that differs from nginx — with the kernel left out. Request metrics are on, as in a
live run; ``--no-metrics`` gives the figures quoted before 2026-12-06 (8.5k instructions
fewer). Run: .venv/bin/python bench/micro.py
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import tempfile
import time

import uvloop

from fulcrum.config.load import load_config_from_dict
from fulcrum.runtime.provision import provision
from fulcrum.filters.resources import Resources
from fulcrum.observability.metrics import Metrics
from fulcrum.proxy.client import ClientConnection
from fulcrum.proxy.server import ProxyServer
from fulcrum.proxy.upstream import UpstreamConnection

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 04:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 14\r\nConnection: keep-alive\r\n\r\n"
            b"hello from b1\n")


class MemoryTransport:
    """Just enough of asyncio.Transport: writes are counted, not sent."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, parts) -> None:
        for part in parts:
            self.written += len(part)

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("closed")

    abort = close


def _config(edge: bool) -> dict:
    config = {"pools": {"web": {"backends": [{"url": "http://127.0.0.1:9"}]}},
              "access_log": {"enabled": False}}
    if edge:  # what the bench's fulcrum-edge runs: a limit never reached, an access log to a file
        config["access_log"] = {"output": "/dev/null"}
        config["rate_limit"] = {"requests_per_second": 1e9, "burst": 1_000_000_000}
    return config


def run(n: int, profile: bool, repeat: int, edge: bool = False, shared: bool = False,
        metrics: bool = True) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        config = load_config_from_dict(_config(edge))
        # --shared: the rate-limit buckets in shared memory, as a worker of `workers: N` has them.
        resources = Resources(shared_dir=tempfile.mkdtemp(prefix="fulcrum-micro-")) if shared else None
        runtime = provision(config, "<micro>", loop, resources=resources)
        runtime.resources.start()
        server = ProxyServer(runtime, loop)
        if metrics:  # as `fulcrum run` wires them (shell/app.py): every request is observed
            server.request_metrics = Metrics(server).requests
        conns = runtime.pools["web"].connections["127.0.0.1:9"]
        upstream = UpstreamConnection(conns)
        upstream.connection_made(MemoryTransport())
        conns.give_back(upstream)
        client = ClientConnection(server)
        client.connection_made(MemoryTransport())
        feed_client, feed_upstream = client.data_received, upstream.data_received
        for _ in range(2000):  # warm up
            feed_client(REQUEST)
            feed_upstream(RESPONSE)
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        best = float("inf")
        for _ in range(repeat):  # the minimum of several runs is the least disturbed one
            start = time.process_time()
            for _ in range(n):
                feed_client(REQUEST)
                feed_upstream(RESPONSE)
            best = min(best, time.process_time() - start)
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        runtime.resources.close()
        if shared:
            shutil.rmtree(resources.shared_dir)
        what = ((", edge filters on" if edge else "") + (", buckets in shared memory" if shared else "")
                + ("" if metrics else ", metrics off"))
        print(f"{best / n * 1e6:.2f} µs CPU per request (proxy code only{what}, best of {repeat} x {n} requests)")

    uvloop.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--edge", action="store_true", help="rate limiting and the access log on")
    parser.add_argument("--shared", action="store_true",
                        help="with --edge: rate-limit buckets in shared memory (as with workers > 1)")
    parser.add_argument("--no-metrics", action="store_true",
                        help="without the request metrics a live run always has (figures before 2026-12-06)")
    args = parser.parse_args()
    run(args.n, args.profile, 1 if args.profile else args.repeat, args.edge, args.shared, not args.no_metrics)
