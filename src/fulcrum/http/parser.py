"""The HTTP/1.1 parser the core reads requests and responses with: llhttp.

A connection hands the parser a ``ParserCallbacks`` object and feeds it bytes; the parser calls
it back for each step of a message. The API is httptools': ``HttpRequestParser(callbacks)``,
``HttpResponseParser(callbacks)``, ``feed_data``, ``get_method``, ``get_http_version``,
``should_keep_alive``, ``should_upgrade``, ``get_status_code``, and httptools' exceptions.

This file is the pure-Python core's parser, and it is httptools itself. The compiled core runs
``parser.pyx`` instead: the same llhttp (vendor/llhttp, the release httptools builds from)
driven from Cython, which calls a ``ParserCallbacks`` subclass's methods in C and answers the
getters without building objects. tests/http/test_parser.py feeds both the same bytes.
"""
from __future__ import annotations

from httptools import (
    HttpParserCallbackError, HttpParserError, HttpParserInvalidMethodError, HttpParserInvalidStatusError,
    HttpParserInvalidURLError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser,
)

__all__ = (
    "HttpParserCallbackError", "HttpParserError", "HttpParserInvalidMethodError", "HttpParserInvalidStatusError",
    "HttpParserInvalidURLError", "HttpParserUpgrade", "HttpRequestParser", "HttpResponseParser",
    "ParserCallbacks",
)


class ParserCallbacks:
    """What a parser calls, in the order of a message: ``on_message_begin``, ``on_url`` (a
    request) or ``on_status`` (a response; the reason phrase), ``on_header`` once per field
    (trailers too), ``on_headers_complete``, ``on_body`` per piece, ``on_message_complete``.
    A value may come in pieces (``on_url``, ``on_status``, ``on_body``); a header field never
    does. What a callback raises ends the feed: ``HttpParserCallbackError`` with the callback's
    exception as its ``__context__``. Each does nothing here; a connection overrides them."""

    __slots__ = ()

    def on_message_begin(self) -> None:
        pass

    def on_url(self, url: bytes) -> None:
        pass

    def on_status(self, reason: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        pass

    def on_headers_complete(self) -> None:
        pass

    def on_body(self, body: bytes) -> None:
        pass

    def on_message_complete(self) -> None:
        pass
