# Check verdicts: status range and body rules with their reasons, the expected-status syntax,
# and how errors raised during a check are worded.
from __future__ import annotations

import pytest

from fulcrum.health.probe import (
    CONNECT, RESPONSE, CheckFailed, describe_error, evaluate, format_status_range,
    parse_status_range,
)


@pytest.mark.parametrize("status, body, error, kwargs, expected", [
    pytest.param(200, b"ok\n", None, {}, (True, "status 200"), id="200-ok"),
    pytest.param(399, b"", None, {}, (True, "status 399"), id="top-of-range"),
    pytest.param(400, b"", None, {}, (False, "status 400 not in 200-399"), id="just-above-range"),
    pytest.param(199, b"", None, {}, (False, "status 199 not in 200-399"), id="just-below-range"),
    pytest.param(503, b"unhealthy\n", None, {}, (False, "status 503 not in 200-399"), id="503"),
    pytest.param(204, None, None, {"expect_status": (204, 204)}, (True, "status 204"), id="single-code"),
    pytest.param(200, b"", None, {"expect_status": (204, 204)}, (False, "status 200 not in 204"),
                 id="single-code-mismatch"),
    pytest.param(200, b"all ok\n", None, {"expect_body": b"ok"}, (True, "status 200"), id="body-contains"),
    pytest.param(200, b"degraded\n", None, {"expect_body": b"ok"},
                 (False, "body does not contain 'ok'"), id="body-missing"),
    pytest.param(200, None, None, {"expect_body": b"ok"}, (False, "body does not contain 'ok'"),
                 id="no-body"),
    pytest.param(503, b"ok", None, {"expect_body": b"ok"}, (False, "status 503 not in 200-399"),
                 id="status-checked-before-body"),
    pytest.param(None, None, "timeout after 1s", {}, (False, "timeout after 1s"), id="error-wins"),
    pytest.param(200, b"ok", "connect refused", {}, (False, "connect refused"), id="error-over-status"),
    pytest.param(None, None, None, {}, (False, "no response"), id="nothing"),
])
def test_evaluate(status, body, error, kwargs, expected):
    assert evaluate(status, body, error, **kwargs) == expected


@pytest.mark.parametrize("text, expected", [
    pytest.param("200-399", (200, 399), id="range"),
    pytest.param("200", (200, 200), id="single"),
    pytest.param(" 204 ", (204, 204), id="whitespace"),
    pytest.param(200, (200, 200), id="int"),
    pytest.param("100-599", (100, 599), id="widest"),
])
def test_parse_status_range(text, expected):
    assert parse_status_range(text) == expected
    assert parse_status_range(format_status_range(expected)) == expected


@pytest.mark.parametrize("text, message", [
    pytest.param("", "must be a code like 200 or a range like 200-399 (got '')", id="empty"),
    pytest.param("2xx", "must be a code like 200 or a range like 200-399 (got '2xx')", id="pattern"),
    pytest.param("200,204", "must be a code like 200 or a range like 200-399 (got '200,204')", id="list"),
    pytest.param("200-", "must be a code like 200 or a range like 200-399 (got '200-')", id="open-range"),
    pytest.param("99", "must be a code like 200 or a range like 200-399 (got '99')", id="two-digits"),
    pytest.param("600", "must be within 100-599 (got 600)", id="above-599"),
    pytest.param("200-700", "must be within 100-599 (got 200-700)", id="range-above-599"),
    pytest.param("399-200", "must go from low to high (got 399-200)", id="reversed"),
])
def test_parse_status_range_rejects(text, message):
    with pytest.raises(ValueError) as info:
        parse_status_range(text)
    assert message in str(info.value)


@pytest.mark.parametrize("exc, phase, expected", [
    pytest.param(TimeoutError(), RESPONSE, "timeout after 1s", id="timeout"),
    pytest.param(TimeoutError(), CONNECT, "connect timeout after 1s", id="connect-timeout"),
    pytest.param(ConnectionRefusedError(111, "Connection refused"), CONNECT, "connect refused",
                 id="refused"),
    pytest.param(OSError(113, "No route to host"), CONNECT, "connect failed: No route to host",
                 id="connect-oserror"),
    pytest.param(ConnectionResetError(104, "Connection reset by peer"), RESPONSE, "connection reset",
                 id="reset"),
    pytest.param(BrokenPipeError(32, "Broken pipe"), RESPONSE, "connection error: Broken pipe",
                 id="broken-pipe"),
    pytest.param(CheckFailed("invalid response: bad status line"), RESPONSE,
                 "invalid response: bad status line", id="already-worded"),
    pytest.param(RuntimeError("boom"), RESPONSE, "RuntimeError: boom", id="unexpected"),
    pytest.param(KeyError(), RESPONSE, "KeyError", id="unexpected-no-message"),
])
def test_describe_error(exc, phase, expected):
    assert describe_error(exc, phase=phase, timeout=1.0) == expected


def test_describe_error_formats_fractional_timeouts():
    assert describe_error(TimeoutError(), phase=RESPONSE, timeout=0.3) == "timeout after 0.3s"
