"""What an exchange needs of the client connection it answers (proxy/exchange.py).

A base class rather than a typing.Protocol: the compiled core (fulcrum/core.py) reads these
attributes and calls these methods in C, which needs the type to be known. The exchange
knows nothing more of the connection; ClientConnection (proxy/client.py) is the one subclass.
"""
from __future__ import annotations

from fulcrum.http.parser import ParserCallbacks


class Downstream(ParserCallbacks):
    """The client side of an exchange: its transport, read gate and identity, and the calls
    an exchange makes back to it. Its parser's callbacks too (http/parser.py): a compiled
    type has one line of bases, and the parser calls them in C."""

    __slots__ = (
        "transport",        # asyncio.Transport: write/writelines
        "gate",             # flow_control.ReadGate: pause/resume reading from the client
        "loop", "tls", "client_ip", "client_ip_bytes",
        "valid_host",       # the last Host found valid on this connection
        "send_since",       # non-zero while the client's write buffer is over its high-water mark
        "request_metrics",  # observability's recorder, or None
        "request_ids",      # request_ids.RequestIds: the process's ids, for new exchanges
    )

    def trusts_peer(self, trusted) -> bool:
        raise NotImplementedError

    def exchange_done(self, exchange) -> None:
        raise NotImplementedError

    def abort_response(self) -> None:
        raise NotImplementedError

    def tunnel_opened(self, tunnel) -> bytes:
        raise NotImplementedError

    def tunnel_closed(self) -> None:
        raise NotImplementedError
