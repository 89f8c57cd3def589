"""In-memory transports for driving Fulcrum's protocols without sockets (uvicorn's protocol tests
do the same): ``FakeTransport`` records what a protocol does to its side of a connection, and
``InMemoryLoop`` hands one out for every ``create_connection``, so no socket is ever opened.

A ``FakeTransport`` serves either side: the client connection's or a backend connection's.
As asyncio's transports do, ``close``/``abort`` tell the protocol ``connection_lost`` on the
next loop iteration, once; and while the peer is not reading (``peer_reading = False``) written
bytes stay buffered, and crossing the high-water mark calls ``pause_writing`` once (``drain``
empties the buffer and calls ``resume_writing``).
"""
from __future__ import annotations

import asyncio


class FakeTransport(asyncio.Transport):
    """One side of a connection: writes, reading pauses, close and abort are recorded."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        super().__init__()
        self.peer = peer
        self.protocol: asyncio.Protocol | None = None
        self.writes: list[bytes] = []    # one entry per write() or writelines() call
        self.events: list[str] = []      # pause_reading, resume_reading, close, abort: in order
        self.reading = True
        self.closed = False              # close() was called
        self.aborted = False             # abort() was called
        self.writes_after_close = 0
        self.buffer_size = 0             # what get_write_buffer_size() answers
        self.write_limits: tuple[int | None, int | None] = (None, None)
        self.peer_reading = True         # False: writes stay in the buffer (a slow peer)
        self.writing_paused = False      # pause_writing was called, resume_writing not yet

    def connect(self, protocol: asyncio.Protocol) -> "FakeTransport":
        """Make ``protocol`` this transport's: ``connection_made`` runs now."""
        self.protocol = protocol
        protocol.connection_made(self)
        return self

    # -- what the protocol wrote -------------------------------------------------------
    @property
    def data(self) -> bytes:
        """Everything written so far, as one byte string."""
        return b"".join(self.writes)

    def take(self) -> bytes:
        """Everything written since the last ``take``; the record starts afresh."""
        data = self.data
        self.writes.clear()
        return data

    # -- asyncio.Transport ----------------------------------------------------------------
    def drain(self) -> None:
        """The peer read everything buffered: below the low-water mark, writing resumes."""
        self.buffer_size = 0
        if self.writing_paused:
            self.writing_paused = False
            self.protocol.resume_writing()

    def write(self, data: bytes) -> None:
        if self.is_closing():
            self.writes_after_close += 1
        self.writes.append(bytes(data))
        if not self.peer_reading:
            self.buffer_size += len(data)
            high = self.write_limits[0]
            if high is not None and self.buffer_size > high and not self.writing_paused:
                self.writing_paused = True
                self.protocol.pause_writing()

    def writelines(self, parts) -> None:
        self.write(b"".join(parts))

    def get_extra_info(self, name: str, default=None):
        return self.peer if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.write_limits = (high, low)

    def get_write_buffer_size(self) -> int:
        return self.buffer_size

    def pause_reading(self) -> None:
        self.reading = False
        self.events.append("pause_reading")

    def resume_reading(self) -> None:
        self.reading = True
        self.events.append("resume_reading")

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self._end("close")

    def abort(self) -> None:
        self._end("abort")

    def _end(self, how: str) -> None:
        self.events.append(how)
        first = not self.is_closing()
        if how == "close":
            self.closed = True
        else:
            self.aborted = True
        if first and self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def __repr__(self) -> str:
        state = "aborted" if self.aborted else "closed" if self.closed else "open"
        return f"FakeTransport({self.peer[0]}:{self.peer[1]}, {state}, {len(self.writes)} writes)"


class InMemoryLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``create_connection`` connects the protocol to a ``FakeTransport``
    (recorded in ``dialed`` with the address asked for) instead of opening a socket. With
    ``refuse`` set, every connect fails with that OSError message."""

    def __init__(self) -> None:
        super().__init__()
        self.dialed: list[tuple[str, int, FakeTransport]] = []
        self.refuse: str | None = None

    async def create_connection(self, protocol_factory, host=None, port=None, **kwargs):
        if self.refuse is not None:
            raise ConnectionRefusedError(111, self.refuse)
        transport = FakeTransport(peer=(host, port))
        protocol = protocol_factory()
        transport.connect(protocol)
        self.dialed.append((host, port, transport))
        return transport, protocol


def run_in_memory(main) -> object:
    """Run coroutine function ``main`` to completion on a fresh ``InMemoryLoop``."""
    with asyncio.Runner(loop_factory=InMemoryLoop) as runner:
        return runner.run(main())
