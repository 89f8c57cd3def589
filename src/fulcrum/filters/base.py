"""The filter interface: the phases a request-path filter may hook, and what each may do.

A filter is a small class registered by name (``filters/registry.py``) or named by a
dotted path in config. It overrides only the phases it needs; the chain
(``filters/chain.py``) is composed once at provisioning and calls just those.

Phases, in the order a request meets them:

``on_request(exchange) -> Reply | None``
    After the head is parsed and the route is known, before a backend is picked.
    Return None to go on, or a ``Reply`` to answer from the proxy and stop the chain
    (no backend is tried). May read ``exchange.header(name)``, ``exchange.method``,
    ``exchange.target``, ``exchange.client_ip`` and set ``exchange.client_ip``.
``on_response(exchange, head: ResponseHead) -> None``
    Before the response head is written, for every response: from a backend or from
    the proxy itself (404, 429, 502 …). Adds, replaces or drops header lines.
``on_log(exchange) -> None``
    Once the exchange has ended (answered, or the client left: ``status`` 0).
    ``exchange.duration`` and ``exchange.upstream_time`` are set.

An exception in any phase answers 500 for that request (when nothing was sent yet),
is logged once with the request id, and costs nothing else (recovery).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from fulcrum.filters.resources import Resources
    from fulcrum.proxy.exchange import Exchange


class Reply:
    """A local answer from ``on_request``: a status, a detail for the body and extra header lines."""

    __slots__ = ("status", "detail", "headers")

    def __init__(self, status: int, detail: str | None = None, headers: list[tuple[str, str]] = ()) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers

    @property
    def header_bytes(self) -> bytes:
        return b"".join(b"%s: %s\r\n" % (n.encode("latin-1"), v.encode("latin-1")) for n, v in self.headers)


class ResponseHead:
    """The header lines of a response about to be written, for ``on_response``.

    ``lines`` are complete ``b"Name: value\\r\\n"`` lines with no final empty line; for a
    backend's response the first is the status line, which ``has``/``remove``/``set``
    never match (it has no ``name:`` prefix).
    """

    __slots__ = ("status", "lines")

    def __init__(self, status: int, lines: list[bytes]) -> None:
        self.status = status
        self.lines = lines

    def _is(self, line: bytes, name: bytes) -> bool:
        return line[len(name):len(name) + 1] == b":" and line[:len(name)].lower() == name

    def has(self, name: bytes) -> bool:
        """True if a header ``name`` (lower case) is present."""
        return any(self._is(line, name) for line in self.lines)

    def add(self, name: bytes, value: bytes) -> None:
        self.lines.append(b"%s: %s\r\n" % (name, value))

    def remove(self, name: bytes) -> None:
        """Drop every line of header ``name`` (lower case)."""
        self.lines[:] = [line for line in self.lines if not self._is(line, name)]

    def set(self, name: bytes, value: bytes, override: bool = True) -> None:
        """Set ``name`` to ``value``; an existing one is replaced, or kept when not ``override``."""
        lower = name.lower()
        if self.has(lower):
            if not override:
                return
            self.remove(lower)
        self.add(name, value)


class Filter:
    """A step of the request path. Subclasses set ``name`` and, when configurable, ``Options``
    (a pydantic model validated at provisioning), and override the phases they need."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel] | None] = None

    def __init__(self, options: BaseModel | None, resources: "Resources") -> None:
        self.options = options

    def on_request(self, exchange: "Exchange") -> Reply | None:
        return None

    def on_response(self, exchange: "Exchange", head: ResponseHead) -> None:
        return None

    def on_log(self, exchange: "Exchange") -> None:
        return None
