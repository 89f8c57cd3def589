"""Header hygiene for a proxy: hop-by-hop stripping and the framing checks
that llhttp leaves to us (RFC 9110 §7.6.1, RFC 9112 §6, §7).

Pure functions over lists of ``(name, value)`` byte pairs, and over header fields as the
proxy builds heads: one flat list, ``name, b": ", value, b"\r\n"`` for each field, which one
``b"".join`` turns into the head (no formatting per field on the hot path); no I/O.
"""
from __future__ import annotations

import re

from fulcrum.http.errors import BadRequest

# Headers that describe one connection, never the message (RFC 9110 §7.6.1).
# Transfer-Encoding and Content-Length are re-framed by the proxy itself.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"http2-settings",
})

# What the proxy does with a header, looked up by lower-cased name; a name not
# in a table passes as is. One lookup per header on the hot path.
HOP, HOST, CONTENT_LENGTH, TRANSFER_ENCODING, FORWARDED_FOR, REQUEST_ID, OURS, CONNECTION, PEER = range(9)
_DROPPED = {name: HOP for name in HOP_BY_HOP}
_FRAMING = {b"connection": CONNECTION, b"transfer-encoding": TRANSFER_ENCODING,
            b"content-length": CONTENT_LENGTH, b"x-request-id": REQUEST_ID}
REQUEST_HEADERS = {
    **_DROPPED, **_FRAMING, b"host": HOST, b"x-forwarded-for": FORWARDED_FOR,
    b"x-forwarded-proto": OURS, b"x-forwarded-host": OURS,
    # What a proxy in front says about the client: kept only by the forwarded_headers policy.
    b"forwarded": PEER, b"x-real-ip": PEER,
}
RESPONSE_HEADERS = {**_DROPPED, **_FRAMING}
# Names a Connection header can never make hop-by-hop: the framing and forwarding headers
# Fulcrum writes or judges itself (RFC 9110 §7.6.1 lets a sender nominate any name; a proxy
# that obeys blindly lets a client drop Host or Content-Length from what the backend sees).
NEVER_NOMINATED = frozenset(REQUEST_HEADERS) | frozenset(RESPONSE_HEADERS)

_PLAIN_CONNECTION = frozenset({b"close", b"keep-alive"})


def connection_tokens(value: bytes) -> set[bytes]:
    """The lower-cased options of one Connection header value."""
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def named_by_connection(value: bytes) -> set[bytes] | None:
    """Header names a Connection header makes hop-by-hop, beyond close/keep-alive and the
    names no token may remove (``NEVER_NOMINATED``); None when there are none."""
    if value.lower() in _PLAIN_CONNECTION:
        return None  # the usual value: no set built
    return connection_tokens(value) - _PLAIN_CONNECTION - NEVER_NOMINATED or None


def without_named(fields: list[bytes], named: set[bytes]) -> list[bytes]:
    """Header fields (flat: ``name, b": ", value, b"\r\n"`` each) whose name is not in ``named``."""
    kept: list[bytes] = []
    for i in range(0, len(fields), 4):
        if fields[i].lower() not in named:
            kept.extend(fields[i:i + 4])
    return kept


def field_lines(fields: list[bytes]) -> list[bytes]:
    """Flat header fields as lines (``Name: value\r\n``), the form filters see."""
    return [b"".join(fields[i:i + 4]) for i in range(0, len(fields), 4)]


def asks_websocket(upgrade: bytes | None) -> bool:
    """True when an Upgrade value lists the ``websocket`` protocol (RFC 6455 §4.1)."""
    if upgrade is None:
        return False
    return any(token.strip().lower() == b"websocket" for token in upgrade.split(b","))


def check_transfer_encoding(values: list[bytes]) -> None:
    """Only a single, final ``chunked`` coding is accepted on requests.

    llhttp accepts ``gzip, chunked``; a proxy that forwards codings it does not
    understand invites desync, so anything but exactly ``chunked`` is a 400.
    """
    # Only spaces around it: llhttp refuses a tab there, but only after the head was
    # forwarded; judging the same way first keeps a refused request from reaching a backend.
    if len(values) != 1 or values[0].strip(b" ").lower() != b"chunked":
        raise BadRequest("unsupported Transfer-Encoding (only a single 'chunked' is accepted)")


def host_without_port(host: bytes) -> str:
    """``Example.com:8080`` → ``example.com``; ``[::1]:80`` → ``[::1]``."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[: end + 1] if end != -1 else text
    return text.split(":", 1)[0]


# A Host value or an absolute-form authority: reg-name or IPv4, or an IP-literal, and an
# optional port (RFC 3986 §3.2.2). Anything else (spaces, commas, '@', '/') is refused: a
# value two readers could split differently must not reach routing or a backend.
# An empty value is allowed (HTTP/1.1 permits an empty Host); an empty host with a port is not.
_AUTHORITY = re.compile(rb"(?:(?:[A-Za-z0-9\-._~!$&'()*+;=%]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?)?")


def valid_authority(value: bytes) -> bool:
    return _AUTHORITY.fullmatch(value) is not None


def split_absolute_form(target: bytes) -> tuple[bytes, bytes]:
    """``http://host:8080/a?b`` → ``(b"host:8080", b"/a?b")`` (RFC 9112 §3.2.2)."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise BadRequest("invalid absolute-form request target")
    cut = len(rest)
    for sep in (b"/", b"?"):
        i = rest.find(sep)
        if i != -1:
            cut = min(cut, i)
    authority, path = rest[:cut], rest[cut:]
    if not authority or authority[:1] == b":" or not valid_authority(authority):
        raise BadRequest("invalid authority in absolute-form request target")
    if not path.startswith(b"/"):
        path = b"/" + path
    return authority, path
