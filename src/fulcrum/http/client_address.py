# Which client a request is from: the peer address unless the peer is a trusted proxy, then the
# right-most untrusted address in the header the proxies write (X-Forwarded-For, X-Real-IP or
# RFC 7239 Forwarded). The exchange resolves it once per request (Exchange.forwarded_client).
from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# One ``name=value`` pair of a Forwarded field (RFC 7239 §4); a quoted value may hold ``;`` and
# ``,``. Matching pairs left to right consumes quoted values whole, so a ``for=`` written inside
# another pair's quoted value is never mistaken for a real one.
_FORWARDED_PAIR = re.compile(rb'([^=;,\s"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s"]*)')
_UNESCAPE = re.compile(r"\\(.)")

# An address as (version, integer): what membership tests need, without building an ipaddress
# object per header entry (inet_pton is several times faster than ipaddress.ip_address).
Node = tuple[int, int]
_MAPPED_PREFIX, _MAPPED_MASK = 0xFFFF << 32, ~0xFFFFFFFF


class TrustedProxies:
    """The networks whose X-Forwarded-For / Forwarded headers are believed.

    Built once at provisioning from CIDRs or single addresses (``"10.0.0.0/8"``, ``"::1"``);
    a bad entry raises ``ValueError`` naming it. Membership is a mask compare per network
    (IPv4-mapped IPv6 addresses such as ``::ffff:10.0.0.1`` are matched as IPv4). An empty
    list trusts nobody: ``client_ip`` then returns the peer without parsing any header.
    """

    __slots__ = ("networks", "_v4", "_v6")

    def __init__(self, cidrs: list[str]) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for index, cidr in enumerate(cidrs):
            networks.append(_parse_network(index, cidr))
        self.networks = tuple(networks)
        self._v4 = tuple((int(n.network_address), int(n.netmask)) for n in networks if n.version == 4)
        self._v6 = tuple((int(n.network_address), int(n.netmask)) for n in networks if n.version == 6)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: IPAddress) -> bool:
        return self._has(_mapped(address.version, int(address)))

    def _has(self, node: Node) -> bool:
        version, value = node
        for network, mask in self._v4 if version == 4 else self._v6:
            if value & mask == network:
                return True
        return False

    def trusts(self, address: str) -> bool:
        """True if ``address`` (text, as a socket reports it) is in a trusted network."""
        node = _parse_node(address)
        return node is not None and self._has(node)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self.networks]!r})"


def _parse_network(index: int, cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    where = f"trusted_proxies[{index}]"
    if not isinstance(cidr, str):
        raise ValueError(f"{where}: must be a CIDR or an IP address string (got {cidr!r})")
    try:
        return ipaddress.ip_network(cidr.strip())
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{where}: not a CIDR or an IP address (got {cidr!r})") from exc
        raise ValueError(f"{where}: {cidr!r} has host bits set; did you mean {loose}?") from exc


def client_ip(peer: str, values: list[bytes] | None, trusted: TrustedProxies, forwarded: bool = False) -> str:
    """The address to account a request to.

    ``values`` are the field lines of the one header the trusted proxies write
    (``client_ip_header``: X-Forwarded-For, X-Real-IP, or RFC 7239 Forwarded when
    ``forwarded``); any other forwarding header a client sent is ignored, so a client
    cannot pick the header that a proxy in front passes through untouched.

    * Peer not trusted: the peer, headers ignored (a client cannot spoof its way out of a limit).
    * Peer trusted: the addresses (every field line joined by commas, in order; for Forwarded
      the ``for=`` values) walked from the right, skipping trusted ones; the first untrusted one
      is the client (the right-most untrusted address is the one our own proxies vouch for). If
      all are trusted, the left-most. Malformed entries and obfuscated identifiers (``unknown``,
      ``_hidden``) are skipped; with nothing usable, the peer.

    The peer comes back as given; an address from a header in canonical text form
    (``str(ipaddress.ip_address(...))``, IPv4-mapped IPv6 as IPv4), so one client is one key.
    """
    if not trusted.networks:
        return peer
    peer_node = _parse_node(peer)
    if peer_node is None or not trusted._has(peer_node):
        return peer
    if not values:
        return peer
    nodes = _forwarded_for_values(values) if forwarded else b",".join(values).split(b",")
    chosen = _rightmost_untrusted(nodes, trusted)
    return peer if chosen is None else str(_address(chosen))


def _rightmost_untrusted(nodes: list[bytes], trusted: TrustedProxies) -> Node | None:
    leftmost_trusted = None
    for raw in reversed(nodes):
        node = _parse_node(raw.decode("latin-1"))
        if node is None:
            continue
        if not trusted._has(node):
            return node
        leftmost_trusted = node
    return leftmost_trusted


def _forwarded_for_values(fields: list[bytes]) -> list[bytes]:
    """The ``for=`` values of Forwarded field lines, in order (each line parsed on its own)."""
    values = []
    for field in fields:
        for match in _FORWARDED_PAIR.finditer(field):
            if match.group(1).lower() == b"for":
                values.append(match.group(2))
    return values


def parse_node(text: str) -> IPAddress | None:
    """An IP address from a forwarded node, or None if it is malformed or obfuscated.

    Takes ``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:4711``, optionally in double quotes (RFC 7239 quoted-string).
    ``unknown`` and ``_identifiers`` give None; IPv4-mapped IPv6 comes back as IPv4.
    """
    node = _parse_node(text)
    return None if node is None else _address(node)


def _address(node: Node) -> IPAddress:
    version, value = node
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def _mapped(version: int, value: int) -> Node:
    if version == 6 and value & _MAPPED_MASK == _MAPPED_PREFIX:
        return 4, value & 0xFFFFFFFF
    return version, value


def _parse_node(text: str) -> Node | None:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
        if "\\" in text:
            text = _UNESCAPE.sub(r"\1", text)
    if not text or text[0] == "_" or text.lower() == "unknown":
        return None
    if text[0] == "[":
        close = text.find("]")
        if close < 0 or not _is_port_suffix(text[close + 1 :]):
            return None
        text = text[1:close]
    elif text.count(":") == 1:  # IPv4 with a port; an IPv6 address has at least two colons
        text, port = text.split(":")
        if not _is_port_suffix(":" + port):
            return None
    try:
        if ":" not in text:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text))
        scope = text.find("%")  # a zone (fe80::1%eth0) is dropped: the key is the address
        packed = socket.inet_pton(socket.AF_INET6, text if scope < 0 else text[:scope])
    except (OSError, ValueError):
        return None
    return _mapped(6, int.from_bytes(packed))


def _is_port_suffix(rest: str) -> bool:
    """Empty, or ``:`` and a port: digits, or an obfuscated port (``_abc``) per RFC 7239 §6.3."""
    if not rest:
        return True
    port = rest[1:]
    return rest[0] == ":" and bool(port) and ((port.isascii() and port.isdigit()) or port[0] == "_")
