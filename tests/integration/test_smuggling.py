"""Request smuggling and desync, tried as an attacker would: Connection tokens that name
framing or forwarding headers, upgrade requests with bodies, versions and methods Fulcrum
does not proxy, heads that never end. Each case runs through a real Fulcrum in front of a
scripted raw-socket backend that records every head and body it parses, so a request hidden
in another, or a body left on a pooled connection, shows up as an extra or a wrong request.
"""
from __future__ import annotations

import socket

import pytest

from tests.support.fake_backend import SILENT, FakeBackend, RawClient, wait_until
from tests.support.processes import PLAIN

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: victim\r\n\r\n"


@pytest.fixture
def proxy(fulcrum):
    """``proxy(fake, **sections)``: Fulcrum with one pool holding the fake backend."""

    def start(fake: FakeBackend, **sections) -> object:
        return fulcrum({"pools": {"web": {**PLAIN, "backends": [{"url": fake.url}]}}, **sections})

    return start


def header(head: bytes, name: bytes) -> list[bytes]:
    """Every value of header ``name`` in a raw head."""
    values = []
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            values.append(value.strip())
    return values


def exchange(lb, raw: bytes, count: int = 1, method: str = "GET") -> list:
    with RawClient(lb.port) as client:
        client.send(raw)
        return [client.read_response(method) for _ in range(count)]


def follow_up(lb) -> None:
    """A second client's request on the pooled backend connection: it must arrive whole."""
    [resp] = exchange(lb, b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert resp.status == 200, resp


# -- Connection tokens -------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    pytest.param(b"content-length", id="content-length"),
    pytest.param(b"Content-Length, close", id="content-length-with-close"),
    pytest.param(b"keep-alive, content-length", id="after-keep-alive"),
])
def test_a_connection_token_cannot_drop_content_length(proxy, token):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        raw = (b"POST /upload HTTP/1.1\r\nHost: example.com\r\nConnection: %s\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (token, len(SMUGGLED), SMUGGLED))
        [resp] = exchange(lb, raw, method="POST")
        assert resp.status == 200
        follow_up(lb)
        assert [h.split(b" ")[1] for h in fake.requests] == [b"/upload", b"/next"]
        assert fake.bodies[0] == SMUGGLED  # the hidden request stayed a body
        assert header(fake.requests[0], b"content-length") == [b"%d" % len(SMUGGLED)]


def test_a_connection_token_cannot_drop_transfer_encoding(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        raw = (b"POST /upload HTTP/1.1\r\nHost: example.com\r\nConnection: transfer-encoding\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        [resp] = exchange(lb, raw, method="POST")
        assert resp.status == 200
        assert header(fake.requests[0], b"transfer-encoding") == [b"chunked"]
        # (The scripted backend reads no chunked framing: the body shows up as more "heads".)
        assert b"".join(fake.requests[1:]) == b"5\r\nhello\r\n0\r\n\r\n"


@pytest.mark.parametrize("token", [
    b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id",
    b"POST /upload HTTP/1.1", b"GET / HTTP/1.1",
])
def test_a_connection_token_cannot_drop_the_request_line_host_or_forwarding_headers(proxy, token):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        [resp] = exchange(lb, b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: %s\r\n\r\n" % token)
        assert resp.status == 200
        head = fake.requests[0]
        assert head.startswith(b"GET / HTTP/1.1\r\n"), head
        assert header(head, b"host") == [b"example.com"]
        for name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"):
            assert len(header(head, name)) == 1, (name, head)


def test_a_connection_token_still_drops_the_header_it_names(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        exchange(lb, b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: x-hop, keep-alive\r\n"
                     b"X-Hop: 1\r\nX-Kept: 2\r\n\r\n")
        head = fake.requests[0]
        assert header(head, b"x-hop") == [] and header(head, b"x-kept") == [b"2"]


# -- upgrade requests --------------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PUT", "GET"])
def test_an_upgrade_request_with_a_body_is_an_ordinary_request_with_its_body(proxy, method):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        raw = (b"%s /up HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (method.encode(), len(SMUGGLED), SMUGGLED))
        with RawClient(lb.port) as client:
            client.send(raw)
            resp = client.read_response(method)
            assert resp.status == 200
            assert client.read_to_eof() == b""  # an upgrade request is never kept alive
        follow_up(lb)
        assert [h.split(b" ")[1] for h in fake.requests] == [b"/up", b"/next"]
        assert fake.bodies[0] == SMUGGLED
        assert header(fake.requests[0], b"upgrade") == []


def test_an_upgrade_request_with_a_chunked_body_is_read_to_its_end(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
        raw = (b"POST /up HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + body)
        [resp] = exchange(lb, raw, method="POST")
        assert resp.status == 200
        assert header(fake.requests[0], b"transfer-encoding") == [b"chunked"]
        assert header(fake.requests[0], b"upgrade") == []
        # (The scripted backend reads no chunked framing: the body shows up as more "heads".)
        assert wait_until(lambda: b"".join(fake.requests[1:]) == body)


def test_a_bad_request_after_an_upgrade_requests_body_is_answered_as_bad(fulcrum):
    # llhttp stops at the upgrade request's head; what follows is fed again. The request after
    # the body is refused for its own fault (a 414 owed to no one: an upgrade request is never
    # kept alive), not taken for Fulcrum's (an internal error, logged with a traceback).
    with FakeBackend(lambda head, i: OK) as fake:
        lb = fulcrum({"pools": {"web": {**PLAIN, "backends": [{"url": fake.url}]}},
                      "limits": {"max_url_length": 100}})
        raw = (b"POST /up HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
               b"Content-Length: 2\r\n\r\nhi" + b"GET /" + b"a" * 101 + b" HTTP/1.1\r\nHost: example.com\r\n\r\n")
        with RawClient(lb.port) as client:
            client.send(raw)
            assert client.read_response("POST").status == 200
            assert client.read_to_eof() == b""
        assert [h.split(b" ")[1] for h in fake.requests] == [b"/up"]
        assert "internal error" not in lb.output and "Traceback" not in lb.output


def test_what_follows_an_upgrade_requests_chunked_body_is_dropped(fulcrum):
    # The chunked body of an upgrade request that is no tunnel is read by a second parser,
    # which the connection drops from inside its own callback when the body ends; a request
    # follows in the same read and is never parsed. Under the debug allocator (freed memory
    # poisoned), the connection answers the one request and closes, every time.
    with FakeBackend(lambda head, i: OK) as fake:
        lb = fulcrum({"pools": {"web": {**PLAIN, "backends": [{"url": fake.url}]}}},
                     env={"PYTHONMALLOC": "debug"})
        raw = (b"POST /up HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        for _ in range(20):
            with RawClient(lb.port) as client:
                client.send(raw)
                assert client.read_response("POST").status == 200
                assert client.read_to_eof() == b""
        follow_up(lb)
        assert lb.proc.poll() is None


@pytest.mark.parametrize("asked, passed", [
    pytest.param(b"websocket", [b"websocket"], id="websocket"),
    pytest.param(b"h2c, WebSocket", [b"websocket"], id="h2c-and-websocket"),
    pytest.param(b"h2c", [], id="h2c-only"),
    pytest.param(b"notwebsocket", [], id="not-a-token-match"),
])
def test_only_the_websocket_token_is_passed_on(proxy, asked, passed):
    # The backend refuses the switch (a 200): the request went on as a plain GET.
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        exchange(lb, b"GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n" % asked)
        assert header(fake.requests[0], b"upgrade") == passed


# -- request lines, methods, Host --------------------------------------------------------

@pytest.mark.parametrize("raw, status", [
    pytest.param(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, id="connect"),
    pytest.param(b"GET /\r\n\r\n", 400, id="http-0.9-no-version"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: example.com\r\n\r\n", 505, id="http-2.0"),
    pytest.param(b"GET / HTTP/1.2\r\nHost: example.com\r\n\r\n", 400, id="http-1.2"),
    pytest.param(b"GET example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400, id="target-not-origin-form"),
    pytest.param(b"GET * HTTP/1.1\r\nHost: example.com\r\n\r\n", 400, id="asterisk-not-options"),
    pytest.param(b"GET https:/x HTTP/1.1\r\nHost: example.com\r\n\r\n", 400, id="broken-absolute-form"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, id="host-with-space"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, id="host-with-userinfo"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400, id="host-list"),
])
def test_what_is_not_proxied_is_answered_and_never_forwarded(proxy, raw, status):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        with RawClient(lb.port) as client:
            client.send(raw + b"GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n")
            resp = client.read_response()
            assert resp.status == status, resp
            if status == 405:
                assert "GET" in resp.header("allow")
            assert client.read_to_eof() == b""  # closed: nothing after it is read
        assert fake.requests == []


def test_options_asterisk_is_forwarded(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        [resp] = exchange(lb, b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n")
        assert resp.status == 200
        assert fake.requests[0].startswith(b"OPTIONS * HTTP/1.1\r\n")


def test_http10_without_host_reaches_the_backend_with_its_authority(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        [resp] = exchange(lb, b"GET /old HTTP/1.0\r\n\r\n")
        assert resp.status == 200
        assert header(fake.requests[0], b"host") == [b"127.0.0.1:%d" % fake.port]
        assert header(fake.requests[0], b"x-forwarded-host") == []


def test_absolute_form_authority_replaces_host_and_backend_gets_origin_form(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        exchange(lb, b"GET http://real.example:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        head = fake.requests[0]
        assert head.startswith(b"GET /p?q=1 HTTP/1.1\r\n")
        assert header(head, b"host") == [b"real.example:8080"]


# -- Forwarded, X-Real-IP and the client address ------------------------------------------

def test_forwarded_and_x_real_ip_from_an_untrusted_peer_are_removed(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        exchange(lb, b"GET / HTTP/1.1\r\nHost: example.com\r\nForwarded: for=6.6.6.6\r\n"
                     b"X-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
        head = fake.requests[0]
        assert header(head, b"forwarded") == [] and header(head, b"x-real-ip") == []
        # X-Forwarded-For is appended to, with the peer last: the backend reads it from the right.
        assert header(head, b"x-forwarded-for") == [b"6.6.6.6, 127.0.0.1"]


def test_a_trusted_proxy_keeps_its_headers_and_names_the_client(proxy, tmp_path):
    log = tmp_path / "access.log"
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake, trusted_proxies=["127.0.0.1"], client_ip_header="x-real-ip",
                   access_log={"output": str(log), "format": "json"})
        exchange(lb, b"GET / HTTP/1.1\r\nHost: example.com\r\nForwarded: for=198.51.100.1\r\n"
                     b"X-Real-IP: 203.0.113.5\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
        head = fake.requests[0]
        assert header(head, b"forwarded") == [b"for=198.51.100.1"]
        assert header(head, b"x-real-ip") == [b"203.0.113.5"]
        # The access log names the client from the header the proxies write, and only that one.
        assert wait_until(lambda: log.exists() and b"203.0.113.5" in log.read_bytes())
        assert b"6.6.6.6" not in log.read_bytes() and b"198.51.100.1" not in log.read_bytes()


def test_the_rate_limiter_counts_the_client_the_trusted_proxy_names(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake, trusted_proxies=["127.0.0.0/8"],
                   rate_limit={"requests_per_second": 0.01, "burst": 1})
        first = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n"
        second = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.2\r\n\r\n"
        assert [exchange(lb, first)[0].status, exchange(lb, second)[0].status,
                exchange(lb, first)[0].status] == [200, 200, 429]
        # A Forwarded header is not the one configured: it cannot move the client to a fresh bucket.
        spoof = b"GET / HTTP/1.1\r\nHost: example.com\r\nForwarded: for=203.0.113.9\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n"
        assert exchange(lb, spoof)[0].status == 429


# -- heads that never end ------------------------------------------------------------------

def stream_until_answered(port: int, start: bytes, filler: bytes, most: int) -> tuple[bytes, int]:
    """Send ``start`` then ``filler`` repeatedly (never a line end) until Fulcrum answers
    or ``most`` bytes went out; returns what came back and how much was sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    try:
        sock.sendall(start)
        sock.settimeout(0.05)
        while sent < most:
            try:
                answer = sock.recv(65536)
                return answer, sent
            except socket.timeout:
                pass
            try:
                sock.sendall(filler)
            except OSError:
                break
            sent += len(filler)
        sock.settimeout(10)
        try:
            return sock.recv(65536), sent
        except OSError:
            return b"", sent
    finally:
        sock.close()


def test_trailers_over_the_limit_in_the_heads_read_are_431(proxy):
    """Trailers that end, but are larger than limits.max_header_bytes, sent with the head in
    one write: the read budget does not charge what follows a step in the same read, so the
    trailers are counted as they are parsed."""
    with FakeBackend(lambda head, i: SILENT) as fake:
        lb = proxy(fake, limits={"max_header_bytes": 16384})
        with RawClient(lb.port) as client:
            client.send(b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n0\r\nX-T: " + b"a" * 12000 + b"\r\nX-U: " + b"a" * 12000 + b"\r\n\r\n")
            resp = client.read_response()
            assert resp.status == 431, resp
            assert client.read_to_eof() == b""  # and the connection closes


@pytest.mark.parametrize("start", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Long: ", id="one-header-line"),
    pytest.param(b"GET /", id="request-line"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: ",
                 id="chunked-trailer"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=", id="chunk-extension"),
])
def test_a_head_that_never_ends_is_431_after_the_limit(proxy, start):
    with FakeBackend(lambda head, i: SILENT) as fake:  # a chunked request waits for its end
        lb = proxy(fake, limits={"max_header_bytes": 16384, "max_url_length": 1 << 20})
        answer, sent = stream_until_answered(lb.port, start, b"a" * 4096, 64 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 431 "), (answer[:200], sent)
        # Answered long before 64 MiB: the head is judged as its bytes arrive, not at its CRLF.
        assert sent < 8 * 1024 * 1024


def test_a_head_just_under_the_limit_in_many_pieces_passes(proxy):
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake, limits={"max_header_bytes": 16384})
        raw = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Fill: " + b"a" * 15000 + b"\r\n\r\n"
        with RawClient(lb.port) as client:
            for i in range(0, len(raw), 1000):
                client.send(raw[i:i + 1000])
            assert client.read_response().status == 200


def test_http10_keeps_the_connection_open_only_on_connection_keep_alive(proxy):
    # Found by the differential fuzzer: llhttp keeps an HTTP/1.0 connection open on
    # Proxy-Connection: keep-alive, where an RFC reader in front would end it; what follows
    # must then not be read as a request.
    with FakeBackend(lambda head, i: OK) as fake:
        lb = proxy(fake)
        with RawClient(lb.port) as client:
            client.send(b"PUT /a HTTP/1.0\r\nContent-Length: 6\r\nProxy-Connection: keep-alive\r\n\r\n"
                        b"abcdefPOST http://x/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.read_response("PUT").status == 200
            assert client.read_to_eof() == b""
        assert [h.split(b" ")[1] for h in fake.requests] == [b"/a"]
        for both in (b"Connection: keep-alive, close\r\n", b"Connection: close\r\nConnection: keep-alive\r\n"):
            with RawClient(lb.port) as client:  # close wins over keep-alive
                client.send(b"GET /x HTTP/1.0\r\n" + both + b"\r\nGET /y HTTP/1.0\r\n\r\n")
                assert client.read_response().status == 200
                assert client.read_to_eof() == b""
        assert b"/y" not in b"".join(fake.requests)
        with RawClient(lb.port) as client:  # Connection: keep-alive still keeps it open
            client.send(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /c HTTP/1.0\r\n\r\n")
            assert [client.read_response().status for _ in range(2)] == [200, 200]
