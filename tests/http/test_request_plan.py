"""The request side as pure functions (http/request_plan.py): a parsed head in, a plan and the
backend's head out. Tables of heads, no sockets."""
from __future__ import annotations

import pytest

from fulcrum.http.errors import HttpError
from fulcrum.http.request_plan import backend_authority, header_fields, header_pairs, plan_request, upstream_head

H = (b"Host", b"example.com")


def plan(*headers, method=b"GET", target=b"/", http11=True, upgrade=False, limit=0, known=b""):
    return plan_request(method, target, list(headers), http11, upgrade, limit, known)


def head(p, method=b"GET", client=b"192.0.2.1", https=False, request_id=b"rid", peer=False, host=None):
    return upstream_head(method, p.target, p.host if host is None else host, p.fields, p, client, https,
                         request_id, peer)


@pytest.mark.parametrize("headers, kwargs, status, words", [
    pytest.param([], {"method": b"CONNECT", "target": b"a:443"}, 405, "CONNECT", id="connect"),
    pytest.param([H], {"target": b"/a#frag"}, 400, "fragment", id="fragment"),
    pytest.param([H], {"target": b"a/b"}, 400, "request target", id="not-origin-form"),
    pytest.param([H], {"target": b"*"}, 400, "request target", id="asterisk-not-options"),
    pytest.param([H], {"target": b"https:/x"}, 400, "absolute-form", id="broken-absolute"),
    pytest.param([H], {"target": b"http://:80/x"}, 400, "authority", id="absolute-empty-host"),
    pytest.param([H], {"target": b"http://u@h/x"}, 400, "authority", id="absolute-userinfo"),
    pytest.param([], {}, 400, "missing Host", id="missing-host"),
    pytest.param([H, H], {}, 400, "more than one Host", id="two-hosts"),
    pytest.param([(b"Host", b"a b")], {}, 400, "invalid Host", id="host-space"),
    pytest.param([(b"Host", b":80")], {}, 400, "invalid Host", id="host-only-port"),
    pytest.param([(b"Host", b"a,b")], {}, 400, "invalid Host", id="host-list"),
    pytest.param([H, (b"Transfer-Encoding", b"gzip, chunked")], {}, 400, "Transfer-Encoding", id="te-gzip"),
    pytest.param([H, (b"Transfer-Encoding", b"chunked\t")], {}, 400, "Transfer-Encoding", id="te-tab"),
    pytest.param([H, (b"Content-Length", b"11")], {"limit": 10}, 413, "exceeds", id="cl-over-limit"),
])
def test_refused_heads(headers, kwargs, status, words):
    with pytest.raises(HttpError) as caught:
        plan(*headers, **kwargs)
    assert caught.value.status == status
    assert words in caught.value.reason
    if status == 405:
        assert caught.value.headers.startswith(b"Allow: GET")


def test_a_plain_get():
    p = plan(H, (b"User-Agent", b"x"), (b"Connection", b"keep-alive"))
    assert (p.target, p.host, p.has_body, p.upgrade, p.request_id) == (b"/", b"example.com", False, None, b"")
    assert head(p) == (b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\n"
                       b"X-Forwarded-Host: example.com\r\nX-Forwarded-For: 192.0.2.1\r\n"
                       b"X-Forwarded-Proto: http\r\nX-Request-ID: rid\r\n\r\n")


@pytest.mark.parametrize("token", [
    b"content-length", b"host", b"transfer-encoding", b"x-forwarded-for", b"x-request-id",
    b"x-forwarded-host", b"GET / HTTP/1.1", b"",
])
def test_no_connection_token_drops_what_fulcrum_owns(token):
    p = plan(H, (b"Connection", token), (b"Content-Length", b"3"), (b"X-Forwarded-For", b"10.0.0.1"),
             (b"X-Request-ID", b"abc"), method=b"POST")
    out = head(p, method=b"POST", request_id=p.request_id)
    assert out.startswith(b"POST / HTTP/1.1\r\nHost: example.com\r\n")
    assert b"Content-Length: 3\r\n" in out
    assert b"X-Forwarded-For: 10.0.0.1, 192.0.2.1\r\n" in out
    assert b"X-Request-ID: abc\r\n" in out


def test_a_connection_token_drops_the_header_it_names_by_name():
    p = plan(H, (b"Connection", b"x-hop, close"), (b"X-Hop", b"1"), (b"X-Hop-Not", b"2"), (b"x-HOP", b"3"))
    assert p.fields == [b"X-Hop-Not", b": ", b"2", b"\r\n"]


@pytest.mark.parametrize("name", [b"X_Real_IP", b"X_Forwarded_For", b"x_forwarded_host", b"Transfer_Encoding"])
def test_underscore_spellings_of_owned_headers_are_dropped(name):
    assert b"".join(plan(H, (name, b"6.6.6.6"), (b"X_Custom", b"kept")).fields) == b"X_Custom: kept\r\n"


@pytest.mark.parametrize("method, upgrade, extra, expected", [
    pytest.param(b"GET", b"websocket", [], b"websocket", id="websocket"),
    pytest.param(b"GET", b"h2c, WebSocket", [], b"websocket", id="listed-among-others"),
    pytest.param(b"GET", b"h2c", [], None, id="h2c"),
    pytest.param(b"GET", b"websockets", [], None, id="not-the-token"),
    pytest.param(b"POST", b"websocket", [], None, id="not-a-get"),
    pytest.param(b"GET", b"websocket", [(b"Content-Length", b"5")], None, id="with-a-body"),
])
def test_only_a_bodiless_websocket_get_may_become_a_tunnel(method, upgrade, extra, expected):
    p = plan(H, (b"Connection", b"Upgrade"), (b"Upgrade", upgrade), *extra, method=method, upgrade=True)
    assert p.upgrade == expected
    out = head(p, method=method)
    assert (b"Upgrade: websocket\r\n" in out) == (expected is not None)
    assert b"h2c" not in out


def test_framing():
    chunked = plan(H, (b"Transfer-Encoding", b"Chunked"), method=b"POST")
    assert (chunked.framing, chunked.chunked, chunked.has_body) == (b"Transfer-Encoding: chunked\r\n", True, True)
    empty = plan(H, (b"Content-Length", b"0"), method=b"POST")
    assert (empty.framing, empty.has_body, empty.content_length) == (b"Content-Length: 0\r\n", False, 0)
    sized = plan(H, (b"Content-Length", b"12"), method=b"POST")
    assert (sized.has_body, sized.content_length) == (True, 12)


def test_absolute_form_authority_wins_and_the_backend_gets_origin_form():
    p = plan((b"Host", b"other"), target=b"HTTP://real.example:8080?q=1")
    assert (p.target, p.host) == (b"/?q=1", b"real.example:8080")


def test_http10_without_host_takes_the_backends_authority():
    p = plan(http11=False)
    assert p.host == b""
    out = head(p, host=backend_authority("10.0.0.5", 8080))
    assert out.startswith(b"GET / HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n")
    assert b"X-Forwarded-Host" not in out
    assert backend_authority("::1", 80) == b"[::1]"


def test_peer_forwarding_lines_pass_only_when_asked():
    p = plan(H, (b"Forwarded", b"for=6.6.6.6"), (b"X-Real-IP", b"6.6.6.6"))
    assert b"\r\nForwarded:" not in head(p) and b"X-Real-IP" not in head(p)
    assert b"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n" in head(p, peer=True)


def test_a_known_valid_host_is_not_checked_again_and_a_client_request_id_is_kept_when_sane():
    assert plan((b"Host", b"example.com"), known=b"example.com").host == b"example.com"
    assert plan(H, (b"X-Request-ID", b"ok-123")).request_id == b"ok-123"
    assert plan(H, (b"X-Request-ID", b"has space")).request_id == b""


def test_header_fields_and_pairs_round_trip():
    pairs = [(b"X-A", b"1"), (b"x-b", b"two: words")]
    assert header_pairs(header_fields(pairs)) == pairs
    assert b"".join(header_fields(pairs)) == b"X-A: 1\r\nx-b: two: words\r\n"


def test_forwarded_for_lists_every_earlier_hop_then_the_client():
    p = plan(H, (b"X-Forwarded-For", b"10.0.0.1"), (b"X-Forwarded-For", b"10.0.0.2, 10.0.0.3"))
    assert b"\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.1\r\n" in head(p)
    assert b"\r\nX-Forwarded-Proto: https\r\n" in head(p, https=True)
