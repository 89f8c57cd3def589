# The built-in filters one by one, on a fake exchange (attributes only) and a fake clock:
# rate_limit (keys, trusted proxies, exemptions, 429 with Retry-After, RateLimit-* headers,
# the key bound), cors (origin matching, preflights, the allow headers on responses),
# security_headers (kept or overridden, HSTS only on TLS), access_log (fields, sampling,
# escaping) and its writer (bounded queue, appended file); ResponseHead's header editing.
# Bucket arithmetic and X-Forwarded-For parsing have their own tests (test_token_bucket.py,
# test_client_ip.py).
from __future__ import annotations

import json
import re

import pytest

from fulcrum.config.filters import (
    AccessLogConfig,
    CorsConfig,
    RateLimitConfig,
    SecurityHeadersConfig,
)
from fulcrum.filters.access_log import AccessLog
from fulcrum.filters.base import ResponseHead
from fulcrum.filters.cors import Cors
from fulcrum.filters.rate_limit import RateLimit
from fulcrum.http.client_address import client_ip
from fulcrum.filters.resources import Resources
from fulcrum.filters.security_headers import SecurityHeaders
from fulcrum.observability.access_log import AccessLogWriter
from fulcrum.proxy.client import _Rejection

T0 = 5000.0


class FakeExchange:
    """What filters read and write on an exchange, and nothing else."""

    def __init__(self, method: bytes = b"GET", target: bytes = b"/", headers=(), client_ip: str = "192.0.2.1",
                 secure: bool = False, status: int = 200, client_ip_header: bytes = b"x-forwarded-for") -> None:
        self.method = method
        self.target = target
        self.headers = [(n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v)
                        for n, v in headers]
        self.client_ip = self.peer = client_ip
        self.client_ip_header = client_ip_header
        self.secure = secure
        self.status = status
        self.limit = None
        self.request_id = b"req-1"
        self.body_bytes = 0
        self.bytes_out = 0
        self.duration = 0.0
        self.upstream_time = 0.0
        self.route = ""
        self.pool = None
        self.backend = None
        self.tries = 0

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]

    def forwarded_client(self, trusted) -> str:
        name = self.client_ip_header
        return client_ip(self.peer, self.header_values(name), trusted, name == b"forwarded")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def header_dict(head: ResponseHead) -> dict[str, list[str]]:
    """The header fields as they will go on the wire (the lines joined, then split again)."""
    out: dict[str, list[str]] = {}
    for line in b"".join(head.lines).split(b"\r\n"):
        if b":" in line and not line.startswith(b"HTTP/"):
            name, _, value = line.decode("latin-1").partition(":")
            out.setdefault(name.strip().lower(), []).append(value.strip())
    return out


def backend_head(*lines: bytes, status: int = 200) -> ResponseHead:
    return ResponseHead(status, [b"HTTP/1.1 %d OK\r\n" % status, *lines])


# -- ResponseHead --------------------------------------------------------------------------------

def test_response_head_matches_whole_names_case_insensitively_never_the_status_line():
    head = backend_head(b"x-frame-options: SAMEORIGIN\r\n", b"X-Frame-Options-Report: yes\r\n")
    assert head.has(b"x-frame-options")
    assert not head.has(b"x-frame")            # a prefix of a name is not that name
    assert not head.has(b"http/1.1 200 ok")    # the status line is never a header
    head.remove(b"x-frame-options")
    assert head.lines == [b"HTTP/1.1 200 OK\r\n", b"X-Frame-Options-Report: yes\r\n"]


def test_response_head_set_replaces_every_line_or_keeps_them():
    head = backend_head(b"Vary: A\r\n", b"Content-Type: text/plain\r\n", b"VARY: B\r\n")
    head.set(b"Vary", b"Origin", override=False)
    assert header_dict(head)["vary"] == ["A", "B"]
    head.set(b"Vary", b"Origin")
    assert header_dict(head)["vary"] == ["Origin"]
    assert head.lines[0] == b"HTTP/1.1 200 OK\r\n"
    head.set(b"X-New", b"1", override=False)  # absent: added whatever override says
    assert header_dict(head)["x-new"] == ["1"]


# -- rate_limit ---------------------------------------------------------------------------------

def rate_limit(clock: Clock | None = None, **options) -> RateLimit:
    return RateLimit(RateLimitConfig(**options), Resources(clock=clock or Clock()))


def run(limiter: RateLimit, n: int, **exchange) -> list[FakeExchange]:
    out = []
    for _ in range(n):
        ex = FakeExchange(**exchange)
        ex.reply = limiter.on_request(ex)
        out.append(ex)
    return out


def allowed(exchanges: list[FakeExchange]) -> list[bool]:
    return [ex.reply is None for ex in exchanges]


def test_burst_then_429_with_retry_after():
    limiter = rate_limit(requests_per_second=10, burst=20)
    exchanges = run(limiter, 40)
    assert allowed(exchanges) == [True] * 20 + [False] * 20
    refused = exchanges[20].reply
    assert refused.status == 429
    assert refused.headers == [("Retry-After", "1")]  # 0.1 s, rounded up to whole seconds
    assert exchanges[20].limit.allowed is False and exchanges[0].limit.allowed is True


def test_retry_after_is_the_wait_for_one_token_rounded_up():
    limiter = rate_limit(requests_per_second=0.4, burst=1)  # one token every 2.5 s
    first, second = run(limiter, 2)
    assert first.reply is None
    assert second.reply.headers == [("Retry-After", "3")]


def test_the_filter_reads_the_resources_clock():
    clock = Clock()
    limiter = rate_limit(clock, requests_per_second=2, burst=1)
    assert allowed(run(limiter, 2)) == [True, False]
    clock.now += 0.5  # one token refilled
    assert allowed(run(limiter, 2)) == [True, False]


def ratelimit_headers(limiter: RateLimit, ex: FakeExchange) -> dict[str, list[str]]:
    head = backend_head() if ex.reply is None else ResponseHead(429, [])
    limiter.on_response(ex, head)
    return {k: v for k, v in header_dict(head).items() if k.startswith("ratelimit-")}


def test_ratelimit_headers_count_down_on_allowed_responses_and_stay_on_429s():
    limiter = rate_limit(requests_per_second=1, burst=3)
    exchanges = run(limiter, 4)
    seen = [ratelimit_headers(limiter, ex) for ex in exchanges]
    assert [s["ratelimit-limit"] for s in seen] == [["3"]] * 4
    assert [s["ratelimit-remaining"] for s in seen] == [["2"], ["1"], ["0"], ["0"]]
    assert [s["ratelimit-reset"] for s in seen] == [["1"], ["2"], ["3"], ["3"]]


def test_headers_false_leaves_allowed_responses_alone_but_not_429s():
    limiter = rate_limit(requests_per_second=1, burst=1, headers=False)
    ok, refused = run(limiter, 2)
    assert ratelimit_headers(limiter, ok) == {}
    assert ratelimit_headers(limiter, refused) == {
        "ratelimit-limit": ["1"], "ratelimit-remaining": ["0"], "ratelimit-reset": ["1"]}


def test_header_key_limits_each_value_separately_and_falls_back_to_the_address():
    limiter = rate_limit(requests_per_second=1, burst=2, key="header:X-Api-Key")
    assert allowed(run(limiter, 3, headers=[("X-Api-Key", "alpha")])) == [True, True, False]
    assert allowed(run(limiter, 3, headers=[("x-api-key", "beta")])) == [True, True, False]
    # No header: limited by the address, in a bucket of its own ...
    assert allowed(run(limiter, 3)) == [True, True, False]
    # ... which a header value spelling that address does not share.
    assert allowed(run(limiter, 1, headers=[("X-Api-Key", "192.0.2.1")])) == [True]
    assert allowed(run(limiter, 1, client_ip="192.0.2.2")) == [True]


def test_untrusted_peer_cannot_spoof_its_key():
    limiter = rate_limit(requests_per_second=1, burst=2, trusted_proxies=["10.0.0.0/8"])
    exchanges = [FakeExchange(client_ip="198.51.100.1", headers=[("X-Forwarded-For", f"203.0.113.{i}")])
                 for i in range(3)]
    assert [limiter.on_request(ex) is None for ex in exchanges] == [True, True, False]
    assert {ex.client_ip for ex in exchanges} == {"198.51.100.1"}


def test_trusted_peer_rightmost_untrusted_forwarded_address_is_the_key():
    limiter = rate_limit(requests_per_second=1, burst=1, trusted_proxies=["10.0.0.0/8"])
    one = FakeExchange(client_ip="10.0.0.1", headers=[("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 10.9.9.9")])
    assert limiter.on_request(one) is None
    # The filter's own list keys this limiter only; the log and allow-lists keep the address the
    # top-level trusted_proxies gave (here: none, so the peer).
    assert one.client_ip == "10.0.0.1"
    # The same client with a different spoofed prefix is still the same key.
    two = FakeExchange(client_ip="10.0.0.2", headers=[("X-Forwarded-For", "7.7.7.7, 203.0.113.5")])
    assert limiter.on_request(two).status == 429
    # Only the header the proxies write is read (client_ip_header): Forwarded, when configured.
    other = FakeExchange(client_ip="10.0.0.1", headers=[("Forwarded", "for=203.0.113.6")],
                         client_ip_header=b"forwarded")
    assert limiter.on_request(other) is None  # 203.0.113.6's own bucket
    ignored = FakeExchange(client_ip="10.0.0.1", headers=[("Forwarded", "for=203.0.113.5")])
    assert limiter.on_request(ignored) is None  # not the configured header: the peer's bucket
    assert limiter.on_request(FakeExchange(client_ip="10.0.0.1")).status == 429


def test_exempt_networks_are_never_limited_and_get_no_headers():
    limiter = rate_limit(requests_per_second=1, burst=1, exempt=["192.0.2.0/24"],
                         trusted_proxies=["10.0.0.0/8"])
    exchanges = run(limiter, 10, client_ip="192.0.2.77")
    assert allowed(exchanges) == [True] * 10
    assert all(ex.limit is None for ex in exchanges)
    assert ratelimit_headers(limiter, exchanges[0]) == {}
    # Exemption applies to the client behind a trusted proxy, not to the proxy itself.
    forwarded = run(limiter, 3, client_ip="10.0.0.1", headers=[("X-Forwarded-For", "192.0.2.9")])
    assert allowed(forwarded) == [True] * 3
    assert allowed(run(limiter, 2, client_ip="10.0.0.1", headers=[("X-Forwarded-For", "203.0.113.1")])) \
        == [True, False]


def test_filter_memory_is_bounded_by_max_keys_under_a_flood_of_distinct_keys():
    # The table alone is flooded in test_token_bucket.py; this is the filter's own table,
    # fed through on_request (header keys: no address parsing, so it stays quick).
    limiter = rate_limit(requests_per_second=1, burst=5, max_keys=1000, key="header:X-Api-Key")
    on_request = limiter.on_request
    ex = FakeExchange(headers=[("X-Api-Key", "")])
    for i in range(200_000):
        ex.headers[0] = (b"X-Api-Key", b"%d" % i)
        assert on_request(ex) is None
    assert len(limiter.table) == 1000
    assert limiter.table.evicted_total == 199_000


# -- cors -------------------------------------------------------------------------------------------

def cors(**options) -> Cors:
    return Cors(CorsConfig(**options), Resources())


@pytest.mark.parametrize(("origin", "ok"), [
    ("https://app.example.com", True),
    ("HTTPS://APP.EXAMPLE.COM", True),
    ("https://a.sub.test", True),
    ("https://deep.a.sub.test", True),
    ("https://sub.test", False),          # the apex is not a subdomain
    ("https://.sub.test", False),
    ("http://a.sub.test", False),         # another scheme
    ("https://a.sub.test.evil.net", False),
    ("https://evilsub.test", False),
    ("https://a.sub.test:8443", False),   # another port
    ("https://b.ported.test:8443", True),
    ("https://b.ported.test", False),
    ("null", False),
    ("https://app.example.com.evil.net", False),
])
def test_origin_matching(origin, ok):
    f = cors(allow_origins=["https://app.example.com", "https://*.sub.test", "https://*.ported.test:8443"])
    assert f.allowed(origin.encode()) is ok


def test_any_origin():
    assert cors(allow_origins=["*"]).allowed(b"http://whatever.invalid")
    assert not cors(allow_origins=[]).allowed(b"http://whatever.invalid")


def preflight(f: Cors, origin: str = "https://app.example.com", method: str = "PUT", headers: str | None = None):
    hdrs = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if headers is not None:
        hdrs.append(("Access-Control-Request-Headers", headers))
    ex = FakeExchange(method=b"OPTIONS", target=b"/api", headers=hdrs)
    return ex, f.on_request(ex)


def test_preflight_from_allowed_origin_is_answered_204():
    f = cors(allow_origins=["https://app.example.com"], allow_methods=["get", "PUT"], max_age=321)
    ex, reply = preflight(f, headers="X-Custom, Content-Type")
    assert reply.status == 204
    assert dict(reply.headers) == {
        "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Max-Age": "321",
        "Access-Control-Allow-Headers": "x-custom, content-type",
    }
    head = ResponseHead(204, [])
    f.on_response(ex, head)
    got = header_dict(head)
    assert got["access-control-allow-origin"] == ["https://app.example.com"]
    assert got["vary"] == ["Origin"]


@pytest.mark.parametrize(("kwargs", "detail"), [
    pytest.param({"origin": "https://evil.example.net"}, "origin https://evil.example.net", id="origin"),
    pytest.param({"method": "DELETE"}, "method DELETE", id="method"),
    pytest.param({"headers": "X-Allowed, X-Secret"}, "header x-secret", id="header"),
])
def test_preflight_refused_says_what_was_refused(kwargs, detail):
    f = cors(allow_origins=["https://app.example.com"], allow_methods=["GET", "PUT"], allow_headers=["X-Allowed"])
    _, reply = preflight(f, **kwargs)
    assert reply.status == 403
    assert detail in reply.detail


def test_preflight_with_listed_headers_accepts_them_in_any_case():
    f = cors(allow_origins=["https://app.example.com"], allow_headers=["X-Allowed"])
    _, reply = preflight(f, headers="x-ALLOWED")
    assert reply.status == 204


@pytest.mark.parametrize("hdrs", [
    pytest.param([("Origin", "https://app.example.com")], id="no-request-method"),
    pytest.param([("Access-Control-Request-Method", "GET")], id="no-origin"),
])
def test_plain_options_is_not_a_preflight(hdrs):
    f = cors(allow_origins=["https://app.example.com"])
    assert f.on_request(FakeExchange(method=b"OPTIONS", headers=hdrs)) is None


def test_non_options_requests_pass():
    f = cors(allow_origins=["https://app.example.com"])
    assert f.on_request(FakeExchange(headers=[("Origin", "https://evil.example.net"),
                                              ("Access-Control-Request-Method", "GET")])) is None


def test_response_to_allowed_origin_replaces_the_backends_allow_origin():
    f = cors(allow_origins=["https://app.example.com"], expose_headers=["X-Total", "X-Page"])
    ex = FakeExchange(headers=[("Origin", "https://app.example.com")])
    head = backend_head(b"Access-Control-Allow-Origin: *\r\n", b"access-control-expose-headers: X-Other\r\n")
    f.on_response(ex, head)
    got = header_dict(head)
    assert got["access-control-allow-origin"] == ["https://app.example.com"]
    assert got["access-control-expose-headers"] == ["X-Total, X-Page"]
    assert got["vary"] == ["Origin"]
    assert "access-control-allow-credentials" not in got


def test_response_to_other_origins_or_without_origin_is_untouched():
    f = cors(allow_origins=["https://app.example.com"])
    for hdrs in ([("Origin", "https://evil.example.net")], []):
        head = backend_head(b"Content-Type: text/plain\r\n")
        f.on_response(FakeExchange(headers=hdrs), head)
        assert head.lines == [b"HTTP/1.1 200 OK\r\n", b"Content-Type: text/plain\r\n"]


def test_any_origin_without_credentials_answers_star_without_vary():
    f = cors(allow_origins=["*"])
    head = backend_head()
    f.on_response(FakeExchange(headers=[("Origin", "https://x.test")]), head)
    got = header_dict(head)
    assert got["access-control-allow-origin"] == ["*"]
    assert "vary" not in got


def test_credentials_echo_the_origin_never_star():
    f = cors(allow_origins=["*"], allow_credentials=True)
    head = backend_head()
    f.on_response(FakeExchange(headers=[("Origin", "https://x.test")]), head)
    got = header_dict(head)
    assert got["access-control-allow-origin"] == ["https://x.test"]
    assert got["access-control-allow-credentials"] == ["true"]
    assert got["vary"] == ["Origin"]


# -- security_headers ---------------------------------------------------------------------------------

def security(**options) -> SecurityHeaders:
    return SecurityHeaders(SecurityHeadersConfig(**options), Resources())


def test_default_security_headers_are_added():
    head = backend_head()
    security().on_response(FakeExchange(), head)
    assert header_dict(head) == {
        "x-content-type-options": ["nosniff"],
        "x-frame-options": ["DENY"],
        "referrer-policy": ["strict-origin-when-cross-origin"],
    }


def test_backend_value_is_kept_unless_override():
    for override, expected in ((False, "SAMEORIGIN"), (True, "DENY")):
        head = backend_head(b"X-Frame-Options: SAMEORIGIN\r\n")
        security(override=override).on_response(FakeExchange(), head)
        assert header_dict(head)["x-frame-options"] == [expected]


def test_null_values_are_not_sent_and_csp_when_set():
    head = backend_head()
    security(frame_options=None, content_security_policy="default-src 'self'").on_response(FakeExchange(), head)
    got = header_dict(head)
    assert "x-frame-options" not in got
    assert got["content-security-policy"] == ["default-src 'self'"]


def test_hsts_only_on_tls_connections():
    f = security(hsts={"max_age": 600, "include_subdomains": True, "preload": True})
    plain, tls = backend_head(), backend_head()
    f.on_response(FakeExchange(secure=False), plain)
    f.on_response(FakeExchange(secure=True), tls)
    assert "strict-transport-security" not in header_dict(plain)
    assert header_dict(tls)["strict-transport-security"] == ["max-age=600; includeSubDomains; preload"]


# -- access_log -------------------------------------------------------------------------------------------

FIELDS = {"time", "level", "logger", "event", "request_id", "client", "method", "path", "status", "bytes_in",
          "bytes_out", "duration_ms", "upstream_ms", "route", "pool", "backend", "tries", "rate_limit"}


def access_log(**options) -> tuple[AccessLog, AccessLogWriter]:
    resources = Resources()
    f = AccessLog(AccessLogConfig(**options), resources)
    return f, f.writer


def queued(writer: AccessLogWriter) -> list[str]:
    """The lines handed to a writer that was never started (so nothing consumed them)."""
    writer.flush()
    lines = []
    while not writer.queue.empty():
        lines.extend(writer.queue.get_nowait())
    return lines


class Named:
    def __init__(self, name: str, id: str = "") -> None:
        self.name, self.id = name, id


def test_json_line_has_the_documented_fields():
    f, writer = access_log(format="json")
    ex = FakeExchange(method=b"POST", target=b"/a?b=1", status=201)
    ex.request_id, ex.body_bytes, ex.bytes_out, ex.tries = b"rid-7", 12, 34, 2
    ex.duration, ex.upstream_time, ex.route = 0.0125, 0.004, "api"
    ex.pool, ex.backend = Named("web"), Named("web", "b1")
    f.on_log(ex)
    (line,) = queued(writer)
    doc = json.loads(line)
    assert set(doc) == FIELDS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"])
    assert {k: doc[k] for k in FIELDS - {"time"}} == {
        "level": "info", "logger": "fulcrum.access", "event": "access", "request_id": "rid-7",
        "client": "192.0.2.1", "method": "POST", "path": "/a?b=1", "status": 201, "bytes_in": 12,
        "bytes_out": 34, "duration_ms": 12.5, "upstream_ms": 4.0, "route": "api", "pool": "web",
        "backend": "b1", "tries": 2, "rate_limit": "-"}


@pytest.mark.parametrize(("allowed_", "expected"), [(True, "allowed"), (False, "limited")])
def test_rate_limit_outcome_is_logged(allowed_, expected):
    f, writer = access_log(format="json")
    limiter = rate_limit(requests_per_second=1, burst=1)
    ex = FakeExchange()
    if not allowed_:
        limiter.on_request(FakeExchange())
    limiter.on_request(ex)
    f.on_log(ex)
    assert json.loads(queued(writer)[0])["rate_limit"] == expected


def test_a_connection_level_rejection_is_logged_with_dashes():
    f, writer = access_log(format="json")
    f.on_log(_Rejection(400, "malformed", b"rid-9", "192.0.2.5"))
    doc = json.loads(queued(writer)[0])
    assert (doc["status"], doc["method"], doc["path"], doc["client"], doc["request_id"], doc["route"]) == \
        (400, "-", "-", "192.0.2.5", "rid-9", "")


@pytest.mark.parametrize(("always", "logged"), [
    (True, {429, 500, 502, 503, 504}),
    (False, set()),
])
def test_sample_zero_keeps_only_errors_when_asked(always, logged):
    f, writer = access_log(format="json", sample=0.0, always_log_errors=always)
    statuses = [200, 204, 301, 400, 404, 429, 500, 502, 503, 504]
    for status in statuses:
        f.on_log(FakeExchange(status=status))
    assert {json.loads(line)["status"] for line in queued(writer)} == logged


def test_sample_one_logs_everything():
    f, writer = access_log(format="json", sample=1.0)
    for status in (200, 404, 0):
        f.on_log(FakeExchange(status=status))
    assert [json.loads(line)["status"] for line in queued(writer)] == [200, 404, 0]


def test_sample_between_is_a_share():
    f, writer = access_log(format="json", sample=0.25, always_log_errors=False)
    for _ in range(4000):
        f.on_log(FakeExchange())
    assert 600 < len(queued(writer)) < 1400  # 1000 expected; far outside means no sampling


def test_text_line_quotes_the_request_so_a_quote_cannot_end_it():
    f, writer = access_log(format="text")
    ex = FakeExchange(target=b'/x" 200 in=0 "forged')
    ex.request_id = b"rid-3"
    f.on_log(ex)
    (line,) = queued(writer)
    assert "\n" not in line and "\r" not in line
    match = re.match(r'^\S+ 192\.0\.2\.1 ("(?:[^"\\]|\\.)*") 200 in=0 ', line)
    assert match, line
    assert json.loads(match.group(1)) == 'GET /x" 200 in=0 "forged'
    assert line.endswith(" request_id=rid-3")


def test_text_format_follows_log_format_by_default():
    text = AccessLog(AccessLogConfig(), Resources(log_format="text"))
    as_json = AccessLog(AccessLogConfig(), Resources(log_format="json"))
    assert text.json is False and as_json.json is True


# -- the access-log writer ------------------------------------------------------------------------------

def test_writer_queue_is_bounded_and_counts_what_it_drops():
    writer = AccessLogWriter("stdout", max_pending=2)
    for i in range(5):
        writer.write(f"line {i}")
    assert writer.dropped == 3
    assert queued(writer) == ["line 0", "line 1"]


def test_writer_appends_lines_to_a_file_and_flushes_on_close(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("earlier\n")
    writer = AccessLogWriter(str(path))
    writer.start()
    for i in range(3):
        writer.write(f"line {i}")
    writer.close()
    assert path.read_text() == "earlier\nline 0\nline 1\nline 2\n"
    assert writer.written == 3 and writer.dropped == 0 and writer.failed == 0


# -- access-log writes shared by worker processes ---------------------------------------------

def _writes(fd, lines, monkeypatch) -> list[bytes]:
    import os

    from fulcrum.observability import access_log

    written: list[bytes] = []
    real = os.write

    def spy(target, data):
        written.append(bytes(data))
        return real(target, data)

    monkeypatch.setattr(access_log.os, "write", spy)
    access_log.write_lines(fd, lines)
    return written


def test_access_log_lines_go_to_a_pipe_in_whole_line_chunks_of_at_most_pipe_buf(monkeypatch):
    import os
    import select
    import threading

    lines = [("x" * (i % 700)) + str(i) for i in range(300)] + ["y" * 9000, "z"]
    r, w = os.pipe()
    received = bytearray()
    reader = threading.Thread(target=lambda: [received.extend(b) for b in iter(lambda: os.read(r, 65536), b"")])
    reader.start()
    writes = _writes(w, lines, monkeypatch)
    os.close(w)
    reader.join()
    os.close(r)
    assert received.decode().split("\n")[:-1] == lines
    assert len(writes) > 10
    for chunk in writes:
        assert chunk.endswith(b"\n")  # whole lines only
        assert len(chunk) <= select.PIPE_BUF or chunk.count(b"\n") == 1  # or one long line alone


def test_access_log_lines_go_to_a_file_in_one_write(monkeypatch, tmp_path):
    import os

    lines = [f"line {i} " + "x" * 200 for i in range(256)]
    fd = os.open(tmp_path / "access.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        writes = _writes(fd, lines, monkeypatch)
    finally:
        os.close(fd)
    assert len(writes) == 1  # O_APPEND: one write lands whole, whoever else appends
    assert (tmp_path / "access.log").read_text().split("\n")[:-1] == lines
