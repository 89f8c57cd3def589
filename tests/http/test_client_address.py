# client_ip: the peer unless it is a trusted proxy, then the right-most untrusted address of
# the configured header (X-Forwarded-For, X-Real-IP or RFC 7239 Forwarded); spoofing, chains, IPv6, ports, garbage. TrustedProxies.
from __future__ import annotations

import ipaddress

import pytest

from fulcrum.http.client_address import TrustedProxies, client_ip, parse_node

TRUSTED = TrustedProxies(["10.0.0.0/8", "192.168.1.1", "2001:db8:ffff::/48"])
LB1, LB2 = "10.0.0.1", "10.0.0.2"


@pytest.mark.parametrize(
    ("peer", "xff", "fwd", "expected"),
    [
        # --- the peer is not trusted: headers are ignored ---
        pytest.param("203.0.113.9", None, None, "203.0.113.9", id="untrusted-no-headers"),
        pytest.param("203.0.113.9", [b"1.2.3.4"], None, "203.0.113.9", id="spoofed-xff-ignored"),
        pytest.param("203.0.113.9", None, [b"for=1.2.3.4"], "203.0.113.9", id="spoofed-forwarded-ignored"),
        pytest.param("203.0.113.9", [b"10.0.0.5"], None, "203.0.113.9", id="spoofed-trusted-address-ignored"),
        pytest.param("not-an-ip", [b"1.2.3.4"], None, "not-an-ip", id="unparsable-peer-returned-as-is"),
        # --- X-Forwarded-For through trusted proxies ---
        pytest.param(LB1, None, None, LB1, id="trusted-no-headers"),
        pytest.param(LB1, [b"198.51.100.7"], None, "198.51.100.7", id="one-proxy"),
        pytest.param(LB1, [b"198.51.100.7, 10.0.0.2"], None, "198.51.100.7", id="two-proxies"),
        pytest.param(LB1, [b"198.51.100.7", b"10.0.0.2"], None, "198.51.100.7", id="two-proxies-two-lines"),
        pytest.param(LB1, [b"6.6.6.6, 198.51.100.7, 10.0.0.2"], None, "198.51.100.7", id="client-spoof-left-of-real"),
        pytest.param(LB1, [b"6.6.6.6,198.51.100.7", b" 192.168.1.1 "], None, "198.51.100.7", id="lines-joined-in-order"),
        pytest.param(LB1, [b"10.0.0.9, 10.0.0.2"], None, "10.0.0.9", id="all-trusted-leftmost"),
        pytest.param(LB1, [b"garbage, 10.0.0.9, 10.0.0.2"], None, "10.0.0.9", id="all-trusted-leftmost-valid"),
        pytest.param(LB1, [b"198.51.100.7, , nonsense, 999.1.1.1"], None, "198.51.100.7", id="garbage-skipped"),
        pytest.param(LB1, [b"nonsense, unknown"], None, LB1, id="only-garbage-falls-back-to-peer"),
        pytest.param(LB1, [b""], None, LB1, id="empty-value-falls-back-to-peer"),
        pytest.param(LB1, [b"198.51.100.7:5555"], None, "198.51.100.7", id="xff-ipv4-with-port"),
        pytest.param(LB1, [], None, LB1, id="no-field-lines"),
        # --- IPv6 ---
        pytest.param("2001:db8:ffff::1", [b"2001:DB8::0:1"], None, "2001:db8::1", id="ipv6-canonical"),
        pytest.param(LB1, [b"2001:db8::1, 2001:db8:ffff::2"], None, "2001:db8::1", id="ipv6-chain"),
        pytest.param(LB1, [b"[2001:db8::1]:443"], None, "2001:db8::1", id="ipv6-bracketed-with-port"),
        pytest.param("::ffff:10.0.0.1", [b"198.51.100.7"], None, "198.51.100.7", id="ipv4-mapped-peer-trusted"),
        pytest.param(LB1, [b"::ffff:198.51.100.7"], None, "198.51.100.7", id="ipv4-mapped-entry-as-ipv4"),
        pytest.param("::ffff:203.0.113.9", [b"1.2.3.4"], None, "::ffff:203.0.113.9", id="ipv4-mapped-untrusted"),
        # --- RFC 7239 Forwarded ---
        pytest.param(LB1, None, [b"for=198.51.100.7"], "198.51.100.7", id="fwd-plain"),
        pytest.param(LB1, None, [b"For=198.51.100.7;proto=https;by=10.0.0.1"], "198.51.100.7", id="fwd-params"),
        pytest.param(LB1, None, [b'for="198.51.100.7:80"'], "198.51.100.7", id="fwd-ipv4-port"),
        pytest.param(LB1, None, [b'for="[2001:db8:cafe::17]:4711"'], "2001:db8:cafe::17", id="fwd-ipv6-port"),
        pytest.param(LB1, None, [b'for="[2001:db8:cafe::17]"'], "2001:db8:cafe::17", id="fwd-ipv6"),
        pytest.param(LB1, None, [b"for=198.51.100.7, for=10.0.0.2"], "198.51.100.7", id="fwd-chain"),
        pytest.param(LB1, None, [b"for=198.51.100.7", b"for=10.0.0.2"], "198.51.100.7", id="fwd-chain-two-lines"),
        pytest.param(LB1, None, [b"for=6.6.6.6, for=198.51.100.7, for=10.0.0.2"], "198.51.100.7", id="fwd-spoof-left"),
        pytest.param(LB1, None, [b"for=198.51.100.7, for=unknown"], "198.51.100.7", id="fwd-unknown-skipped"),
        pytest.param(LB1, None, [b'for=198.51.100.7, for="_hidden"'], "198.51.100.7", id="fwd-obfuscated-skipped"),
        pytest.param(LB1, None, [b'for="[2001:db8::1]:_port"'], "2001:db8::1", id="fwd-obfuscated-port"),
        pytest.param(LB1, None, [b'by="x;for=6.6.6.6", for=198.51.100.7'], "198.51.100.7", id="fwd-for-inside-quotes"),
        pytest.param(LB1, None, [b'for=198.51.100.7, by="a,for=6.6.6.6"'], "198.51.100.7", id="fwd-quoted-comma"),
        pytest.param(LB1, None, [b"proto=https;host=example.com"], LB1, id="fwd-without-for"),
        pytest.param(LB1, None, [b'for="[2001:db8::1', b"for=;;,,="], LB1, id="fwd-garbage"),
        pytest.param(LB1, None, [b'for="198.51.100.7', b"for=10.0.0.2"], "10.0.0.2", id="fwd-unclosed-quote"),
    ],
)
def test_client_ip(peer, xff, fwd, expected):
    # One header is read, the one the trusted proxies write (client_ip_header).
    if fwd is None:
        assert client_ip(peer, xff, TRUSTED) == expected
    else:
        assert xff is None
        assert client_ip(peer, fwd, TRUSTED, forwarded=True) == expected


def test_only_the_configured_header_is_read():
    # A proxy in front that writes X-Forwarded-For passes a client's Forwarded through
    # untouched: reading it would let the client pick its own address, and the reverse.
    xff, fwd = [b"198.51.100.7"], [b"for=6.6.6.6"]
    assert client_ip(LB1, xff, TRUSTED) == "198.51.100.7"
    assert client_ip(LB1, fwd, TRUSTED, forwarded=True) == "6.6.6.6"
    assert client_ip(LB1, fwd, TRUSTED) == LB1  # a Forwarded value is no X-Forwarded-For address


def test_nobody_trusted_returns_the_peer_without_parsing():
    class Exploding(list):
        def __iter__(self):
            raise AssertionError("headers parsed")

    nobody = TrustedProxies([])
    assert not nobody
    assert client_ip("garbage", Exploding([b"1.2.3.4"]), nobody) == "garbage"
    assert client_ip("garbage", Exploding([b"for=1.2.3.4"]), nobody, forwarded=True) == "garbage"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("192.0.2.1", "192.0.2.1", id="ipv4"),
        pytest.param(" 192.0.2.1 ", "192.0.2.1", id="whitespace"),
        pytest.param("192.0.2.1:80", "192.0.2.1", id="ipv4-port"),
        pytest.param('"192.0.2.1:80"', "192.0.2.1", id="quoted"),
        pytest.param('"\\192.0.2.1"', "192.0.2.1", id="quoted-pair"),
        pytest.param("2001:db8::1", "2001:db8::1", id="ipv6-bare"),
        pytest.param("[2001:db8::1]:4711", "2001:db8::1", id="ipv6-port"),
        pytest.param("192.0.2.1:", None, id="empty-port"),
        pytest.param("192.0.2.1:http", None, id="named-port"),
        pytest.param("192.0.2.1:\u00b2", None, id="non-ascii-digit-port"),
        pytest.param("[2001:db8::1]x", None, id="junk-after-bracket"),
        pytest.param("[2001:db8::1", None, id="unclosed-bracket"),
        pytest.param("[192.0.2.1]", "192.0.2.1", id="bracketed-ipv4-tolerated"),
        pytest.param("unknown", None, id="unknown"),
        pytest.param("UNKNOWN", None, id="unknown-any-case"),
        pytest.param("_hidden", None, id="obfuscated"),
        pytest.param("", None, id="empty"),
        pytest.param('""', None, id="empty-quoted"),
        pytest.param("example.com", None, id="hostname"),
        pytest.param("1.2.3.4.5", None, id="too-many-octets"),
        pytest.param("1.2.3", None, id="too-few-octets"),
        pytest.param("01.2.3.4", None, id="leading-zero-octet"),
        pytest.param("1.2.3.4\x00", None, id="nul-byte"),
        pytest.param("1.2.3.\u0664", None, id="non-ascii-digit"),
        pytest.param("fe80::1%eth0", "fe80::1", id="ipv6-zone-dropped"),
        pytest.param("::ffff:192.0.2.1", "192.0.2.1", id="ipv4-mapped"),
    ],
)
def test_parse_node(text, expected):
    got = parse_node(text)
    assert (None if got is None else str(got)) == expected


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        pytest.param(["10.0.0.0/8", "bogus"], r"trusted_proxies\[1\]: not a CIDR or an IP address \(got 'bogus'\)", id="junk"),
        pytest.param(["10.0.0.0/33"], r"trusted_proxies\[0\]: not a CIDR", id="prefix-too-long"),
        pytest.param(["10.0.0.1/8"], r"trusted_proxies\[0\]: '10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8\?", id="host-bits"),
        pytest.param([None], r"trusted_proxies\[0\]: must be a CIDR or an IP address string", id="not-a-string"),
    ],
)
def test_bad_trusted_entries(cidrs, message):
    with pytest.raises(ValueError, match=message):
        TrustedProxies(cidrs)


@pytest.mark.parametrize(
    ("address", "trusted"),
    [
        pytest.param("10.255.255.255", True, id="inside-v4-cidr"),
        pytest.param("11.0.0.0", False, id="outside-v4-cidr"),
        pytest.param("192.168.1.1", True, id="single-v4"),
        pytest.param("192.168.1.2", False, id="next-to-single-v4"),
        pytest.param("2001:db8:ffff:1::1", True, id="inside-v6-cidr"),
        pytest.param("2001:db8:fffe::1", False, id="outside-v6-cidr"),
        pytest.param("::ffff:10.1.2.3", True, id="ipv4-mapped"),
        pytest.param("::a01:203", False, id="v6-with-v4-bits-not-mapped"),
        pytest.param("nonsense", False, id="unparsable"),
    ],
)
def test_trusts(address, trusted):
    assert TRUSTED.trusts(address) is trusted


def test_contains_takes_ipaddress_objects():
    assert ipaddress.ip_address("10.1.2.3") in TRUSTED
    assert ipaddress.ip_address("::ffff:10.1.2.3") in TRUSTED
    assert ipaddress.ip_address("2001:db8::1") not in TRUSTED
