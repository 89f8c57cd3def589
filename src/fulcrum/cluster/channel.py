# The control channel between the supervisor and one worker: JSON messages over a Unix
# stream socket (a socketpair made at spawn), each framed by a 4-byte big-endian length.
#
# A request carries "id" and "op"; its answer carries "re" (the request's id) and "ok",
# with "error" when not ok. Requests are handled one at a time, in the order they came,
# so a reload and the membership sync that follows it are applied in that order.
# The channel never touches the proxy's sockets; it is cold-path only.
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import struct
from typing import Awaitable, Callable

log = logging.getLogger("fulcrum.cluster")

_LENGTH = struct.Struct(">I")
MAX_MESSAGE = 64 * 1024 * 1024  # a metrics snapshot of a huge config stays far below this

Handler = Callable[[dict], Awaitable[dict]]


class ChannelClosed(ConnectionError):
    """The other process closed the channel (it exited, or is exiting)."""


class Channel(asyncio.Protocol):
    """One end of a control channel. ``handler(request)`` answers requests (its dict is
    sent back with ``ok: true``; an exception becomes ``ok: false`` with the message);
    ``on_close()`` is called once when the other end has gone."""

    def __init__(self, handler: Handler | None = None, on_close: Callable[[], None] | None = None) -> None:
        self.handler = handler
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._requests: asyncio.Queue[dict] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self.handler is not None:
            self._worker = asyncio.get_running_loop().create_task(self._serve(), name="control channel")

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = _LENGTH.unpack_from(buffer)
            if size > MAX_MESSAGE:
                log.error("control message too large; closing the channel", extra={"fields": {"bytes": size}})
                self.transport.close()
                return
            if len(buffer) < 4 + size:
                return
            message = json.loads(bytes(buffer[4:4 + size]))
            del buffer[:4 + size]
            self._dispatch(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ChannelClosed("control channel closed"))
        self._waiting.clear()
        if self._worker is not None:
            self._worker.cancel()
        if self.on_close is not None:
            self.on_close()

    # -- sending -------------------------------------------------------------------------
    def send(self, message: dict) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ChannelClosed("control channel closed")
        body = json.dumps(message, separators=(",", ":")).encode()
        self.transport.write(_LENGTH.pack(len(body)) + body)

    async def request(self, op: str, timeout: float = 10.0, **fields) -> dict:
        """Send a request and wait for its answer; RuntimeError with the other side's
        error when it failed, asyncio.TimeoutError, or ChannelClosed."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            self.send({"id": request_id, "op": op, **fields})
            answer = await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(request_id, None)
        if not answer.get("ok"):
            raise RuntimeError(answer.get("error") or f"{op} failed")
        return answer

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- receiving -----------------------------------------------------------------------
    def _dispatch(self, message: dict) -> None:
        if "re" in message:
            future = self._waiting.get(message["re"])
            if future is not None and not future.done():
                future.set_result(message)
        elif "id" in message and self.handler is not None:
            self._requests.put_nowait(message)
        else:
            log.warning("control message ignored", extra={"fields": {"keys": sorted(message)}})

    async def _serve(self) -> None:
        while True:
            request = await self._requests.get()
            try:
                answer = {"re": request["id"], "ok": True, **(await self.handler(request))}
            except Exception as exc:  # the answer says what went wrong; the channel goes on
                if not isinstance(exc, (ValueError, LookupError, RuntimeError)):
                    log.exception("control request failed", extra={"fields": {"op": request.get("op")}})
                answer = {"re": request["id"], "ok": False, "error": str(exc) or type(exc).__name__}
            try:
                self.send(answer)
            except ChannelClosed:
                return
