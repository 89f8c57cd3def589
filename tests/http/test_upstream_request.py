# UpstreamRequest and UpstreamHeaders (src/fulcrum/http/upstream_request.py) without sockets:
# reading and editing header fields case-insensitively with order and case kept, the names
# Fulcrum owns refused with a message naming them, header injection refused, and the checks
# on an assigned method and target.
from __future__ import annotations

import pytest

from fulcrum.http.headers import NEVER_NOMINATED
from fulcrum.http.upstream_request import UpstreamHeaders, UpstreamRequest, refused_name

PAIRS = [(b"Accept", b"*/*"), (b"X-Tag", b"a"), (b"Cookie", b"c=1"), (b"x-tag", b"b")]


def headers() -> UpstreamHeaders:
    return UpstreamHeaders(list(PAIRS))


# -- reading -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "first", "every"), [
    pytest.param(b"x-tag", b"a", [b"a", b"b"], id="lower-case-name"),
    pytest.param(b"X-TAG", b"a", [b"a", b"b"], id="upper-case-name"),
    pytest.param(b"Accept", b"*/*", [b"*/*"], id="one-field"),
    pytest.param(b"X-Missing", None, [], id="absent"),
])
def test_get_and_get_all(name, first, every):
    h = headers()
    assert h.get(name) == first
    assert h.get_all(name) == every
    assert h.has(name) is (first is not None)


# -- editing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("edit", "expected"), [
    pytest.param(lambda h: h.set(b"X-Tag", b"z"),
                 [(b"Accept", b"*/*"), (b"X-Tag", b"z"), (b"Cookie", b"c=1")],
                 id="set-replaces-every-field-where-the-first-was"),
    pytest.param(lambda h: h.set(b"x-TAG", b"z"),
                 [(b"Accept", b"*/*"), (b"x-TAG", b"z"), (b"Cookie", b"c=1")],
                 id="set-case-insensitive-keeps-the-new-spelling"),
    pytest.param(lambda h: h.set(b"X-New", b"1"), PAIRS + [(b"X-New", b"1")], id="set-appends-when-absent"),
    pytest.param(lambda h: h.add(b"X-Tag", b"c"), PAIRS + [(b"X-Tag", b"c")], id="add-appends-after-existing"),
    pytest.param(lambda h: h.remove(b"X-TAG"), [(b"Accept", b"*/*"), (b"Cookie", b"c=1")],
                 id="remove-every-field-case-insensitive"),
    pytest.param(lambda h: h.remove(b"X-Missing"), PAIRS, id="remove-absent-is-fine"),
    pytest.param(lambda h: h.set(b"X-Empty", b""), PAIRS + [(b"X-Empty", b"")], id="empty-value"),
])
def test_edits(edit, expected):
    h = headers()
    edit(h)
    assert h.items() == expected


def test_items_is_the_list_the_exchange_serialises():
    pairs = list(PAIRS)
    h = UpstreamHeaders(pairs)
    h.remove(b"cookie")
    assert h.items() is pairs and len(h) == 3


# -- what is refused ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NEVER_NOMINATED), ids=lambda n: n.decode())
@pytest.mark.parametrize("op", ["set", "add", "remove"])
def test_names_fulcrum_owns_are_refused(name, op):
    h = headers()
    for spelling in (name, name.upper(), name.title()):
        with pytest.raises(ValueError, match=r"cannot be set or removed") as info:
            getattr(h, op)(*((spelling,) if op == "remove" else (spelling, b"x")))
        assert spelling.decode() in str(info.value)
    assert h.items() == PAIRS


@pytest.mark.parametrize(("name", "message"), [
    pytest.param(b"Host", "Host: Fulcrum writes this header itself; it cannot be set or removed", id="host"),
    pytest.param(b"Content-Length", "Content-Length: Fulcrum writes this header itself", id="content-length"),
    pytest.param(b"X-Forwarded-For", "X-Forwarded-For: Fulcrum writes this header itself", id="xff"),
    pytest.param(b"X-Request-ID", "X-Request-ID: Fulcrum writes this header itself", id="request-id"),
    pytest.param(b"Connection", "Connection: a hop-by-hop header describes one connection", id="connection"),
    pytest.param(b"Transfer-Encoding", "Transfer-Encoding: a hop-by-hop header", id="transfer-encoding"),
    pytest.param(b"Forwarded", "Forwarded: passed on only by the forwarded_headers policy", id="forwarded"),
    pytest.param(b"X-Real-IP", "X-Real-IP: passed on only by the forwarded_headers policy", id="x-real-ip"),
    pytest.param(b"Bad Name", "not a valid header name (got b'Bad Name')", id="space-in-name"),
    pytest.param(b"X-A\r\nX-B", "not a valid header name", id="crlf-in-name"),
    pytest.param(b"", "not a valid header name (got b'')", id="empty-name"),
    pytest.param(b"X-Tenant", None, id="ordinary-name"),
])
def test_refused_name_says_why(name, message):
    problem = refused_name(name)
    if message is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(message)


@pytest.mark.parametrize("value", [
    pytest.param(b"a\r\nX-Injected: 1", id="crlf"),
    pytest.param(b"a\nb", id="lf"),
    pytest.param(b"a\rb", id="cr"),
    pytest.param(b"a\x00b", id="nul"),
])
@pytest.mark.parametrize("op", ["set", "add"])
def test_header_injection_is_refused(op, value):
    h = headers()
    with pytest.raises(ValueError, match=r"X-Tenant: a header value may not hold CR, LF or NUL"):
        getattr(h, op)(b"X-Tenant", value)
    assert h.items() == PAIRS


def test_values_must_be_bytes():
    with pytest.raises(ValueError, match=r"X-Tenant: header values are bytes \(got str\)"):
        headers().set(b"X-Tenant", "acme")


# -- method and target -------------------------------------------------------------------------
def request() -> UpstreamRequest:
    return UpstreamRequest(b"GET", b"/api/users?x=1", list(PAIRS))


@pytest.mark.parametrize("target", [
    pytest.param(b"/", id="root"),
    pytest.param(b"/users?x=1", id="path-and-query"),
    pytest.param(b"/a%20b/%C3%A9", id="percent-encoded"),
    pytest.param(b"/caf\xc3\xa9", id="obs-text"),
])
def test_target_accepts_origin_form(target):
    r = request()
    r.target = target
    assert r.target == target


@pytest.mark.parametrize("target", [
    pytest.param(b"", id="empty"),
    pytest.param(b"users", id="relative"),
    pytest.param(b"http://evil/", id="absolute-form"),
    pytest.param(b"//evil/x", id="network-path"),
    pytest.param(b"*", id="asterisk"),
    pytest.param(b"/a b", id="space"),
    pytest.param(b"/a\r\nHost: evil", id="crlf"),
    pytest.param(b"/a\x00", id="nul"),
    pytest.param(b"/a\tb", id="tab"),
    pytest.param("/str", id="not-bytes"),
])
def test_target_refuses_anything_else(target):
    r = request()
    with pytest.raises(ValueError, match=r"target must be origin-form"):
        r.target = target
    assert r.target == b"/api/users?x=1"


@pytest.mark.parametrize(("method", "ok"), [
    pytest.param(b"POST", True, id="post"),
    pytest.param(b"PURGE", True, id="extension-method"),
    pytest.param(b"GET /x HTTP/1.1\r\n", False, id="injection"),
    pytest.param(b"", False, id="empty"),
    pytest.param(b"G T", False, id="space"),
    pytest.param("GET", False, id="not-bytes"),
])
def test_method_must_be_a_token(method, ok):
    r = request()
    if ok:
        r.method = method
        assert r.method == method
    else:
        with pytest.raises(ValueError, match=r"method must be a token"):
            r.method = method
        assert r.method == b"GET"


def test_request_exposes_its_headers():
    r = request()
    r.headers.set(b"X-Tenant", b"acme")
    assert r.headers.get(b"x-tenant") == b"acme"
    assert r.headers.items()[-1] == (b"X-Tenant", b"acme")
