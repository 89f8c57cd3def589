"""The proxy core without sockets, as uvicorn tests its protocols: a ClientConnection and pooled
UpstreamConnections on a provisioned runtime, driven through FakeTransports
(tests/support/fake_transport.py) by calling their protocol methods. Asserts the exact bytes
each side gets, the exchange's phases, its backend lease and the limits on both sides."""
from __future__ import annotations

import asyncio
import functools

import pytest

from fulcrum.config.load import load_config_from_dict
from fulcrum.proxy.client import ClientConnection
from fulcrum.proxy.exchange import (
    ABORTED, CONNECTING, DONE, PHASES, RECEIVED, RESPONDING, RETRYING, SENT, TUNNEL, InvalidTransition,
)
from fulcrum.proxy.server import ProxyServer
from fulcrum.proxy.upstream import MAX_INFORMATIONAL, UpstreamConnection
from fulcrum.runtime.provision import provision
from tests.support.fake_transport import FakeTransport, run_in_memory

CLIENT = ("192.0.2.10", 50000)
B1, B2 = "http://127.0.0.1:9001", "http://127.0.0.1:9002"
ONE_BACKEND = {"web": {"backends": [{"url": B1}]}}
# Retries after a tiny backoff, so a retry test waits a few milliseconds at most.
RETRYING_POOL = {"web": {"backends": [{"url": B1}, {"url": B2}],
                         "retry": {"attempts": 2, "backoff_base": 0.001, "backoff_max": 0.001}}}

GET = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t/1\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nServer: b1\r\nContent-Length: 5\r\n\r\nhello"


def forwarding(request_id: bytes, host: bytes | None = b"example.test") -> bytes:
    """Fulcrum's forwarding headers and the end of the head, for a plain-HTTP client at CLIENT."""
    forwarded_host = b"X-Forwarded-Host: %s\r\n" % host if host else b""
    return forwarded_host + (b"X-Forwarded-For: 192.0.2.10\r\nX-Forwarded-Proto: http\r\n"
                             b"X-Request-ID: %s\r\n\r\n" % request_id)


def ok_to_client(request_id: bytes, body: bytes = b"hello", close: bool = False) -> bytes:
    """What the client gets for the backend's OK-shaped response."""
    return (b"HTTP/1.1 200 OK\r\nServer: b1\r\nContent-Length: %d\r\nX-Request-ID: %s\r\n%s\r\n%s"
            % (len(body), request_id, b"Connection: close\r\n" if close else b"", body))


def in_memory(test):
    """Run an async test on a fresh InMemoryLoop (no socket can be opened)."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        return run_in_memory(lambda: test(*args, **kwargs))
    return run


async def until(predicate, what: str, timeout: float = 1.0) -> None:
    """Let the loop run until ``predicate()``; fail after ``timeout`` seconds (a bound, not a measure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.001)


class Proxy:
    """A provisioned runtime and its listener in the running loop; clients and pooled backend
    connections are protocols on FakeTransports."""

    def __init__(self, config: dict) -> None:
        self.loop = asyncio.get_running_loop()
        self.runtime = provision(load_config_from_dict({"access_log": {"enabled": False}, **config}),
                                 "<test>", self.loop)
        self.server = ProxyServer(self.runtime, self.loop)
        self.pool = self.runtime.pools["web"]

    def backend(self, index: int = 0):
        return self.pool.backends[index]

    def connections(self, index: int = 0):
        return self.pool.connections[self.backend(index).id]

    def idle_upstream(self, index: int = 0) -> tuple[UpstreamConnection, FakeTransport]:
        """A keep-alive connection to backend ``index``, given back to its pool (idle)."""
        conns = self.connections(index)
        conn = UpstreamConnection(conns)
        transport = FakeTransport((self.backend(index).host, self.backend(index).port)).connect(conn)
        conns.give_back(conn)
        return conn, transport

    def client(self) -> tuple[ClientConnection, FakeTransport]:
        conn = ClientConnection(self.server)
        return conn, FakeTransport(CLIENT).connect(conn)

    def in_flight(self) -> tuple[int, ...]:
        return tuple(b.in_flight for b in self.pool.backends)


# -- a round trip, keep-alive and pipelining ------------------------------------------------------
@in_memory
async def test_get_round_trip_then_keep_alive_reuses_the_backend_connection():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()

    client.data_received(GET)
    exchange = client.current
    rid = exchange.request_id
    assert exchange.phase == SENT and proxy.in_flight() == (1,)
    assert backend_side.take() == (b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t/1\r\n"
                                   + forwarding(rid))
    upstream.data_received(OK)
    assert client_side.take() == ok_to_client(rid)
    assert exchange.phase == DONE and exchange.status == 200 and exchange.tries == 1
    assert proxy.in_flight() == (0,) and proxy.backend().requests == 1
    assert list(proxy.connections().idle) == [upstream]  # given back

    client.data_received(b"GET /two HTTP/1.1\r\nHost: example.test\r\n\r\n")
    second = client.current
    assert second is not exchange and second.request_id != rid
    assert backend_side.take() == b"GET /two HTTP/1.1\r\nHost: example.test\r\n" + forwarding(second.request_id)
    upstream.data_received(OK)
    assert client_side.take() == ok_to_client(second.request_id)
    assert upstream.served == 2 and list(proxy.connections().idle) == [upstream]
    assert proxy.loop.dialed == [] and not client_side.is_closing() and proxy.in_flight() == (0,)


@in_memory
async def test_a_client_request_id_is_kept_both_ways():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Request-ID: trace-42\r\n\r\n")
    assert backend_side.take() == b"GET / HTTP/1.1\r\nHost: example.test\r\n" + forwarding(b"trace-42")
    upstream.data_received(OK)
    assert client_side.take() == ok_to_client(b"trace-42")


@in_memory
async def test_pipelined_requests_are_answered_in_order_with_reading_paused_meanwhile():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()

    client.data_received(b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n"
                         b"GET /b HTTP/1.1\r\nHost: example.test\r\n\r\n")
    first, (second,) = client.current, client.queue
    assert (first.phase, second.phase) == (SENT, RECEIVED)
    assert client_side.events == ["pause_reading"] and not client_side.reading
    assert backend_side.take() == b"GET /a HTTP/1.1\r\nHost: example.test\r\n" + forwarding(first.request_id)

    upstream.data_received(b"HTTP/1.1 200 OK\r\nServer: b1\r\nContent-Length: 1\r\n\r\nA")
    assert first.phase == DONE and second.phase == SENT and client.current is second
    assert backend_side.take() == b"GET /b HTTP/1.1\r\nHost: example.test\r\n" + forwarding(second.request_id)
    assert client_side.events == ["pause_reading", "resume_reading"]  # nothing waits behind /b

    upstream.data_received(b"HTTP/1.1 200 OK\r\nServer: b1\r\nContent-Length: 1\r\n\r\nB")
    assert client_side.take() == ok_to_client(first.request_id, b"A") + ok_to_client(second.request_id, b"B")
    assert proxy.in_flight() == (0,) and upstream.served == 2


# -- request bodies ---------------------------------------------------------------------------------
POST_HEAD = b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\n"


@pytest.mark.parametrize("reads", [
    pytest.param([POST_HEAD + b"Content-Length: 11\r\n\r\nhello world"], id="one-read"),
    pytest.param([POST_HEAD + b"Content-Length: 11\r\n\r\nhel", b"lo wo", b"rld"], id="split-across-reads"),
    pytest.param([POST_HEAD + b"Content-Length: 11\r\n\r\n"] + [bytes([c]) for c in b"hello world"],
                 id="byte-by-byte"),
    pytest.param([POST_HEAD + b"Content-Length: 11\r\n", b"\r\nhello", b" world"], id="head-split"),
])
@in_memory
async def test_content_length_body_reaches_the_backend_byte_exact(reads):
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    for data in reads:
        client.data_received(data)
    exchange = client.current
    assert backend_side.data == (b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: 11\r\n" + forwarding(exchange.request_id) + b"hello world")
    assert exchange.request_done and exchange.body_bytes == 11
    upstream.data_received(OK)
    assert client_side.data == ok_to_client(exchange.request_id)
    assert list(proxy.connections().idle) == [upstream]


@pytest.mark.parametrize("reads, sent", [
    pytest.param([b"5\r\nhello\r\n", b"6\r\n world\r\n0\r\n\r\n"],
                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", id="whole-chunks"),
    pytest.param([b"5\r\nhel", b"lo\r\n0\r\n\r\n"],
                 b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", id="chunk-split-across-reads"),
    pytest.param([b"5;name=value\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"],
                 b"5\r\nhello\r\n0\r\n\r\n", id="extensions-and-trailers-dropped"),
    pytest.param([b"0\r\n\r\n"], b"0\r\n\r\n", id="empty"),
])
@in_memory
async def test_chunked_body_is_reframed_byte_exact(reads, sent):
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    for data in reads:
        client.data_received(data)
    exchange = client.current
    assert backend_side.data == (b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\n"
                                 b"Transfer-Encoding: chunked\r\n" + forwarding(exchange.request_id) + sent)
    upstream.data_received(OK)
    assert client_side.data == ok_to_client(exchange.request_id) and exchange.phase == DONE


@in_memory
async def test_body_read_while_connecting_is_held_and_follows_the_head():
    proxy = Proxy({"pools": ONE_BACKEND})  # no idle connection: the exchange dials one
    client, client_side = proxy.client()
    client.data_received(POST_HEAD + b"Content-Length: 11\r\n\r\nhel")
    exchange = client.current
    assert exchange.phase == CONNECTING and client_side.events == ["pause_reading"]
    assert proxy.in_flight() == (1,)

    await until(lambda: exchange.phase == SENT, "the connect to finish")
    (host, port, backend_side), = proxy.loop.dialed
    assert (host, port) == ("127.0.0.1", 9001)
    assert backend_side.writes == [POST_HEAD + b"Content-Length: 11\r\n" + forwarding(exchange.request_id)
                                   + b"hel"]  # one write: head and the held body
    assert client_side.events == ["pause_reading", "resume_reading"]
    client.data_received(b"lo world")
    assert backend_side.data.endswith(b"\r\n\r\nhello world")
    backend_side.protocol.data_received(OK)
    assert client_side.data == ok_to_client(exchange.request_id) and proxy.in_flight() == (0,)


# -- phases and the lease ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend_sent, phase", [
    pytest.param(None, SENT, id="before-the-response"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", RESPONDING, id="mid-response"),
])
@in_memory
async def test_client_leaving_aborts_the_exchange_and_its_backend_connection(backend_sent, phase):
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET)
    exchange = client.current
    if backend_sent is not None:
        upstream.data_received(backend_sent)
    assert exchange.phase == phase and proxy.in_flight() == (1,)

    client.connection_lost(None)
    assert exchange.phase == ABORTED and exchange.lease is None
    assert backend_side.aborted and proxy.in_flight() == (0,)
    await asyncio.sleep(0)  # the transport tells its protocol it is gone
    assert upstream.closed and not proxy.connections().idle


@in_memory
async def test_client_leaving_while_connecting_leaves_the_new_connection_idle():
    proxy = Proxy({"pools": ONE_BACKEND})
    client, _ = proxy.client()
    client.data_received(GET)
    exchange = client.current
    assert exchange.phase == CONNECTING
    client.connection_lost(None)
    assert exchange.phase == ABORTED and proxy.in_flight() == (0,)
    await until(lambda: proxy.connections().idle, "the connect to finish")
    (_, _, backend_side), = proxy.loop.dialed
    assert backend_side.data == b"" and list(proxy.connections().idle) == [backend_side.protocol]


@pytest.mark.parametrize("start, to", [
    pytest.param(DONE, SENT, id="done-to-sent"),
    pytest.param(DONE, DONE, id="done-twice"),
    pytest.param(ABORTED, DONE, id="aborted-to-done"),
    pytest.param(RESPONDING, CONNECTING, id="responding-to-connecting"),
    pytest.param(RESPONDING, RETRYING, id="responding-to-retrying"),
    pytest.param(TUNNEL, ABORTED, id="tunnel-to-aborted"),
    pytest.param(RECEIVED, RESPONDING, id="received-to-responding"),
])
@in_memory
async def test_an_invalid_transition_raises(start, to):
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, _ = proxy.idle_upstream()
    client, _ = proxy.client()
    client.data_received(GET)
    exchange = client.current
    upstream.data_received(OK)
    exchange.phase = start
    with pytest.raises(InvalidTransition, match=f"{exchange.request_id.decode()}: {PHASES[start]} -> {PHASES[to]}"):
        exchange._to(to)
    assert exchange.phase == start


@in_memory
async def test_retry_on_another_backend_keeps_in_flight_exact():
    proxy = Proxy({"pools": RETRYING_POOL})
    first, first_side = proxy.idle_upstream(0)
    second, second_side = proxy.idle_upstream(1)
    client, client_side = proxy.client()

    client.data_received(GET)
    exchange = client.current
    first_lease = exchange.lease
    assert first_lease.backend is proxy.backend(0) and proxy.in_flight() == (1, 0)
    head = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t/1\r\n" + forwarding(exchange.request_id)
    assert first_side.take() == head

    first.data_received(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    assert exchange.phase == RETRYING and exchange.lease is None and not first_lease.held
    assert proxy.in_flight() == (0, 0) and first_side.aborted  # the 503 went with its connection
    assert client_side.data == b"" and proxy.backend(0).failures == 1

    await until(lambda: exchange.phase != RETRYING, "the retry timer")
    second_lease = exchange.lease
    assert exchange.phase == SENT and second_lease.backend is proxy.backend(1)
    assert proxy.in_flight() == (0, 1) and second_side.take() == head  # the same request id
    second.data_received(OK)
    assert client_side.take() == ok_to_client(exchange.request_id)
    assert exchange.phase == DONE and exchange.tries == 2 and proxy.in_flight() == (0, 0)

    for lease in (first_lease, second_lease):  # ending a lease again changes nothing
        lease.release()
        lease.abandon(0.0)
    assert proxy.in_flight() == (0, 0)
    assert [b.requests for b in proxy.pool.backends] == [1, 1]
    assert list(proxy.connections(1).idle) == [second] and not proxy.connections(0).idle


@in_memory
async def test_client_leaving_while_retrying_cancels_the_next_try():
    proxy = Proxy({"pools": RETRYING_POOL})
    first, _ = proxy.idle_upstream(0)
    _, second_side = proxy.idle_upstream(1)
    client, _ = proxy.client()
    client.data_received(GET)
    exchange = client.current
    first.data_received(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    assert exchange.phase == RETRYING
    client.connection_lost(None)
    assert exchange.phase == ABORTED and exchange.attempts.timer is None
    await asyncio.sleep(0.01)  # well past the backoff: no second try
    assert second_side.data == b"" and exchange.tries == 1 and proxy.in_flight() == (0, 0)


# -- backpressure and half-close ----------------------------------------------------------------------
@in_memory
async def test_a_slow_client_pauses_the_backend_and_a_full_backend_pauses_the_client():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(POST_HEAD + b"Content-Length: 11\r\n\r\nhel")

    upstream.pause_writing()  # the backend's write buffer is full: stop reading the client
    assert client_side.events == ["pause_reading"]
    upstream.resume_writing()
    assert client_side.events == ["pause_reading", "resume_reading"]

    client.data_received(b"lo world")
    upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    client_side.buffer_size = 300_000
    client.pause_writing()  # the client reads slowly: stop reading the backend
    assert backend_side.events == ["pause_reading"] and client.send_buffered == 300_000
    client.resume_writing()
    assert backend_side.events == ["pause_reading", "resume_reading"]
    upstream.data_received(b"world")
    assert client_side.data.endswith(b"\r\n\r\nhelloworld") and proxy.in_flight() == (0,)


@in_memory
async def test_half_close_finishes_the_request_in_flight_then_closes():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, _ = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET)
    exchange = client.current
    assert client.eof_received() is True  # keep the transport: a response is owed
    upstream.data_received(OK)
    assert client_side.data == ok_to_client(exchange.request_id, close=True)
    assert client_side.closed and list(proxy.connections().idle) == [upstream]


@in_memory
async def test_half_close_when_idle_lets_asyncio_close():
    proxy = Proxy({"pools": ONE_BACKEND})
    client, client_side = proxy.client()
    assert client.eof_received() is False and client_side.data == b""


# -- what the backend sends wrong ---------------------------------------------------------------------------
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
BIG_HEAD = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000 + b"\r\nContent-Length: 5\r\n\r\nhello"


@pytest.mark.parametrize("reads, relayed", [
    pytest.param([b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"], 0, id="invalid-status-line"),
    pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"], 0,
                 id="two-content-lengths"),
    pytest.param([BIG_HEAD], 0, id="head-over-max_header_bytes"),
    pytest.param([BIG_HEAD[i:i + 100] for i in range(0, len(BIG_HEAD), 100)], 0,
                 id="head-over-max_header_bytes-trickled"),
    pytest.param([EARLY_HINTS * (MAX_INFORMATIONAL + 1) + OK], MAX_INFORMATIONAL, id="too-many-1xx"),
    pytest.param([b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"], 0,
                 id="101-nobody-asked-for"),
])
@in_memory
async def test_an_invalid_response_is_a_502_and_its_connection_is_not_reused(reads, relayed):
    proxy = Proxy({"pools": ONE_BACKEND, "limits": {"max_header_bytes": 1024}})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET)
    exchange = client.current
    for data in reads:
        upstream.data_received(data)
    data = client_side.take()
    assert data.startswith(EARLY_HINTS * relayed + b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"X-Request-ID: %s\r\n" % exchange.request_id in data and b"invalid response from backend" in data
    assert exchange.phase == DONE and exchange.status == 502 and proxy.in_flight() == (0,)
    assert backend_side.aborted and not proxy.connections().idle and proxy.backend().failures == 1

    client.data_received(GET)  # the next request needs a new connection
    second = client.current
    await until(lambda: second.phase == SENT, "a new connection")
    (_, _, fresh), = proxy.loop.dialed
    fresh.protocol.data_received(OK)
    assert client_side.take() == ok_to_client(second.request_id) and proxy.in_flight() == (0,)


# -- what the client sends wrong --------------------------------------------------------------------------
LONG_VALUE = b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Long: " + b"a" * 4000


@pytest.mark.parametrize("reads, status, reason", [
    pytest.param([LONG_VALUE], 431, b"request head larger than 1024 bytes", id="header-never-ends-one-read"),
    pytest.param([LONG_VALUE[i:i + 64] for i in range(0, len(LONG_VALUE), 64)], 431,
                 b"request head larger than 1024 bytes", id="header-never-ends-trickled"),
    pytest.param([b"GET /" + b"a" * 4000], 431, b"request head larger than 1024 bytes", id="line-never-ends"),
    pytest.param([b"GET / HTTP/1.1\r\nHost: example.test\r\n" + b"X-N: 1\r\n" * 20 + b"\r\n"], 431,
                 b"more than 20 request headers", id="too-many-header-lines"),
    pytest.param([b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"], 405,
                 b"CONNECT is not proxied", id="connect"),
])
@in_memory
async def test_a_bad_head_is_answered_and_the_connection_closes(reads, status, reason):
    proxy = Proxy({"pools": ONE_BACKEND, "limits": {"max_header_bytes": 1024, "max_header_count": 20}})
    _, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    fed = 0
    for data in reads:
        if client_side.data:
            break
        client.data_received(data)
        fed += len(data)
    response = client_side.data
    assert response.startswith(b"HTTP/1.1 %d " % status) and reason in response
    assert fed <= 1024 + max(len(r) for r in reads)  # answered within one read past the budget
    assert client_side.closed and backend_side.data == b"" and proxy.in_flight() == (0,)
    if status == 405:
        assert b"\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n" in response


@pytest.mark.parametrize("url, authority", [
    pytest.param("http://127.0.0.1:9001", b"127.0.0.1:9001", id="host-and-port"),
    pytest.param("http://127.0.0.1", b"127.0.0.1", id="port-80-left-out"),
    pytest.param("http://[::1]:9001", b"[::1]:9001", id="ipv6-bracketed"),
])
@in_memory
async def test_http10_without_host_gets_the_backend_authority(url, authority):
    proxy = Proxy({"pools": {"web": {"backends": [{"url": url}]}}})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(b"GET /legacy HTTP/1.0\r\nUser-Agent: old\r\n\r\n")
    exchange = client.current
    assert backend_side.take() == (b"GET /legacy HTTP/1.1\r\nHost: %s\r\nUser-Agent: old\r\n" % authority
                                   + forwarding(exchange.request_id, host=None))
    upstream.data_received(OK)
    assert client_side.data == ok_to_client(exchange.request_id, close=True) and client_side.closed


# -- on_upstream_request -------------------------------------------------------------------------------------
RETARGET = "tests.support.upstream_filters:Retarget"


@pytest.mark.parametrize("extra, method, target, headers", [
    pytest.param({}, b"GET", b"/v2/users?x=1",
                 b"Accept: */*\r\nX-Env: test\r\nX-Retargeted: /users?x=1\r\n", id="rewrites-then-filter"),
    pytest.param({"method": "POST"}, b"POST", b"/v2/users?x=1",
                 b"Accept: */*\r\nX-Env: test\r\nX-Retargeted: /users?x=1\r\n", id="method-changed"),
])
@in_memory
async def test_upstream_request_phase_shapes_the_head_and_the_log_keeps_the_client_request(
        extra, method, target, headers):
    route = {"path_prefix": "/api", "pool": "web", "strip_prefix": True,
             "request_headers": {"set": {"X-Env": "test"}, "remove": ["X-Debug"]},
             "filters": [{"use": RETARGET, "options": {"prefix": "/v2", **extra}}]}
    proxy = Proxy({"pools": ONE_BACKEND, "routes": [route]})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(b"GET /api/users?x=1 HTTP/1.1\r\nHost: example.test\r\nX-Debug: 1\r\nAccept: */*\r\n\r\n")
    exchange = client.current
    assert backend_side.take() == (b"%s %s HTTP/1.1\r\nHost: example.test\r\n%s" % (method, target, headers)
                                   + forwarding(exchange.request_id))
    upstream.data_received(OK)
    assert client_side.data == ok_to_client(exchange.request_id)
    assert (exchange.method, exchange.target, exchange.route) == (b"GET", b"/api/users?x=1", "web")


@in_memory
async def test_global_filters_hook_the_upstream_request_before_the_route_ones():
    proxy = Proxy({"pools": ONE_BACKEND,
                   "filters": [{"use": RETARGET, "options": {"prefix": "/global", "header": "X-Global"}}],
                   "routes": [{"path_prefix": "/", "pool": "web",
                               "filters": [{"use": RETARGET, "options": {"prefix": "/route"}}]}]})
    upstream, backend_side = proxy.idle_upstream()
    client, _ = proxy.client()
    client.data_received(b"GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n")
    exchange = client.current
    assert backend_side.take() == (b"GET /route/global/x HTTP/1.1\r\nHost: example.test\r\n"
                                   b"X-Global: /x\r\nX-Retargeted: /global/x\r\n" + forwarding(exchange.request_id))
    assert exchange.target == b"/x"


# -- the backend connection's end and reuse ---------------------------------------------------------
@pytest.mark.parametrize("method, response, to_client, reused", [
    pytest.param(b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-ID: %s\r\n\r\n", True, id="head-no-body"),
    pytest.param(b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-ID: %s\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                 True, id="chunked"),
    pytest.param(b"GET", b"HTTP/1.1 204 No Content\r\n\r\n",
                 b"HTTP/1.1 204 No Content\r\nX-Request-ID: %s\r\n\r\n", True, id="no-content"),
    pytest.param(b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
                 b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-ID: %s\r\n\r\nhello", False,
                 id="bytes-beyond-the-response"),
    pytest.param(b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                 b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-ID: %s\r\n\r\nhello", False,
                 id="backend-closes"),
])
@in_memory
async def test_a_response_reaches_the_client_and_its_connection_is_reused_only_when_clean(
        method, response, to_client, reused):
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(b"%s / HTTP/1.1\r\nHost: example.test\r\n\r\n" % method)
    exchange = client.current
    upstream.data_received(response)
    assert client_side.take() == to_client % exchange.request_id and exchange.phase == DONE
    assert list(proxy.connections().idle) == ([upstream] if reused else [])
    assert backend_side.is_closing() is not reused and proxy.in_flight() == (0,)
    if reused:  # the parser is ready for the next response
        client.data_received(GET)
        second = client.current
        upstream.data_received(OK)
        assert client_side.take() == ok_to_client(second.request_id) and upstream.served == 2


@in_memory
async def test_a_close_delimited_body_ends_at_the_backend_eof():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET)
    exchange = client.current
    upstream.data_received(b"HTTP/1.0 200 OK\r\n\r\nhel")
    upstream.data_received(b"lo")
    upstream.connection_lost(None)
    assert client_side.data == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-ID: %s\r\n\r\n"
                                b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n" % exchange.request_id)
    assert exchange.phase == DONE and not proxy.connections().idle and proxy.in_flight() == (0,)


@in_memory
async def test_a_backend_that_breaks_off_mid_body_cuts_the_client():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, _ = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET)
    exchange = client.current
    upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    upstream.connection_lost(ConnectionResetError(104, "reset"))
    assert client_side.data.endswith(b"\r\n\r\nhello") and client_side.closed  # 5 of 10 bytes, then a cut
    assert exchange.phase == DONE and proxy.in_flight() == (0,) and not proxy.connections().idle


@in_memory
async def test_a_reused_connection_closed_by_the_backend_is_retried_once_on_a_new_one():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET)
    upstream.data_received(OK)
    client_side.take()
    backend_side.take()
    client.data_received(GET)  # on the pooled connection, which the backend closed meanwhile
    exchange = client.current
    head = backend_side.take()
    upstream.connection_lost(None)
    assert exchange.phase == CONNECTING and proxy.in_flight() == (1,) and exchange.tries == 1
    await until(lambda: exchange.phase == SENT, "the new connection")
    (_, _, fresh), = proxy.loop.dialed
    assert fresh.data == head
    fresh.protocol.data_received(OK)
    assert client_side.take() == ok_to_client(exchange.request_id) and proxy.in_flight() == (0,)
    assert list(proxy.connections().idle) == [fresh.protocol]


@in_memory
async def test_a_silent_backend_is_a_504():
    proxy = Proxy({"pools": ONE_BACKEND, "timeouts": {"response": 0.01}})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET)
    exchange = client.current
    await until(lambda: exchange.phase == DONE, "timeouts.response")
    assert client_side.data.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n") and exchange.status == 504
    assert backend_side.aborted and not proxy.connections().idle and proxy.in_flight() == (0,)


@in_memory
async def test_a_body_is_replayed_byte_exact_on_the_retry():
    proxy = Proxy({"pools": RETRYING_POOL})
    first, first_side = proxy.idle_upstream(0)
    second, second_side = proxy.idle_upstream(1)
    client, client_side = proxy.client()
    client.data_received(b"PUT /doc HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    client.data_received(b"lo\r\n0\r\n\r\n")
    exchange = client.current
    head = b"PUT /doc HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n" + forwarding(exchange.request_id)
    assert first_side.data == head + b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
    first.data_received(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    await until(lambda: exchange.phase == SENT, "the retry")
    assert second_side.writes == [head + b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"]  # one write: head and replay
    second.data_received(OK)
    assert client_side.data == ok_to_client(exchange.request_id) and proxy.in_flight() == (0, 0)


# -- regressions found by these tests ------------------------------------------------------------
@in_memory
async def test_a_reset_inside_the_head_is_a_verdict_so_a_half_open_probe_slot_comes_back():
    import time
    proxy = Proxy({"pools": {"web": {"backends": [{"url": B1}],
                                     "circuit_breaker": {"enabled": True, "failure_threshold": 1,
                                                         "half_open_requests": 1}}}})
    backend = proxy.backend()
    backend.breaker.record_failure(time.monotonic())
    backend.breaker.probe_now(time.monotonic())  # OPEN -> HALF_OPEN: one probe may go
    proxy.pool.refresh(time.monotonic())
    upstream, _ = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert backend.breaker.probes_in_flight == 1
    upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Le")  # part of a head, then a reset
    upstream.connection_lost(ConnectionResetError(104, "reset"))
    assert client_side.take().startswith(b"HTTP/1.1 502 ")
    assert (backend.in_flight, backend.failures, backend.breaker.probes_in_flight) == (0, 1, 0)
    assert backend.breaker.state.name == "OPEN"  # the probe failed: open again, to be probed again


@in_memory
async def test_the_next_exchange_does_not_read_its_backend_while_the_client_is_not_reading():
    proxy = Proxy({"pools": ONE_BACKEND, "buffers": {"high_water": 1024, "low_water": 512}})
    upstream, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client_side.peer_reading = False
    client.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"a" * 2000)
    assert client_side.writing_paused and client.current.target == b"/b"
    assert upstream.read_paused  # /b's response waits until the client takes /a's
    client_side.drain()
    assert not upstream.read_paused


@in_memory
async def test_backpressure_of_a_failed_connection_does_not_outlive_it():
    proxy = Proxy({"pools": {"web": {"backends": [{"url": B1}, {"url": B2}],
                                     "retry": {"attempts": 2, "backoff_base": 0.001, "backoff_max": 0.001,
                                               "max_body": 1000000}}},
                   "buffers": {"high_water": 1024, "low_water": 512}})
    (first, first_side), _ = proxy.idle_upstream(0), proxy.idle_upstream(1)
    first_side.peer_reading = False  # backend A stops reading the upload
    client, _ = proxy.client()
    client.data_received(b"PUT /doc HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + b"x" * 2000)
    exchange = client.current
    assert client.gate.paused_by  # A's full buffer pauses the client
    first.connection_lost(ConnectionResetError(104, "reset"))
    await until(lambda: exchange.phase == SENT and exchange.backend is proxy.backend(1), "the retry on B")
    assert client.gate.paused_by == 0  # reading the rest of the body again, for B


@in_memory
async def test_waiting_for_a_backend_pauses_the_client_for_that_reason_and_keeps_the_pipeline_paused():
    # The phase CONNECTING and the read-pause reason CONNECTING are different numbers: pausing
    # with the phase's would clear the pipeline's pause when the backend connection is ready.
    from fulcrum.proxy import flow_control
    proxy = Proxy({"pools": ONE_BACKEND})
    client, _ = proxy.client()
    client.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    first = client.current
    assert first.phase == CONNECTING
    assert client.gate.paused_by == flow_control.PIPELINE | flow_control.CONNECTING
    await until(lambda: first.phase == SENT, "the backend connection")
    assert client.gate.paused_by == flow_control.PIPELINE  # /b still waits its turn
    client2, _ = proxy.client()
    client2.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
    assert client2.current.phase == CONNECTING
    assert client2.gate.paused_by == flow_control.CONNECTING  # the rest of the body waits for it


@in_memory
async def test_a_half_closed_client_gets_every_pipelined_answer_then_the_close():
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, _ = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert client.eof_received() is True  # keep our side open to answer
    upstream.data_received(OK)
    upstream.data_received(OK)
    answers = client_side.take()
    assert answers.count(b"HTTP/1.1 200 OK") == 2
    assert answers.rindex(b"Connection: close") > answers.rindex(b"HTTP/1.1 200 OK")  # on the last only
    assert client_side.closed


def _retargeting(method: str) -> dict:
    return {"pools": ONE_BACKEND, "routes": [{"path_prefix": "/", "pool": "web", "filters": [
        {"use": RETARGET, "options": {"prefix": "/p", "method": method}}]}]}


@pytest.mark.parametrize("sent, rewritten", [("HEAD", "GET"), ("GET", "HEAD")])
@in_memory
async def test_a_filter_cannot_make_a_request_become_or_stop_being_head(sent, rewritten):
    # The response's framing follows the client's method: a HEAD client must get no body, a
    # GET client the body its Content-Length promises. Found in review.
    proxy = Proxy(_retargeting(rewritten))
    _, backend_side = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(b"%s /x HTTP/1.1\r\nHost: a\r\n\r\n" % sent.encode())
    assert client_side.take().startswith(b"HTTP/1.1 500 ")
    assert backend_side.take() == b"" and proxy.in_flight() == (0,)


@in_memory
async def test_a_request_made_non_idempotent_is_not_resent_on_a_closed_keep_alive_connection():
    proxy = Proxy(_retargeting("POST"))
    upstream, backend_side = proxy.idle_upstream()
    upstream.served = 1  # served before: a reused connection
    client, client_side = proxy.client()
    client.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert backend_side.take().startswith(b"POST /p/x ")
    upstream.connection_lost(None)  # closed as it was reused, nothing received
    assert client_side.take().startswith(b"HTTP/1.1 502 ")
    assert not asyncio.get_running_loop().dialed  # the POST was not sent a second time


@in_memory
async def test_shutting_down_still_writes_a_queued_error_answer():
    # Found in review: the exchange before a queued 400 must not close the connection first.
    proxy = Proxy({"pools": ONE_BACKEND})
    upstream, _ = proxy.idle_upstream()
    client, client_side = proxy.client()
    client.data_received(GET + b"GET /x HTTP/1.1\r\n\r\n")  # the second has no Host: a 400, queued
    client.shutdown()
    upstream.data_received(OK)
    out = client_side.data
    assert out.startswith(b"HTTP/1.1 200 OK") and b"HTTP/1.1 400 " in out and client_side.closed
