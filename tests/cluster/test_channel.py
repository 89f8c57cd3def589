"""The control channel over a real Unix socketpair: requests answered in order, errors carried
back as answers, large messages reassembled from many reads, and a closed peer failing the
requests that wait on it."""
from __future__ import annotations

import asyncio
import socket

import pytest

from fulcrum.cluster.channel import Channel, ChannelClosed


async def connected(handler=None, on_close=None):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    _, left = await loop.create_unix_connection(lambda: Channel(on_close=on_close), sock=a)
    _, right = await loop.create_unix_connection(lambda: Channel(handler), sock=b)
    return left, right


def test_requests_are_answered_one_at_a_time_in_order():
    seen = []

    async def handler(request):
        seen.append(request["n"])
        await asyncio.sleep(0.01 if request["n"] == 0 else 0)  # the first is slow: still first
        if request["op"] == "fail":
            raise ValueError("no such pool 'x'")
        return {"echo": request["n"], "blob": request.get("blob")}

    async def run():
        left, right = await connected(handler)
        answers = await asyncio.gather(*(left.request("echo", n=n) for n in range(5)))
        assert [a["echo"] for a in answers] == [0, 1, 2, 3, 4] and seen == [0, 1, 2, 3, 4]
        with pytest.raises(RuntimeError, match="no such pool 'x'"):
            await left.request("fail", n=9)
        blob = "x" * 3_000_000  # many reads on the other side
        assert (await left.request("echo", n=10, blob=blob))["blob"] == blob
        left.close()
        right.close()

    asyncio.run(run())


def test_a_closed_peer_fails_waiting_requests_and_later_sends():
    async def never(request):
        await asyncio.sleep(3600)

    async def run():
        closed = asyncio.Event()
        left, right = await connected(never, on_close=closed.set)
        waiting = asyncio.ensure_future(left.request("snapshot", timeout=30))
        await asyncio.sleep(0.01)
        right.close()
        with pytest.raises(ChannelClosed):
            await waiting
        await asyncio.wait_for(closed.wait(), 5)
        with pytest.raises(ChannelClosed):
            left.send({"op": "late"})

    asyncio.run(run())
