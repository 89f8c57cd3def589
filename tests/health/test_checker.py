# ActiveChecker pieces that need no example backend: jittered delays, the request it sends,
# settings validation, and single checks (check_now) against a scripted raw-socket backend.
from __future__ import annotations

import asyncio
import random

import pytest

from fulcrum.balancing.backend import Backend
from fulcrum.health.checker import MAX_BODY, ActiveChecker, first_delay, next_delay, request_bytes
from tests.support.fake_backend import CLOSE, HANG, RESET, FakeBackend, Reply


@pytest.mark.parametrize("interval, jitter", [
    pytest.param(2.0, 0.1, id="default"),
    pytest.param(0.1, 0.5, id="wide"),
    pytest.param(1.0, 0.0, id="no-jitter"),
])
def test_delays_stay_within_jitter(interval, jitter):
    rng = random.Random(7)
    nexts = [next_delay(interval, jitter, rng) for _ in range(2000)]
    firsts = [first_delay(interval, jitter, rng) for _ in range(2000)]
    assert all(interval * (1 - jitter) <= d <= interval * (1 + jitter) for d in nexts)
    assert all(0.0 <= d <= interval * jitter for d in firsts)
    if jitter:
        assert max(nexts) - min(nexts) > interval * jitter  # they do spread out


@pytest.mark.parametrize("url, path, host_header", [
    pytest.param("http://127.0.0.1:9001", "/health", b"127.0.0.1:9001", id="ipv4"),
    pytest.param("http://[::1]:9001", "/status?full=1", b"[::1]:9001", id="ipv6"),
    pytest.param("http://api.internal", "/health", b"api.internal:80", id="default-port"),
])
def test_request_bytes(url, path, host_header):
    assert request_bytes(Backend(url), path) == (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host_header
        + b"\r\nUser-Agent: fulcrum-health-check\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"path": "health"}, "path must start with /", id="relative-path"),
    pytest.param({"path": "/a b"}, "printable ASCII without spaces", id="space-in-path"),
    pytest.param({"path": "/a\r\nX: y"}, "printable ASCII without spaces", id="crlf-in-path"),
    pytest.param({"interval": 0}, "interval must be > 0 seconds (got 0)", id="interval-0"),
    pytest.param({"timeout": -1}, "timeout must be > 0 seconds (got -1)", id="timeout-negative"),
    pytest.param({"jitter": 1.0}, "jitter must be a fraction in [0, 1) (got 1.0)", id="jitter-1"),
    pytest.param({"expect_status": "2xx"}, "a range like 200-399", id="status-syntax"),
    pytest.param({"expect_status": (400, 200)}, "from low to high", id="status-reversed"),
    pytest.param({"healthy_threshold": 0}, "healthy_threshold must be >= 1", id="threshold-0"),
])
def test_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError) as info:
        ActiveChecker([Backend("http://127.0.0.1:1")], **kwargs)
    assert message in str(info.value)


def test_rejects_duplicate_backend_ids():
    with pytest.raises(ValueError, match="duplicate backend id 'b'"):
        ActiveChecker([Backend("http://127.0.0.1:1", id="b"), Backend("http://127.0.0.1:2", id="b")])


def test_accepts_config_spellings():
    checker = ActiveChecker([Backend("http://127.0.0.1:1")], expect_status="200-299", expect_body="ok")
    assert checker.expect_status == (200, 299) and checker.expect_body == b"ok"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
BIG = b"x" * (MAX_BODY + 1000) + b"MARKER"


@pytest.mark.parametrize("reply, kwargs, expected", [
    pytest.param(Reply(OK, CLOSE), {}, (True, "status 200"), id="content-length"),
    pytest.param(Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n", CLOSE),
                 {"expect_body": b"ok"}, (True, "status 200"), id="chunked"),
    pytest.param(Reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall ok", CLOSE),
                 {"expect_body": b"ok"}, (True, "status 200"), id="close-delimited"),
    pytest.param(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", HANG),
                 {}, (True, "status 200"), id="kept-open-after-complete-response"),
    pytest.param(Reply(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", CLOSE),
                 {}, (False, "status 500 not in 200-399"), id="500"),
    pytest.param(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG, CLOSE),
                 {"expect_body": b"MARKER"}, (False, "body does not contain 'MARKER'"),
                 id="body-read-only-to-64k"),
    pytest.param(Reply(b"garbage\r\n\r\n", CLOSE), {}, (False, "invalid response: "), id="garbage"),
    pytest.param(Reply(b"", CLOSE), {}, (False, "connection closed before a response"), id="closed"),
    pytest.param(Reply(b"HTTP/1.1 200 OK\r\nContent-", CLOSE), {},
                 (False, "connection closed before a response"), id="closed-mid-head"),
    pytest.param(Reply(b"", RESET), {}, (False, "connection reset"), id="reset"),
    pytest.param(Reply(b"", HANG), {"timeout": 0.2}, (False, "timeout after 0.2s"), id="silent"),
])
def test_check_now_reads_responses(reply, kwargs, expected):
    with FakeBackend([reply]) as fake:
        backend = Backend(fake.url, id="fake")
        checker = ActiveChecker([backend], **kwargs)
        ok, reason = asyncio.run(checker.check_now(backend))
        assert (ok, reason[:len(expected[1])]) == expected
        assert fake.requests[0] == request_bytes(backend, "/health")
        assert checker.state("fake").last_reason == reason


def test_check_now_counts_toward_thresholds_and_calls_on_change():
    changes = []
    with FakeBackend(lambda head, index: Reply(b"", CLOSE)) as fake:
        backend = Backend(fake.url, id="fake")
        checker = ActiveChecker([backend], unhealthy_threshold=2,
                                on_change=lambda b, t: changes.append((b.id, t.new.value, t.reason)))

        async def two_checks():
            await checker.check_now(backend)
            assert changes == []
            await checker.check_now(backend)

        asyncio.run(two_checks())
    assert changes == [("fake", "unhealthy", "2 consecutive failures: connection closed before a response")]


def test_passing_checks_of_a_healthy_backend_call_on_pass_after_on_change():
    # Results: fail, fail (unhealthy), pass (still unhealthy), pass (healthy), pass, fail.
    script = ["-", "-", "+", "+", "+", "-"]
    calls = []

    def reply(head, index):
        return Reply(OK, CLOSE) if script[index] == "+" else Reply(b"", CLOSE)

    with FakeBackend(reply) as fake:
        backend = Backend(fake.url, id="fake")
        checker = ActiveChecker([backend], unhealthy_threshold=2, healthy_threshold=2,
                                on_change=lambda b, t: calls.append(("change", t.new.value)),
                                on_pass=lambda b: calls.append(("pass", b.id)))

        async def checks():
            for _ in script:
                await checker.check_now(backend)

        asyncio.run(checks())
    assert calls == [("change", "unhealthy"), ("change", "healthy"), ("pass", "fake"), ("pass", "fake")]


def test_a_failing_on_pass_is_logged_and_checks_go_on(caplog):
    with FakeBackend(lambda head, index: Reply(OK, CLOSE)) as fake:
        backend = Backend(fake.url, id="fake")

        def broken(b):
            raise RuntimeError("boom")

        checker = ActiveChecker([backend], on_pass=broken)
        assert asyncio.run(checker.check_now(backend)) == (True, "status 200")
    assert "health on_pass failed" in caplog.text
