"""The request side of a proxy, as pure functions: from a parsed request head to what the
backend is sent (RFC 9110 §7.6, RFC 9112 §3, §6). No I/O, no clock, no configuration
object: the caller passes the few numbers it needs and gets bytes and facts back.

``plan_request`` judges the head (raising HttpError for anything ambiguous) and returns a
``RequestPlan``; ``upstream_head`` serialises the head for the backend from a plan and what
only the connection knows (the client's address, the scheme, the request id). Invariants:
hop-by-hop headers go by name, never by line, and no Connection token can drop the request
line, Host, the framing headers or the forwarding headers Fulcrum writes itself.
"""
from __future__ import annotations

import re

from fulcrum.http.errors import BadRequest, HttpError
from fulcrum.http.headers import (
    CONNECTION, CONTENT_LENGTH, FORWARDED_FOR, HOST, PEER, REQUEST_HEADERS,
    REQUEST_ID, TRANSFER_ENCODING, asks_websocket, check_transfer_encoding, named_by_connection,
    split_absolute_form, valid_authority, without_named,
)
from fulcrum.http.wire import PASSED, header_line, join, plain_connection, request_kind

# A client's X-Request-ID is kept only when it is 1-200 visible ASCII characters: it is
# echoed into logs and responses, where a space or a line break could forge a field or a line.
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}")
ALLOW = b"Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_WEBSOCKET = b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
# Single bytes looked for as ints: CPython 3.11's `b"#" in value` first tries its operand as an
# int and formats a TypeError it then drops (~1,000 instructions); `ord("#") in value` is a memchr.
_HASH, _UNDERSCORE = ord("#"), ord("_")
_SLASH = ord("/")


class RequestPlan:
    """What the backend gets for one request head, and what the head said about its body.

    ``fields`` are the header fields passed on, flat (``name, b": ", value, b"\r\n"`` each,
    see http/headers.py), without Host, the framing and forwarding headers and the hop-by-hop
    ones; ``peer_fields`` the client's Forwarded / X-Real-IP fields, passed on only by the
    caller's policy. ``framing`` is the Content-Length or Transfer-Encoding line for the
    backend (or b""); ``upgrade`` is b"websocket" when the request may become a tunnel.
    Built by ``plan_request``.
    """

    __slots__ = ("target", "host", "fields", "peer_fields", "framing", "has_body", "chunked",
                 "content_length", "upgrade", "request_id", "forwarded_for")


def plan_request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], http11: bool,
                 upgrade: bool, max_body_size: int, known_host: bytes = b"") -> RequestPlan:
    """Judge a parsed request head and plan what the backend is sent.

    ``upgrade``: llhttp saw ``Connection: upgrade``. Only a GET without a body whose Upgrade
    lists ``websocket`` may become a tunnel, and only ``websocket`` is passed on; any other
    upgrade request is an ordinary one without its upgrade headers. ``known_host``: a Host
    value already found valid on this connection (keep-alive repeats it; skips the check).
    Raises HttpError: 400 for anything ambiguous, 405 for CONNECT, 413 for a Content-Length
    over ``max_body_size`` (0 = no limit).
    """
    if method == b"CONNECT":
        raise HttpError(405, "CONNECT is not proxied", ALLOW)
    if _HASH in target:
        raise BadRequest("a request target carries no fragment (#)")
    authority = None
    if not target or target[0] != _SLASH:
        if target[:4].lower() == b"http":
            authority, target = split_absolute_form(target)  # RFC 9112 §3.2.2
        elif target != b"*" or method != b"OPTIONS":
            raise BadRequest("request target must be a path, an absolute URL, or * for OPTIONS")
    fields: list[bytes] = []
    host: bytes | None = None
    forwarded_for: list[bytes] | None = None
    te: list[bytes] | None = None
    content_length: bytes | None = None
    named: set[bytes] | None = None
    peer_fields: list[bytes] | None = None
    request_id = b""
    for name, value in headers:
        kind = request_kind(name)
        if kind == PASSED:
            if _UNDERSCORE in name and _spelled_as_ours(name):
                continue  # X_Real_IP: what CGI-style servers read as X-Real-IP
            fields.extend((name, b": ", value, b"\r\n"))
        elif kind == HOST:
            if host is not None:
                raise BadRequest("more than one Host header")
            host = value
        elif kind == CONTENT_LENGTH:
            content_length = value
        elif kind == TRANSFER_ENCODING:
            if te is None:
                te = []
            te.append(value)
        elif kind == FORWARDED_FOR:
            if forwarded_for is None:
                forwarded_for = []
            forwarded_for.append(value)
        elif kind == REQUEST_ID:
            if _REQUEST_ID.fullmatch(value):
                request_id = value
        elif kind == CONNECTION and not plain_connection(value):
            tokens = named_by_connection(value)
            if tokens:
                named = tokens if named is None else named | tokens
        elif kind == PEER:
            if peer_fields is None:
                peer_fields = []
            peer_fields.extend((name, b": ", value, b"\r\n"))
    if host is not None:
        if host != known_host and not valid_authority(host):
            raise BadRequest("invalid Host header")
    elif http11:
        raise BadRequest("missing Host header")
    else:
        host = b""
    if authority is not None:
        host = authority  # the target's authority wins over Host
    if named:
        fields = without_named(fields, named)
        if peer_fields:
            peer_fields = without_named(peer_fields, named)
    framing = b""
    has_body = chunked = False
    length = 0
    if te:
        check_transfer_encoding(te)
        framing, has_body, chunked = _CHUNKED, True, True
    elif content_length is not None:
        length = int(content_length)  # llhttp has checked it is decimal and single
        if max_body_size and length > max_body_size:
            raise HttpError(413, f"Content-Length {length} exceeds the limit of {max_body_size} bytes")
        framing, has_body = header_line(b"Content-Length: ", content_length), length > 0
    tunnel = None
    if upgrade and method == b"GET" and not has_body:
        for name, value in headers:
            if name.lower() == b"upgrade" and asks_websocket(value):
                tunnel = b"websocket"
                break
    plan = RequestPlan.__new__(RequestPlan)  # (no __init__: the compiled core makes it without a call)
    plan.target = target
    plan.host = host
    plan.fields = fields
    plan.peer_fields = peer_fields
    plan.framing = framing
    plan.has_body = has_body
    plan.chunked = chunked
    plan.content_length = length
    plan.upgrade = tunnel
    plan.request_id = request_id
    plan.forwarded_for = forwarded_for
    return plan




def _spelled_as_ours(name: bytes) -> bool:
    """True for a name that some servers (CGI, WSGI) read as a header Fulcrum owns or polices,
    because they map '_' and '-' alike: ``X_Forwarded_For``, ``X_Real_IP``. Such a header
    would pass every rule written for the real one, so it is dropped."""
    return REQUEST_HEADERS.get(name.lower().replace(b"_", b"-")) is not None


def upstream_head(method: bytes, target: bytes, host: bytes, fields: list[bytes], plan: RequestPlan,
                  client_ip: bytes, https: bool, request_id: bytes, peer_fields: bool = False) -> bytes:
    """The head the backend is sent: request line, Host, the passed fields (and the peer's
    forwarding fields when ``peer_fields``), framing, the upgrade, then Fulcrum's forwarding
    headers. ``host`` is the plan's, or the backend's authority for a request without one."""
    parts = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    # (lists concatenated, single parts appended: no tuple built for extend)
    parts += fields
    if peer_fields and plan.peer_fields:
        parts += plan.peer_fields
    if plan.framing:
        parts.append(plan.framing)
    if plan.upgrade is not None:
        parts.append(_WEBSOCKET)
    if plan.host:
        parts.append(b"X-Forwarded-Host: ")
        parts.append(plan.host)
        parts.append(b"\r\n")
    parts.append(b"X-Forwarded-For: ")
    forwarded_for = plan.forwarded_for
    if forwarded_for:
        for earlier in forwarded_for:
            parts.append(earlier)
            parts.append(b", ")
    parts.append(client_ip)
    parts.append(b"\r\nX-Forwarded-Proto: https\r\nX-Request-ID: " if https
                 else b"\r\nX-Forwarded-Proto: http\r\nX-Request-ID: ")
    parts.append(request_id)
    parts.append(b"\r\n\r\n")
    return join(parts)


def backend_authority(host: str, port: int) -> bytes:
    """``host[:port]`` for a Host header naming a backend (port 80 left out; IPv6 bracketed)."""
    if ":" in host:
        host = f"[{host}]"
    return (host if port == 80 else f"{host}:{port}").encode()


def header_pairs(fields: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Flat header fields (see http/headers.py) as ``(name, value)`` pairs."""
    return list(zip(fields[0::4], fields[2::4]))


def header_fields(pairs) -> list[bytes]:
    """``(name, value)`` pairs as flat header fields."""
    fields: list[bytes] = []
    for name, value in pairs:
        fields.extend((name, b": ", value, b"\r\n"))
    return fields
