# Header hygiene (src/fulcrum/http/headers.py) and the proxy's own error responses
# (src/fulcrum/http/responses.py), without sockets. Responses are parsed with h11.
from __future__ import annotations

from http import HTTPStatus

import h11
import pytest

from fulcrum.http.errors import BadRequest, HttpError
from fulcrum.http.headers import check_transfer_encoding, connection_tokens, host_without_port
from fulcrum.http.responses import error_response


# -- connection_tokens ---------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    pytest.param(b"close", {b"close"}, id="one"),
    pytest.param(b"Close", {b"close"}, id="lower-cased"),
    pytest.param(b"keep-alive, Upgrade", {b"keep-alive", b"upgrade"}, id="two"),
    pytest.param(b"  X-Foo ,x-bar,  ", {b"x-foo", b"x-bar"}, id="whitespace-trimmed"),
    pytest.param(b"x-foo, X-FOO", {b"x-foo"}, id="duplicates-merge"),
    pytest.param(b", ,,", set(), id="only-commas"),
    pytest.param(b"", set(), id="empty"),
    pytest.param(b"\tTE\t", {b"te"}, id="tabs-trimmed"),
])
def test_connection_tokens(value, expected):
    assert connection_tokens(value) == expected


# -- check_transfer_encoding ---------------------------------------------------------
@pytest.mark.parametrize("values", [
    pytest.param([b"chunked"], id="chunked"),
    pytest.param([b"Chunked"], id="case-insensitive"),
    pytest.param([b"CHUNKED"], id="upper-case"),
    pytest.param([b" chunked "], id="surrounding-whitespace"),
])
def test_transfer_encoding_single_chunked_is_accepted(values):
    assert check_transfer_encoding(values) is None


@pytest.mark.parametrize("values", [
    pytest.param([b"gzip, chunked"], id="gzip-then-chunked"),
    pytest.param([b"chunked, gzip"], id="chunked-not-last"),
    pytest.param([b"chunked, chunked"], id="chunked-twice-one-header"),
    pytest.param([b"chunked", b"chunked"], id="chunked-twice-two-headers"),
    pytest.param([b"gzip", b"chunked"], id="gzip-header-then-chunked-header"),
    pytest.param([b"identity"], id="identity"),
    pytest.param([b"gzip"], id="gzip"),
    pytest.param([b"chunkedx"], id="chunked-prefix"),
    pytest.param([b"xchunked"], id="chunked-suffix"),
    pytest.param([b""], id="empty-value"),
    pytest.param([], id="no-values"),
])
def test_transfer_encoding_anything_else_is_400(values):
    with pytest.raises(BadRequest) as caught:
        check_transfer_encoding(values)
    assert isinstance(caught.value, HttpError)
    assert caught.value.status == 400
    assert "chunked" in caught.value.reason


# -- host_without_port -------------------------------------------------------------
@pytest.mark.parametrize(("host", "expected"), [
    pytest.param(b"example.com", "example.com", id="name"),
    pytest.param(b"Example.COM", "example.com", id="lower-cased"),
    pytest.param(b"example.com:8080", "example.com", id="name-port"),
    pytest.param(b"Example.com:8080", "example.com", id="name-port-lower-cased"),
    pytest.param(b"example.com:", "example.com", id="empty-port"),
    pytest.param(b"127.0.0.1", "127.0.0.1", id="ipv4"),
    pytest.param(b"127.0.0.1:80", "127.0.0.1", id="ipv4-port"),
    pytest.param(b"[::1]", "[::1]", id="ipv6"),
    pytest.param(b"[::1]:80", "[::1]", id="ipv6-port"),
    pytest.param(b"[2001:DB8::1]:8443", "[2001:db8::1]", id="ipv6-port-lower-cased"),
    pytest.param(b"[fe80::1%25eth0]:80", "[fe80::1%25eth0]", id="ipv6-zone"),
    pytest.param(b"  a.example.com:1  ", "a.example.com", id="surrounding-whitespace"),
])
def test_host_without_port(host, expected):
    assert host_without_port(host) == expected


# -- error_response ------------------------------------------------------------------
def parse_response(raw: bytes) -> tuple[h11.Response, bytes, bool]:
    """Status/headers, body and whether the bytes hold exactly one complete response."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    head = conn.next_event()
    assert isinstance(head, h11.Response), head
    body = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            raise AssertionError(f"response is incomplete: {event!r}")
    complete = conn.next_event() is h11.NEED_DATA and conn.trailing_data == (b"", False)
    return head, body, complete


def header_map(response: h11.Response) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in response.headers:
        found.setdefault(name.lower(), []).append(value)
    return found


@pytest.mark.parametrize("status", [
    pytest.param(s, id=str(s)) for s in (400, 404, 408, 413, 414, 431, 500, 502, 503, 504)
])
def test_error_response_shape(status):
    raw = error_response(status, b"abc-123")
    status_line = raw.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode())
    head, body, complete = parse_response(raw)
    assert complete
    assert head.status_code == status
    headers = header_map(head)
    assert headers[b"content-length"] == [str(len(body)).encode()]
    assert headers[b"x-request-id"] == [b"abc-123"]
    assert headers[b"connection"] == [b"close"]
    assert headers[b"content-type"][0].startswith(b"text/plain")
    assert body.startswith(b"%d " % status)
    assert b"abc-123" in body
    assert body.endswith(b"\n")


def test_error_response_detail_is_in_the_body():
    head, body, _ = parse_response(error_response(503, b"rid", "pool 'web' has no available backend"))
    assert b"pool 'web' has no available backend" in body
    assert header_map(head)[b"content-length"] == [str(len(body)).encode()]


def test_error_response_content_length_counts_bytes_not_characters():
    head, body, complete = parse_response(error_response(502, b"rid", "backend said \u00e9\u00e9\u00e9"))
    assert complete
    assert header_map(head)[b"content-length"] == [str(len(body)).encode()]
    assert "\u00e9\u00e9\u00e9" in body.decode("utf-8")


def test_error_response_without_request_id_has_no_header():
    head, body, complete = parse_response(error_response(400, None))
    assert complete
    headers = header_map(head)
    assert b"x-request-id" not in headers
    assert headers[b"content-length"] == [str(len(body)).encode()]


def test_error_response_keep_alive_has_no_connection_close():
    raw = error_response(404, b"rid", close=False)
    head, body, complete = parse_response(raw)
    assert complete
    headers = header_map(head)
    assert b"connection" not in headers
    assert headers[b"x-request-id"] == [b"rid"]
    assert headers[b"content-length"] == [str(len(body)).encode()]


def test_error_response_extra_headers_are_included():
    raw = error_response(503, b"rid", extra=b"Retry-After: 5\r\n")
    head, _, complete = parse_response(raw)
    assert complete
    headers = header_map(head)
    assert headers[b"retry-after"] == [b"5"]
    assert headers[b"connection"] == [b"close"]


def test_error_response_unknown_status_still_well_formed():
    head, body, complete = parse_response(error_response(599, b"rid"))
    assert complete
    assert head.status_code == 599
    assert header_map(head)[b"content-length"] == [str(len(body)).encode()]
