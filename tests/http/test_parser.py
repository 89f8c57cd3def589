"""http/parser: the compiled core's llhttp binding (parser.pyx) against httptools, which the
pure-Python core runs. Both get the same bytes, cut the same way, and must call back the same
steps in the same order, answer the same getters, and raise the same exceptions (class,
message, the callback's exception behind a callback error, the offset of an upgrade)."""
from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.http import parser as in_use
from tests.support.cores import expected_core


class Recorder(in_use.ParserCallbacks):
    """Every callback, in order; raises in the callback named by ``fail`` (with its name)."""

    def __init__(self, fail: str = "") -> None:
        self.events: list = []
        self.fail = fail

    def _note(self, *event) -> None:
        self.events.append(event)
        if event[0] == self.fail:
            raise ValueError(f"refused in {self.fail}")

    def on_message_begin(self):
        self._note("begin")

    def on_url(self, url):
        self._note("url", url)

    def on_status(self, reason):
        self._note("status", reason)

    def on_header(self, name, value):
        self._note("header", name, value)

    def on_headers_complete(self):
        self._note("headers_complete")

    def on_body(self, body):
        self._note("body", body)

    def on_message_complete(self):
        self._note("complete")


def _run(module, kind: str, pieces: list[bytes], fail: str = "") -> list:
    """What a parser from ``module`` does with ``pieces``: its callbacks and, after each
    piece, what feeding raised and what the getters answer."""
    callbacks = Recorder(fail)
    p = module.HttpRequestParser(callbacks) if kind == "request" else module.HttpResponseParser(callbacks)
    trace: list = []
    for piece in pieces:
        try:
            p.feed_data(piece)
            outcome = None
        except httptools.HttpParserUpgrade as exc:
            outcome = ("upgrade", exc.args)
        except httptools.HttpParserError as exc:
            context = exc.__context__
            outcome = (type(exc).__name__, str(exc), type(context).__name__ if context else None,
                       str(context) if context else None)
        trace.append(("fed", outcome, list(callbacks.events)))
        callbacks.events.clear()
        getters = [p.get_http_version(), p.should_keep_alive(), p.should_upgrade()]
        if kind == "request":
            getters.append(p.get_method())
        else:
            getters.append(p.get_status_code())
        trace.append(("getters", getters))
    return trace


def _both(kind: str, pieces: list[bytes], fail: str = "") -> None:
    assert _run(in_use, kind, pieces, fail) == _run(httptools, kind, pieces, fail)


def test_the_run_uses_the_core_it_asked_for():
    compiled = not in_use.__file__.endswith(".py")
    assert compiled == (expected_core() == "compiled")
    assert (in_use.HttpRequestParser is httptools.HttpRequestParser) == (not compiled)


def test_a_compiled_parser_needs_its_callbacks():
    if expected_core() == "compiled":
        with pytest.raises(TypeError):
            in_use.HttpRequestParser(object())


REQUESTS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nrest-of-stream",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET /\r\n\r\n",
    b"BREW / HTTP/1.1\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: y\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nZ\r\n",
]

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: s\r\n\r\nhi",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX: y\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
    b"HTTP/1.1 999 Odd\r\n\r\n",
    b"HTTP/1.1 20 Short\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
]


@pytest.mark.parametrize("data", REQUESTS)
def test_requests_whole_and_byte_by_byte(data):
    _both("request", [data])
    _both("request", [data[i:i + 1] for i in range(len(data))])


@pytest.mark.parametrize("data", RESPONSES)
def test_responses_whole_and_byte_by_byte(data):
    _both("response", [data])
    _both("response", [data[i:i + 1] for i in range(len(data))])


@pytest.mark.parametrize("fail", ["begin", "url", "header", "headers_complete", "body", "complete"])
def test_what_a_callback_raises_ends_the_feed_the_same_way(fail):
    for data in REQUESTS[:5]:
        _both("request", [data], fail)
        _both("request", [data[:9], data[9:]], fail)


@pytest.mark.parametrize("fail", ["begin", "status", "header", "headers_complete", "body", "complete"])
def test_a_response_callback_that_raises(fail):
    for data in RESPONSES[:5]:
        _both("response", [data], fail)


def test_memoryview_and_bytearray_are_fed_as_bytes_are():
    data = REQUESTS[2]
    assert _run(in_use, "request", [memoryview(data)]) == _run(httptools, "request", [data])
    assert _run(in_use, "request", [bytearray(data)]) == _run(httptools, "request", [data])


_PIECES = st.sampled_from([
    b"GET", b"POST", b"HEAD", b" ", b"/", b"/x?y", b"http://h/", b" HTTP/1.1", b" HTTP/1.0", b"\r\n", b"\n",
    b"Host: h", b"Content-Length: 3", b"Content-Length: 0", b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip", b"Connection: close", b"Connection: keep-alive", b"Connection: Upgrade",
    b"Upgrade: websocket", b"X: \t y", b": v", b"N:", b"abc", b"3\r\nabc\r\n", b"0\r\n\r\n", b"\x00", b"\x7f",
    b"HTTP/1.1 200 OK", b"HTTP/1.1 101 S", b"HTTP/1.1 304 N", b" ", b"\r\n\r\n",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30), st.lists(st.integers(0, 200), max_size=6),
       st.sampled_from(["request", "response"]),
       st.sampled_from(["", "begin", "url", "status", "header", "headers_complete", "body", "complete"]),
       st.sampled_from([bytes, bytearray, memoryview]))
def test_any_bytes_cut_anywhere(parts, cuts, kind, fail, wrap):
    data = b"".join(parts)
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])] or [b""]
    assert (_run(in_use, kind, [wrap(piece) for piece in pieces], fail)
            == _run(httptools, kind, pieces, fail))


def test_a_callback_cannot_feed_its_own_parser():
    class Feeding(Recorder):
        def on_headers_complete(self):
            self.parser.feed_data(b"GET / HTTP/1.1\r\n\r\n")

    callbacks = Feeding()
    callbacks.parser = in_use.HttpRequestParser(callbacks)
    if expected_core() == "compiled":
        # (httptools lets llhttp run twice at once on one state, and goes on corrupted)
        with pytest.raises(httptools.HttpParserCallbackError) as caught:
            callbacks.parser.feed_data(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert isinstance(caught.value.__context__, RuntimeError)


def test_a_buffer_that_is_not_contiguous_is_refused_by_the_compiled_parser():
    strided = memoryview(b"GGEETT  //  HHTTTTPP//11..11\r\r\n\n\r\r\n\n")[::2]
    if expected_core() == "compiled":
        with pytest.raises(BufferError):
            in_use.HttpRequestParser(Recorder()).feed_data(strided)
    else:  # httptools reads the bytes under the view as they lie ("GGEETT"), not the view
        with pytest.raises(httptools.HttpParserInvalidMethodError):
            in_use.HttpRequestParser(Recorder()).feed_data(strided)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["request", "response"]))
def test_random_bytes(data, kind):
    _both(kind, [data])
