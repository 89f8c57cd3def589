"""What an upstream connection tells the exchange it serves (proxy/upstream.py).

A base class rather than a typing.Protocol: the compiled core (fulcrum/core.py) calls these
methods in C, which needs the type to be known. Exchange (proxy/exchange.py) is the one
subclass; the upstream connection knows nothing more of it.
"""
from __future__ import annotations


class ResponseSink:
    """The receiving end of a backend's response."""

    __slots__ = ("upgrade",)  # the protocol asked for, when the request may become a tunnel

    # ``headers`` below: the backend's header fields, flat (name, value, name, value, ...).

    def on_informational(self, status: int, reason: bytes, headers: list) -> None:
        raise NotImplementedError

    def on_response_head(self, conn, status: int, reason: bytes, headers: list) -> bool:
        raise NotImplementedError

    def on_response_body(self, chunk: bytes) -> None:
        raise NotImplementedError

    def on_response_complete(self, conn) -> None:
        raise NotImplementedError

    def on_switching_protocols(self, conn, reason: bytes, headers: list) -> None:
        raise NotImplementedError

    def start_tunnel(self, conn, rest: bytes) -> None:
        raise NotImplementedError

    def upstream_failed(self, conn, reason: str, nothing_received: bool) -> None:
        raise NotImplementedError

    def upstream_invalid(self, conn, reason: str) -> None:
        raise NotImplementedError

    def upstream_timed_out(self, conn) -> None:
        raise NotImplementedError

    def upstream_write_paused(self) -> None:
        raise NotImplementedError

    def upstream_write_resumed(self) -> None:
        raise NotImplementedError

    def internal_error(self, exc: BaseException, where: str) -> None:
        raise NotImplementedError
