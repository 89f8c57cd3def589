"""The oracle: does what the backend parsed, and what the client got back, agree with the
reference reading of the client's bytes?

Allowed asymmetries, and nothing else:
- Fulcrum may refuse more than h11: a 4xx (or 501, 505) answer or a close, at any request, is
  always safe.
  It then forwards nothing after that request.
- A refused request may have been partly streamed (its head, part of its body) before the error
  showed, if the backend connection then ends before that request does: the backend never
  completes it (``CUT``), and the client gets no backend answer for it.
- Where h11 refuses a request that llhttp accepts, Fulcrum may forward it and those after it if
  the backend parses each cleanly and each is a generated request (marker ``r<i>``, increasing).
- Fulcrum drops hop-by-hop headers and chunked trailers, re-frames bodies, sends HTTP/1.1 with
  origin-form targets and the absolute-form authority as Host, and adds its forwarding headers.
Policies checked beyond the reference: CONNECT and versions other than 1.0/1.1 never reach the
backend; headers a Connection header names (other than Host, the framing, Fulcrum's own
forwarding headers) never reach it; an Upgrade reaches it only on a GET and never as ``h2c``;
a Host that is no valid ``host[:port]`` never reaches it; nor do the client's own Forwarded and
X-Real-IP (the test client is no trusted proxy); X-Forwarded-For ends with the client.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tests.fuzz.client import ClientResult
from tests.fuzz.findings import KINDS, Finding
from tests.fuzz.recording_backend import CUT, DATA, ERROR, LEFTOVER, REQUEST, BackendEvent, BackendRequest
from tests.fuzz.reference import Reference

# Names a Connection header cannot remove: Fulcrum writes them itself (or must keep them).
PROTECTED = frozenset({b"host", b"content-length", b"transfer-encoding", b"x-forwarded-for",
                       b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id", b"connection", b"upgrade"})
CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})
NEVER_FORWARDED = (b"te", b"trailer", b"keep-alive", b"proxy-connection", b"http2-settings")
CLIENT_IP = b"127.0.0.1"
# Fulcrum's own 5xx that refuse the request itself (a coding, a version it does not support);
# every other 5xx of its own means it and the backend disagreed.
REFUSALS = (501, 505)
# What the client says about itself; removed by default (forwarded_headers: remove_untrusted).
CLIENT_CLAIMS = (b"forwarded", b"x-real-ip")
# uri-host [ ":" port ] (RFC 3986 §3.2.2): reg-name (sub-delims included) or an IP-literal.
_URI_HOST = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")


@dataclass
class Run:
    """One example: what was sent, what h11 reads in it, what everyone saw."""

    raw: bytes
    nonce: bytes
    reference: Reference
    events: list[BackendEvent]   # the backend's, from the example's start until its canary settled
    client: ClientResult
    canary_target: bytes
    canary: ClientResult

    def report(self, findings: list[Finding]) -> str:
        lines = [*(f"FOUND {f}" for f in findings), "",
                 f"input ({len(self.raw)} bytes): {self.raw!r}", "",
                 "reference (h11 reading the client's bytes):", self.reference.summary(), "",
                 "backend (h11) saw, per connection:"]
        for conn in sorted({e.conn for e in self.events}):
            lines.append(f"  connection {conn}:")
            for event in (e for e in self.events if e.conn == conn):
                if event.kind == DATA:
                    lines.append(f"    received {event.detail[:600]!r}")
                elif event.request is not None:
                    lines.append(f"    {event.kind}: {event.request.summary()}"
                                 + (f" -- {event.detail}" if event.detail else ""))
                else:
                    lines.append(f"    {event.kind} {event.detail!s} {event.leftover[:200]!r}")
        lines += ["", f"client received ({len(self.client.received)} bytes): {self.client.received[:800]!r}",
                  self.client.summary(), "",
                  f"canary {self.canary_target!r} received: {self.canary.received[:400]!r}"]
        return "\n".join(lines)


def judge(run: Run) -> list[Finding]:
    findings: list[Finding] = []
    requests = [e.request for e in run.events if e.kind == REQUEST]
    forwarded = [r for r in requests if r.target != run.canary_target]
    accepted = [r for r in run.client.responses if r.from_backend]

    _check_backend_events(run, forwarded, len(accepted), findings)
    _check_forwarded(run, forwarded, findings)
    _check_client(run, forwarded, findings)
    _check_canary(run, [r for r in requests if r.target == run.canary_target], findings)
    order = list(KINDS)
    return sorted(findings, key=lambda f: order.index(f.kind))


def _check_backend_events(run: Run, forwarded: list[BackendRequest], accepted: int, out: list[Finding]) -> None:
    for event in run.events:
        if event.kind == ERROR:
            where = f"after the head of {event.request.target!r}, " if event.request else ""
            out.append(Finding("backend-refused", _h11_words(event.detail),
                               f"{where}h11: {event.detail}; unparsed {event.leftover[:120]!r}"))
        elif event.kind == LEFTOVER:
            out.append(Finding("backend-leftover", "bytes after a closing request",
                               f"{len(event.leftover)} bytes: {event.leftover[:120]!r}"))
        elif event.kind == CUT:
            request = event.request
            if request.target == run.canary_target:
                continue  # reported by the canary check
            # Allowed only for a request Fulcrum did not accept: none of the client's backend
            # answers is for it, and every request forwarded whole was answered.
            if accepted != len(forwarded) or run.client.hung:
                out.append(Finding("backend-cut", "request cut by EOF after Fulcrum accepted it",
                                   f"{request.method.decode('latin-1')} {request.target!r} after "
                                   f"{len(request.body)} body bytes; {event.detail}"))


def _check_forwarded(run: Run, forwarded: list[BackendRequest], out: list[Finding]) -> None:
    ref = run.reference
    refs = ref.requests
    last_marker = -1
    for i, got in enumerate(forwarded):
        if got.method == b"CONNECT":
            out.append(Finding("connect-forwarded", "CONNECT reached the backend", f"target {got.target!r}"))
        if i < len(refs):
            want = refs[i]
            if want.version not in (b"1.0", b"1.1"):
                out.append(Finding("version-forwarded", f"HTTP/{want.version.decode()} reached the backend"))
            for field, a, b in (("method", want.method, got.method),
                                ("target", want.forwarded_target(), got.target), ("body", want.body, got.body)):
                if a != b:
                    out.append(Finding("forwarded-differs", f"{field}", f"request {i}: client sent {a[:120]!r}, "
                                       f"backend parsed {b[:120]!r}"))
            _check_host(want, got, i, out)
            _check_hop_by_hop(want, got, i, out)
            last_marker = max(last_marker, _request_marker(run.nonce, got))
        elif ref.error is None:
            ends = ref.closed_by or "at the end of the bytes"
            out.append(Finding("smuggled", f"a request after the reference ends ({ends})",
                               f"request {i} {got.method.decode('latin-1')} {got.target!r} body {got.body[:80]!r}; "
                               f"the reference has {len(refs)}"))
        else:
            index = _request_marker(run.nonce, got)
            if index <= last_marker:
                out.append(Finding("smuggled", "past h11's refusal, a request that is no generated one",
                                   f"request {i} {got.method.decode('latin-1')} {got.target!r}; h11: {ref.error}"))
            else:
                last_marker = index
                version = _version_sent(run.raw, run.nonce, index)
                if version not in (b"HTTP/1.0", b"HTTP/1.1"):
                    out.append(Finding("version-forwarded", "a request line without HTTP/1.0 or 1.1 reached the "
                                       "backend", f"version {version!r}"))
        _check_forwarding_headers(got, i, out)


def _check_host(want, got: BackendRequest, i: int, out: list[Finding]) -> None:
    hosts = got.header_values(b"host")
    absolute = want.absolute_form()
    client_hosts = want.values(b"host")
    if absolute is not None:
        expected = absolute[0]
    elif client_hosts and client_hosts[0].strip():
        expected = client_hosts[0]
    else:
        # No Host, or an empty one (RFC 9112 §3.2): the backend gets one Host, its own authority
        # as nginx sends it, or the empty one as it came.
        if len(hosts) != 1 or (not client_hosts and not hosts[0].strip()):
            out.append(Finding("host", "no usable Host at the backend", f"request {i} HTTP/"
                               f"{want.version.decode()} with Host {client_hosts!r}; backend Host {hosts!r}"))
        return
    if [h.strip().lower() for h in hosts] != [expected.strip().lower()]:
        out.append(Finding("host", "another Host at the backend", f"request {i}: backend Host {hosts!r}, "
                           f"expected {expected!r}"))
    elif not _URI_HOST.fullmatch(expected.strip()):
        # RFC 9110 §7.2: a Host with an invalid value is a 400, never a value to pass on.
        out.append(Finding("host", "an invalid Host reached the backend", f"request {i}: {expected!r}"))


def _check_hop_by_hop(want, got: BackendRequest, i: int, out: list[Finding]) -> None:
    names = {n for n, _ in got.headers}
    nominated = want.connection_tokens() - CONNECTION_OPTIONS - PROTECTED
    for name in sorted(nominated & names):
        out.append(Finding("hop-by-hop-leak", "a header named by Connection reached the backend",
                           f"request {i}: {name.decode('latin-1')}"))
    for name in NEVER_FORWARDED:
        if name in names:
            out.append(Finding("hop-by-hop-leak", f"{name.decode()} reached the backend", f"request {i}"))
    for value in got.header_values(b"upgrade"):
        if got.method != b"GET" or b"h2c" in value.lower() or b"websocket" not in value.lower():
            out.append(Finding("hop-by-hop-leak", "an Upgrade other than websocket on GET reached the backend",
                               f"request {i}: Upgrade {value!r} on {got.method.decode('latin-1')}"))
    for value in got.header_values(b"connection"):
        tokens = {t.strip().lower() for t in value.split(b",") if t.strip()}
        if tokens - CONNECTION_OPTIONS:
            out.append(Finding("hop-by-hop-leak", "a client's Connection reached the backend",
                               f"request {i}: Connection {value!r}"))


def _check_forwarding_headers(got: BackendRequest, i: int, out: list[Finding]) -> None:
    xff = b",".join(got.header_values(b"x-forwarded-for"))
    if xff.split(b",")[-1].strip() != CLIENT_IP:
        out.append(Finding("forwarding-headers", "X-Forwarded-For does not end with the client",
                           f"request {i}: {xff!r}"))
    if got.header_values(b"x-forwarded-proto") != [b"http"]:
        out.append(Finding("forwarding-headers", "X-Forwarded-Proto is not one 'http'",
                           f"request {i}: {got.header_values(b'x-forwarded-proto')!r}"))
    if len(got.header_values(b"x-request-id")) != 1:
        out.append(Finding("forwarding-headers", "X-Request-ID is not one value",
                           f"request {i}: {got.header_values(b'x-request-id')!r}"))
    for name in CLIENT_CLAIMS:
        if got.header_values(name):
            out.append(Finding("forwarding-headers", f"the client's own {name.decode()} reached the backend",
                               f"request {i}: {got.header_values(name)!r} (the client is no trusted proxy)"))


def _check_client(run: Run, forwarded: list[BackendRequest], out: list[Finding]) -> None:
    client = run.client
    seqs = [int(r.header(b"x-fuzz-seq")) for r in client.responses if r.from_backend]
    if seqs != [r.seq for r in forwarded]:
        out.append(Finding("response-mismatch", "backend answers are not those of the forwarded requests",
                           f"client got {seqs}, the backend parsed {[r.seq for r in forwarded]}"))
    own = [r for r in client.responses if not r.from_backend and not r.header(b"x-fuzz-error")]
    if own and client.responses[-1] is not own[-1] or len(own) > 1:
        out.append(Finding("response-mismatch", "Fulcrum's own answer is not one, last",
                           f"statuses {[r.status for r in client.responses]}"))
    for response in own:
        if response.status >= 500 and response.status not in REFUSALS:
            out.append(Finding("gateway-error", f"{response.status}", f"{response.body[:100]!r}"))
    if client.hung:
        out.append(Finding("hang", "no answer and no close", f"after {len(client.responses)} responses"))
    if client.unparsed:
        out.append(Finding("client-garbage", "bytes after the last complete response",
                           f"{len(client.unparsed)} bytes: {client.unparsed[:100]!r}"))


def _check_canary(run: Run, seen: list[BackendRequest], out: list[Finding]) -> None:
    responses = run.canary.responses
    ok = (len(seen) == 1 and seen[0].method == b"GET" and seen[0].body == b""
          and len(responses) == 1 and responses[0].status == 200
          and responses[0].header(b"x-fuzz-seq") == b"%d" % seen[0].seq
          and not run.canary.unparsed and not run.canary.hung)
    cut = [e for e in run.events if e.kind in (CUT, ERROR) and e.request and e.request.target == run.canary_target]
    if not ok or cut:
        parsed = [f"{r.method.decode('latin-1')} body={r.body[:80]!r}" for r in seen]
        out.append(Finding("canary", "not served exactly", f"backend parsed {parsed}, canary client got "
                           f"{[r.summary() for r in responses]}{' (hung)' if run.canary.hung else ''}"))


def _h11_words(message: str) -> str:
    """h11's error message without the bytes it quotes."""
    return re.sub(r"\s*[:(]?\s*(b'|bytearray\().*$", "", message)[:80]


def _marker_index(nonce: bytes, target: bytes, kind: bytes) -> int:
    match = re.search(rb"fz" + re.escape(nonce) + kind + rb"(\d)", target)  # in the path or the query
    return int(match.group(1)) if match else -1


def _request_marker(nonce: bytes, got: BackendRequest) -> int:
    """The generated request marker a backend request carries: in its target, or in its Host
    when the client sent an absolute-form target (``GET http://fz…r2/``), whose authority
    Fulcrum sends as Host with ``/`` as the target."""
    index = _marker_index(nonce, got.target, b"r")
    if index == -1:
        for host in got.header_values(b"host"):
            index = max(index, _marker_index(nonce, host, b"r"))
    return index


def _version_sent(raw: bytes, nonce: bytes, index: int) -> bytes:
    """The last word of the client's request line that carries generated marker ``index``."""
    mark = b"fz" + nonce + b"r%d" % index
    for line in re.split(rb"\r\n|\n|\r", raw):
        if mark in line:
            return line.rsplit(b" ", 1)[-1] if b" " in line else b""
    return b""
