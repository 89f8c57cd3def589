"""Reading pauses with reasons: a transport reads again only when every reason
that paused it has cleared (pipelining, a full write buffer on the other side,
an upstream still connecting)."""
from __future__ import annotations

import asyncio

PIPELINE = 1      # a previous request on this connection is still being answered
BACKPRESSURE = 2  # the backend connection's write buffer is over its high-water mark
CONNECTING = 4    # the backend connection for this request is not ready yet
CLOSING = 8       # an error response is queued; nothing more is read


class ReadGate:
    """Pauses and resumes reading on one transport by a set of reason bits."""

    __slots__ = ("transport", "paused_by", "pauses")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.paused_by = 0
        self.pauses = 0  # times reading stopped: lets a rate measurement see a pause it did not watch

    def pause(self, reason: int) -> None:
        if not self.paused_by:
            self.transport.pause_reading()
            self.pauses += 1
        self.paused_by |= reason

    def resume(self, reason: int) -> None:
        if self.paused_by & reason:
            self.paused_by &= ~reason
            if not self.paused_by and not self.transport.is_closing():
                self.transport.resume_reading()
