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
``on_upstream_request(exchange, request: UpstreamRequest) -> None``
    After every ``on_request`` let the request through, before the head for the backend
    is serialised (once per request, not per retry). May change ``request.method``,
    ``request.target`` (origin-form) and ``request.headers`` (``get``/``get_all``/``has``/
    ``set``/``add``/``remove``, bytes names and values); Host, the framing and forwarding
    headers and hop-by-hop ones are Fulcrum's and refused (``http/upstream_request.py``).
    On a route, the built-in rewrites (``strip_prefix``, ``rewrite``, ``request_headers``)
    run first, then the filters that hook this phase, global ones before the route's.
``on_response(exchange, head: ResponseHead) -> None``
    Before the response head is written, for every response: from a backend or from
    the proxy itself (404, 429, 502 …). Adds, replaces or drops header lines.
``on_log(exchange) -> None``
    Once the exchange has ended (answered, or the client left: ``status`` 0).
    ``exchange.duration`` and ``exchange.upstream_time`` are set.

An exception in any phase answers 500 for that request (when nothing was sent yet),
is logged once with the request id, and costs nothing else (recovery).

State for one request lives in ``exchange.ctx``, a dict created on first use and dropped
with the exchange (key it by the filter's name). State across requests lives on the filter
instance, which every request of its routes shares. A phase no filter overrides costs
nothing: the chain calls only the methods a filter class defines. The whole contract, with
an example, is in docs/plugins.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel

from fulcrum.http.upstream_request import UpstreamRequest

if TYPE_CHECKING:
    from fulcrum.filters.resources import Resources


class Exchange(Protocol):
    """What a filter sees of an exchange (declared here: filters never import the proxy).
    A response or log hook may also be handed a connection's own rejection of a malformed
    head, which has the same fields with empty values (no headers, method ``-``)."""

    method: bytes
    target: bytes        # origin-form as received (absolute-form already reduced)
    host: bytes          # the Host header (or the absolute-form authority); b"" without one
    client_ip: str       # resolved through trusted_proxies; a filter may set it
    request_id: bytes
    route: str           # the route's name; "" when none matched
    status: int          # the response status, once one is known (0: the client left)
    duration: float      # on_log: head received → exchange ended, seconds
    upstream_time: float  # on_log: request sent → response head, for the last try

    @property
    def secure(self) -> bool: ...        # the client connection is TLS

    @property
    def ctx(self) -> dict: ...           # per-request state, created on first use

    def header(self, name: bytes) -> bytes | None: ...        # first value; name lower case

    def header_values(self, name: bytes) -> list[bytes]: ...  # every value, in order


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

    def on_request(self, exchange: Exchange) -> Reply | None:
        return None

    def on_upstream_request(self, exchange: Exchange, request: UpstreamRequest) -> None:
        return None

    def on_response(self, exchange: Exchange, head: ResponseHead) -> None:
        return None

    def on_log(self, exchange: Exchange) -> None:
        return None
