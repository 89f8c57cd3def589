"""Hypothesis strategies for the differential fuzzer: one to three pipelined HTTP/1.x requests
as raw bytes, with the variants that parsers are known to disagree on.

Two kinds of choice. Variations that are valid HTTP (Connection tokens naming any header,
Upgrade, HTTP/1.0, absolute-form, chunk extensions and trailers, a request inside a body) are
drawn freely. Malformations are *knobs*: each request turns on at most two, so most inputs
are one or two steps from valid, and shrinking turns them off again. Every list puts the plain
case first, so a minimal example keeps only what matters.

Targets carry a marker, ``/fz<nonce>r<i>`` for the i-th generated request and
``/fz<nonce>s<i>`` for a request hidden in its body; the nonce is written as ``PLACEHOLDER``
(same length) and set per example.
"""
from __future__ import annotations

from hypothesis import strategies as st

PLACEHOLDER = b"QZQZQZ"
HOST = b"example.test"

# The malformations a request may carry (at most two each).
KNOBS = (
    "method", "version", "request-line", "target", "host", "framing", "cl-value", "cl-name", "cl-length",
    "cl-twice", "te-value", "te-name", "te-twice", "chunk-size", "chunk-eol", "last-chunk", "trailer",
    "lines", "eol", "between", "junk",
)


def marker(index: int) -> bytes:
    return b"/fz" + PLACEHOLDER + b"r%d" % index


def smuggled_marker(index: int) -> bytes:
    return b"/fz" + PLACEHOLDER + b"s%d" % index


class Draw:
    """A request's draws: free choices, and knob-gated malformations."""

    def __init__(self, draw, knobs: frozenset[str]) -> None:
        self.draw = draw
        self.knobs = knobs

    def __call__(self, strategy):
        return self.draw(strategy)

    def one(self, *options):
        return self.draw(st.sampled_from(options))

    def odd(self, knob: str, plain, *odd):
        """``plain`` unless the request carries ``knob``; then one of ``odd``."""
        return self.draw(st.sampled_from(odd)) if knob in self.knobs else plain

    def chance(self, one_in: int) -> bool:
        return self.draw(st.integers(0, one_in - 1)) == one_in - 1


METHODS = (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS")
ODD_METHODS = (b"CONNECT", b"get", b"FOO", b"TRACE", b"GE T")
ODD_VERSIONS = (b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0", b"", b"http/1.1", b"HTTP/1.1 ",
                b"HTTP/01.1", b"HTTP/1.10", b"HTTP/1", b"HTTP/1.1\x00")

# Header names a Connection header may nominate: the framing, Host, Fulcrum's own forwarding
# headers, other hop-by-hop names, headers the request may carry, and spellings.
CONNECTION_TOKENS = (
    b"content-length", b"transfer-encoding", b"host", b"x-forwarded-for", b"x-request-id",
    b"x-forwarded-host", b"x-forwarded-proto", b"x-fuzz-hop", b"keep-alive", b"close", b"upgrade",
    b"te", b"trailer", b"cookie", b"content-type", b"Content-Length", b"HOST", b"x-real-ip",
    b"forwarded", b"expect", b"",
)
UPGRADES = (b"websocket", b"WebSocket", b"h2c", b"websocket, h2c", b"h2c, websocket", b"foo/1",
            b"websocket/13", b"HTTP/2.0")
EXTRA_HEADERS = (
    b"X-Fuzz-Hop: hop", b"X-Forwarded-For: 192.0.2.7", b"X-Request-ID: fuzz-request-id",
    b"Cookie: session=victim", b"Keep-Alive: timeout=5", b"TE: trailers", b"Trailer: X-Trailer",
    b"Expect: 100-continue", b"X-Forwarded-Host: evil.test", b"X-Real-IP: 192.0.2.8",
    b"Forwarded: for=192.0.2.9", b"User-Agent: fuzz",
)


def target(d: Draw, method: bytes, index: int) -> bytes:
    path = marker(index) + d.one(b"", b"?a=1", b"/x/../y", b"?x=a%20b", b";p=1")
    path = d.odd("target", path, path + b"\xff", path + b"?q=%00", path + b"#frag", path + b" x", path + b"\x7f")
    # Every target carries its marker (so no ``*`` form): the oracle tells generated requests
    # from hidden ones by it.
    if method == b"CONNECT":
        return d.one(marker(index)[1:] + b"." + HOST + b":443", path)
    if "target" in d.knobs and d.chance(2):
        return d.one(b"http://user@other.test" + path, b"http://" + path, b"ftp://other.test" + path,
                     b"http:/other.test" + path, b"//other.test" + path)
    if not d.chance(3):
        return path
    return d.one(b"http://" + HOST + path, b"http://other.test:8080" + path, b"HTTP://Other.Test" + path,
                 b"https://" + HOST + path, b"http://other.test?m=" + path[1:])


def body_payload(d: Draw, index: int) -> bytes:
    kind = d.one("text", "empty", "binary", "request", "post-request", "partial-head")
    if kind == "text":
        return b"hello-%d" % index + b"x" * d(st.integers(0, 40))
    if kind == "binary":
        return d(st.binary(min_size=1, max_size=40))
    if kind == "request":
        return b"GET " + smuggled_marker(index) + b" HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"
    if kind == "post-request":
        return (b"POST " + smuggled_marker(index) + b" HTTP/1.1\r\nHost: " + HOST
                + b"\r\nContent-Length: 5\r\n\r\nhello")
    if kind == "partial-head":
        return b"GET " + smuggled_marker(index) + b" HTTP/1.1\r\nX-Swallow: "
    return b""


def content_length(d: Draw, length: int) -> list[bytes]:
    """Content-Length line(s) for a body of ``length`` bytes: valid spellings, or knobbed ones."""
    value = max(length + d.odd("cl-length", 0, -1, 1, 3, -3, 10), 0)
    text = d.one(b"%d" % value, b"0%d" % value, b" %d" % value, b"%d " % value)
    text = d.odd("cl-value", text, b"+%d" % value, b"%d, %d" % (value, value), b"%d,%d" % (value, value + 1),
                 b"0x%x" % value, b"-%d" % value, b"%d.0" % value, b"99999999999999999999", b"", b"%d\t" % value,
                 b"%d\x0b" % value, b"%d %d" % (value, value))
    name = d.one(b"Content-Length", b"content-length", b"CONTENT-LENGTH")
    name = d.odd("cl-name", name, b"Content_Length", b"Content-Length ", b"Content-Length\t", b" Content-Length",
                 b"Content-Lengt")
    lines = [name + b": " + text]
    twice = d.odd("cl-twice", None, b"same", b"other")
    if twice == b"same":
        lines.append(b"Content-Length: " + text)
    elif twice == b"other":
        lines.append(b"Content-Length: %d" % (value + 2))
    return lines


def transfer_encoding(d: Draw) -> list[bytes]:
    name = d.one(b"Transfer-Encoding", b"transfer-encoding")
    name = d.odd("te-name", name, b"Transfer_Encoding", b"Transfer-Encoding ", b"Transfer-Encoding\t",
                 b"Transfer-Encodings", b" Transfer-Encoding")
    value = d.one(b"chunked", b"Chunked", b"CHUNKED", b" chunked", b"chunked ")
    value = d.odd("te-value", value, b"chunked, chunked", b"gzip, chunked", b"chunked, gzip", b"identity",
                  b"chunked;q=1", b"xchunked", b"chunk", b"\"chunked\"", b"identity, chunked", b"chunked\x0b",
                  b"", b"\tchunked", b"chunked\t", b"chunked,")
    lines = [name + b": " + value]
    twice = d.odd("te-twice", None, b"chunked", b"identity", b"gzip")
    if twice is not None:
        lines.append(b"Transfer-Encoding: " + twice)
    return lines


def chunked_body(d: Draw, payload: bytes) -> bytes:
    """``payload`` in one to three chunks, with extensions and trailers, or knobbed framing."""
    cuts = sorted(d(st.lists(st.integers(0, len(payload)), max_size=2)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
    out = bytearray()
    for piece in (p for p in pieces if p):
        n = len(piece)
        size = d.one(b"%x" % n, b"%X" % n, b"0%x" % n, b"%x;ext=1" % n, b"%x;ext=\"a b\"" % n, b"%x;e" % n)
        size = d.odd("chunk-size", size, b"0" * 21 + b"%x" % n, b"%x ;e" % n, b"%x " % n, b"%x\t" % n,
                     b"-%x" % n, b"1%016x" % n, b"0x%x" % n, b"+%x" % n, b"%x;e\rx" % n, b"%x%x" % (n, n),
                     b"%x;e=\"\n\"" % n, b" %x" % n)
        size_end = d.odd("chunk-eol", b"\r\n", b"\n", b"\r", b"\r\n")
        data_end = d.odd("chunk-eol", b"\r\n", b"\n", b"", b"XX", b"\r\n")
        out += size + size_end + piece + data_end
    last = d.one(b"0", b"00000", b"0;last=1")
    out += d.odd("last-chunk", last, b"0 ", b"000000000000000000000", b"0\t", b"-0") + b"\r\n"
    for _ in range(d(st.integers(0, 2)) if d.chance(3) else 0):
        line = d.one(b"X-Trailer: t", b"Content-Length: 5", b"Host: evil.test", b"Transfer-Encoding: chunked")
        out += d.odd("trailer", line, b" folded", b"Bad Trailer: x", line + b"\n", b"X-T\x00: x") + b"\r\n"
    out += d.odd("chunk-eol", b"\r\n", b"\n", b"", b"\r\n")
    return bytes(out)


def framing(d: Draw, index: int, method: bytes) -> tuple[list[bytes], bytes]:
    """Framing header lines and the body bytes as they go on the wire."""
    if method in (b"POST", b"PUT", b"PATCH"):
        kind = d.one("length", "chunked", "length", "zero-length", "none")
    else:
        kind = d.one("none", "none", "length", "chunked", "zero-length")
    kind = d.odd("framing", kind, "both", "both-reversed", "coding")
    if kind == "none":
        return [], b""
    if kind == "zero-length":
        return [b"Content-Length: 0"], b""
    payload = body_payload(d, index)
    if kind == "length":
        return content_length(d, len(payload)), payload
    if kind == "coding":
        coding = d.one(b"gzip", b"identity", b"deflate")
        return [b"Transfer-Encoding: " + coding] + content_length(d, len(payload)), payload
    chunked = chunked_body(d, payload)
    te = transfer_encoding(d)
    if kind == "chunked":
        return te, chunked
    cl = content_length(d, len(chunked) if d.one(True, False) else len(payload))
    return (cl + te if kind == "both" else te + cl), chunked


def connection_lines(d: Draw, method: bytes) -> list[bytes]:
    lines = []
    for _ in range(d.one(0, 1, 1, 2)):
        tokens = d(st.lists(st.sampled_from(CONNECTION_TOKENS + (method.lower(),)), min_size=1, max_size=3))
        sep = d.one(b", ", b",", b" , ", b",\t")
        name = d.one(b"Connection", b"connection", b"CONNECTION", b"Proxy-Connection")
        lines.append(name + b": " + sep.join(tokens))
    return lines


def upgrade_lines(d: Draw) -> list[bytes]:
    if not d.chance(4):
        return []
    value = d.one(*UPGRADES)
    lines = [b"Upgrade: " + value]
    if not d.chance(5):
        lines.append(b"Connection: " + d.one(b"Upgrade", b"upgrade, keep-alive", b"keep-alive, Upgrade",
                                            b"Upgrade, content-length", b"Upgrade, host"))
    if b"websocket" in value.lower() and d.one(True, False):
        lines += [b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"]
    if b"h2c" in value:
        lines.append(b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")
    return lines


def host_lines(d: Draw, version: bytes) -> list[bytes]:
    plain = d.one([b"Host: " + HOST], [b"Host: " + HOST + b":8080"], [b"host: " + HOST])
    if version == b"HTTP/1.0" and d.chance(3):
        plain = []  # valid in HTTP/1.0
    return d.odd("host", plain, [], [b"Host: "], [b"Host: " + HOST, b"Host: " + HOST],
                 [b"Host: " + HOST, b"Host: other.test"], [b"Host: exa mple.test"], [b"Host: " + HOST + b", other.test"],
                 [b"Host: " + HOST + b"/path"], [b"Host: user@" + HOST])


def mutate_lines(d: Draw, lines: list[bytes]) -> list[bytes]:
    """Whitespace and line-structure oddities on one header line (obs-fold, bare CR, ...)."""
    if "lines" not in d.knobs or not lines:
        return lines
    lines = list(lines)
    i = d(st.integers(0, len(lines) - 1))
    line = lines[i]
    name, _, value = line.partition(b":")
    how = d.one("obs-fold", "leading-space", "leading-tab", "space-before-colon", "bare-cr", "nul", "tab-value",
                "no-colon", "empty-name", "long", "ctl", "obs-text")
    if how == "obs-fold":
        lines.insert(i + 1, d.one(b" folded", b"\tfolded", b" Content-Length: 0", b" "))
    elif how == "leading-space":
        lines[i] = b" " + line
    elif how == "leading-tab":
        lines[i] = b"\t" + line
    elif how == "space-before-colon":
        lines[i] = name + b" :" + value
    elif how == "bare-cr":
        lines[i] = line + b"\rX-Injected: 1"
    elif how == "nul":
        lines[i] = line + b"\x00"
    elif how == "tab-value":
        lines[i] = name + b":\t" + value.strip() + b"\t"
    elif how == "no-colon":
        lines[i] = name + b" " + value
    elif how == "empty-name":
        lines.insert(i, b": empty")
    elif how == "long":
        lines.insert(i, b"X-Long: " + b"a" * d(st.integers(1000, 12000)))
    elif how == "ctl":
        lines[i] = line + b"\x01"
    else:
        lines[i] = line + b"\xe9"
    return lines


def request(d: Draw, index: int) -> bytes:
    """One request as raw bytes."""
    method = d.odd("method", d.one(*METHODS), *ODD_METHODS)
    version = d.odd("version", d.one(b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"), *ODD_VERSIONS)
    sep = d.odd("request-line", b" ", b"  ", b"\t", b" \t")
    line = method + sep + target(d, method, index) + (sep + version if version else b"")
    lines = host_lines(d, version)
    framing_lines, body = framing(d, index, method)
    lines += framing_lines + upgrade_lines(d) + connection_lines(d, method)
    lines += d(st.lists(st.sampled_from(EXTRA_HEADERS), max_size=3, unique=True))
    if d.chance(3):
        lines = list(d(st.permutations(lines)))
    lines = mutate_lines(d, lines)
    endings = [b"\r\n"] * (len(lines) + 2)
    if "eol" in d.knobs:
        endings[d(st.integers(0, len(endings) - 1))] = d.one(b"\n", b"\r", b"\n\r", b"\r\r\n")
    return line + endings[0] + b"".join(h + e for h, e in zip(lines, endings[1:])) + endings[-1] + body


@st.composite
def client_bytes(draw) -> bytes:
    """One to three pipelined requests on one connection, sometimes with bytes between or after."""
    out = bytearray()
    for i in range(draw(st.integers(1, 3))):
        d = Draw(draw, frozenset(draw(st.sets(st.sampled_from(KNOBS), max_size=2))))
        if i:
            out += d.odd("between", b"", b"\r\n", b"\n", b"\r\n\r\n", b" ")
        out += request(d, i)
        out += d.odd("junk", b"", b"\r\n", b"X", b"\x00", b"G")
    return bytes(out)
