"""A tunnel: after ``101 Switching Protocols`` (WebSocket), bytes are relayed both ways
unchanged between the client and the backend until either side closes or both are idle
for ``timeouts.tunnel_idle``.

Both transports get a new protocol (``_Side``), so the HTTP protocols' hot paths carry no
tunnel check. Backpressure is the same as for bodies: a side whose write buffer passes its
high-water mark pauses reading on the other. Half-closes pass through (EOF on one side is a
write EOF on the other); the tunnel ends when both sides have sent EOF or either is lost.
An open tunnel counts as in flight on its backend until it ends, and is logged once then.
A side that takes none of the bytes waiting for it for ``timeouts.client_send`` ends the
tunnel too: writing to it while never reading cannot hold the tunnel open.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol


class TunnelOwner(Protocol):
    """The exchange that became the tunnel: it ends (and is logged) with it."""

    request_id: bytes

    def tunnel_closed(self, bytes_up: int, bytes_down: int) -> None: ...


class TunnelClient(Protocol):
    """The client connection whose transport the tunnel takes over."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def tunnel_closed(self) -> None: ...


class TunnelUpstream(Protocol):
    transport: asyncio.Transport

log = logging.getLogger("fulcrum.proxy")


class _Side(asyncio.Protocol):
    """One end of a tunnel: hands what it reads to the tunnel, to be written on the other end."""

    __slots__ = ("tunnel", "transport", "peer", "eof", "upstream", "paused_at", "buffered")

    def __init__(self, tunnel: "Tunnel", transport: asyncio.Transport, upstream: bool) -> None:
        self.tunnel = tunnel
        self.transport = transport
        self.peer: _Side | None = None
        self.eof = False
        self.upstream = upstream
        self.paused_at = 0.0  # since when this side has a full write buffer (0: it has not)
        self.buffered = 0

    def data_received(self, data: bytes) -> None:
        self.tunnel.relay(self, data)

    def eof_received(self) -> bool:
        return self.tunnel.half_closed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.close(f"{'backend' if self.upstream else 'client'} closed")

    def pause_writing(self) -> None:
        self.paused_at = self.tunnel.loop.time()
        self.buffered = self.transport.get_write_buffer_size()
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused_at = 0.0
        if not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()

    def not_reading(self, now: float, timeout: float) -> bool:
        """True when this side has taken none of its buffered bytes for ``timeout``."""
        if not self.paused_at:
            return False
        buffered = self.transport.get_write_buffer_size()
        if buffered < self.buffered:
            self.paused_at, self.buffered = now, buffered
            return False
        return now - self.paused_at >= timeout


class Tunnel:
    """Relays bytes between a client and a backend connection after a protocol switch."""

    __slots__ = ("exchange", "client", "client_side", "upstream_side", "loop", "idle_timeout",
                 "last_active", "timer", "closed", "bytes_up", "bytes_down", "send_timeout")

    def __init__(self, exchange: TunnelOwner, client: TunnelClient, upstream: TunnelUpstream,
                 idle_timeout: float, send_timeout: float) -> None:
        self.exchange = exchange
        self.client = client
        self.loop = client.loop
        self.idle_timeout = idle_timeout
        self.send_timeout = send_timeout
        self.closed = False
        self.bytes_up = self.bytes_down = 0
        self.client_side = _Side(self, client.transport, upstream=False)
        self.upstream_side = _Side(self, upstream.transport, upstream=True)
        self.client_side.peer, self.upstream_side.peer = self.upstream_side, self.client_side
        self.last_active = self.loop.time()
        self.timer = self.loop.call_at(self.last_active + min(idle_timeout, send_timeout), self._on_timer)

    def start(self, from_client: bytes, from_upstream: bytes) -> None:
        """Swap the protocols in and pass on what each side sent after its head."""
        for side in (self.client_side, self.upstream_side):
            side.transport.set_protocol(side)
            side.transport.resume_reading()
        if from_upstream:
            self.relay(self.upstream_side, from_upstream)
        if from_client:
            self.relay(self.client_side, from_client)

    def relay(self, side: _Side, data: bytes) -> None:
        if self.closed:
            return
        self.last_active = self.loop.time()
        if side.upstream:
            self.bytes_down += len(data)
        else:
            self.bytes_up += len(data)
        side.peer.transport.write(data)

    def half_closed(self, side: _Side) -> bool:
        """EOF from one side: pass it on as a write EOF; with both sides done, close."""
        side.eof = True
        peer = side.peer
        if peer.eof or not peer.transport.can_write_eof():
            self.close("closed by both sides")
            return False
        peer.transport.write_eof()
        return True  # keep our end open for what the other side still sends

    def _on_timer(self) -> None:
        self.timer = None
        if self.closed:
            return
        now = self.loop.time()
        for side in (self.client_side, self.upstream_side):
            if side.not_reading(now, self.send_timeout):
                side.transport.abort()  # its unsent bytes would keep it open for ever
                self.close(f"{'backend' if side.upstream else 'client'} not reading for {self.send_timeout:g}s")
                return
        due = self.last_active + self.idle_timeout
        if now < due:
            self.timer = self.loop.call_at(min(due, now + self.send_timeout), self._on_timer)
            return
        self.close(f"idle for {self.idle_timeout:g}s")

    def close(self, reason: str = "closed") -> None:
        """End the tunnel: both transports close once their buffers are written."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for side in (self.client_side, self.upstream_side):
            side.transport.close()
        self.client.tunnel_closed()
        self.exchange.tunnel_closed(self.bytes_up, self.bytes_down)
        log.debug("tunnel closed", extra={"fields": {
            "request_id": self.exchange.request_id.decode("latin-1"), "reason": reason,
            "bytes_up": self.bytes_up, "bytes_down": self.bytes_down}})
