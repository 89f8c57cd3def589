# cython: language_level=3
"""The compiled core's twin of parser.py (read that file for the API): llhttp, vendored in
vendor/llhttp, driven from Cython. It behaves as httptools does, step for step: the same
callbacks in the same order (a header field is passed on when the next one starts or the head
ends, as httptools does), the same exceptions with the same messages. What differs is the cost:
the callbacks are C calls into a ``ParserCallbacks`` subclass, the method names are made once,
and the version of the common cases is a constant."""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t
from libc.string cimport memset

from httptools import (
    HttpParserCallbackError, HttpParserError, HttpParserInvalidMethodError, HttpParserInvalidStatusError,
    HttpParserInvalidURLError, HttpParserUpgrade,
)


cdef extern from "llhttp.h":
    ctypedef enum llhttp_type_t:
        HTTP_REQUEST
        HTTP_RESPONSE

    ctypedef enum llhttp_errno_t:
        HPE_OK
        HPE_INVALID_METHOD
        HPE_INVALID_URL
        HPE_INVALID_STATUS
        HPE_CB_MESSAGE_BEGIN
        HPE_CB_HEADERS_COMPLETE
        HPE_CB_MESSAGE_COMPLETE
        HPE_CB_CHUNK_HEADER
        HPE_CB_CHUNK_COMPLETE
        HPE_PAUSED_UPGRADE
        HPE_USER

    ctypedef int llhttp_method_t

    void llhttp_settings_init(llhttp_settings_t *settings)
    void llhttp_init(llhttp_t *parser, llhttp_type_t kind, const llhttp_settings_t *settings)
    llhttp_errno_t llhttp_execute(llhttp_t *parser, const char *data, size_t length)
    int llhttp_should_keep_alive(const llhttp_t *parser)
    void llhttp_resume_after_upgrade(llhttp_t *parser)
    const char *llhttp_get_error_reason(const llhttp_t *parser)
    void llhttp_set_error_reason(llhttp_t *parser, const char *reason)
    const char *llhttp_get_error_pos(const llhttp_t *parser)
    const char *llhttp_method_name(llhttp_method_t method)


__all__ = (
    "HttpParserCallbackError", "HttpParserError", "HttpParserInvalidMethodError", "HttpParserInvalidStatusError",
    "HttpParserInvalidURLError", "HttpParserUpgrade", "HttpRequestParser", "HttpResponseParser",
    "ParserCallbacks",
)

# llhttp's name of each method code, made the first time it is asked for (httptools makes the
# bytes on every call). Only codes llhttp has set are asked for: it aborts on any other.
cdef list _METHODS = [None] * 256


cdef class ParserCallbacks:
    """See parser.py."""

    cpdef on_message_begin(self):
        pass

    cpdef on_url(self, bytes url):
        pass

    cpdef on_status(self, bytes reason):
        pass

    cpdef on_header(self, bytes name, bytes value):
        pass

    cpdef on_headers_complete(self):
        pass

    cpdef on_body(self, bytes body):
        pass

    cpdef on_message_complete(self):
        pass


cdef class HttpParser:
    """What the request and the response parser share (httptools' HttpParser)."""

    def __cinit__(self):
        memset(&self._parser, 0, sizeof(llhttp_t))
        memset(&self._settings, 0, sizeof(llhttp_settings_t))

    cdef _init(self, ParserCallbacks callbacks, int kind):
        if callbacks is None:
            raise TypeError("a parser needs its ParserCallbacks")
        llhttp_settings_init(&self._settings)
        self._settings.on_message_begin = _on_message_begin
        self._settings.on_header_field = _on_header_field
        self._settings.on_header_value = _on_header_value
        self._settings.on_headers_complete = _on_headers_complete
        self._settings.on_body = _on_body
        self._settings.on_message_complete = _on_message_complete
        self._settings.on_chunk_header = _on_chunk_header
        self._settings.on_chunk_complete = _on_chunk_complete
        if kind == HTTP_REQUEST:
            self._settings.on_url = _on_url
        else:
            self._settings.on_status = _on_status
        llhttp_init(&self._parser, <llhttp_type_t>kind, &self._settings)
        self._parser.data = <void *>self
        self._callbacks = callbacks
        self._name = self._value = None
        self._error = None

    cdef _flush_header(self):
        """Pass on the header field read so far, if its value has begun (httptools'
        _maybe_call_on_header)."""
        cdef bytes name, value
        if self._value is not None:
            name, value = self._name, self._value
            self._name = self._value = None
            self._callbacks.on_header(name, value)

    cpdef feed_data(self, data):
        cdef Py_buffer view
        cdef const char *start
        cdef size_t length
        cdef llhttp_errno_t error
        cdef bint viewed = False
        # A reference of our own while llhttp runs: a callback may drop the caller's last one
        # (the client connection sets its parser to None when it rejects or aborts), and the
        # compiled core calls this method on a borrowed attribute.
        cdef HttpParser alive = self
        cdef object held = data
        if self._feeding:
            # llhttp would run twice at once on one state (a callback feeding its own parser).
            raise RuntimeError("feed_data called from one of this parser's own callbacks")
        if type(data) is bytes:
            start = PyBytes_AS_STRING(data)
            length = <size_t>PyBytes_GET_SIZE(data)
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            viewed = True
            start = <const char *>view.buf
            length = <size_t>view.len
        self._feeding = True
        try:
            error = llhttp_execute(&self._parser, start, length)
            if self._parser.upgrade == 1 and error == HPE_PAUSED_UPGRADE:
                # As httptools: report where the upgrade's head ended, and leave the parser
                # out of its paused state (nothing after an upgrade is parsed again as HTTP/1).
                offset = llhttp_get_error_pos(&self._parser) - start
                llhttp_resume_after_upgrade(&self._parser)
                raise HttpParserUpgrade(offset)
        finally:
            self._feeding = False
            if viewed:
                PyBuffer_Release(&view)
        if error != HPE_OK:
            exc = _error_for(&self._parser, error)
            if isinstance(exc, HttpParserCallbackError) and self._error is not None:
                exc.__context__ = self._error
                self._error = None
            raise exc

    cpdef str get_http_version(self):
        cdef int major = self._parser.http_major, minor = self._parser.http_minor
        if major == 1:
            if minor == 1:
                return "1.1"
            if minor == 0:
                return "1.0"
        return f"{major}.{minor}"

    cpdef bint should_keep_alive(self) except -1:
        return llhttp_should_keep_alive(&self._parser) != 0

    cpdef bint should_upgrade(self) except -1:
        return self._parser.upgrade != 0


cdef class HttpRequestParser(HttpParser):

    def __init__(self, ParserCallbacks callbacks):
        self._init(callbacks, HTTP_REQUEST)

    cpdef bytes get_method(self):
        cdef uint8_t code = self._parser.method
        name = _METHODS[code]
        if name is None:
            name = _METHODS[code] = <bytes>llhttp_method_name(<llhttp_method_t>code)
        return <bytes>name


cdef class HttpResponseParser(HttpParser):

    def __init__(self, ParserCallbacks callbacks):
        self._init(callbacks, HTTP_RESPONSE)

    cpdef int get_status_code(self) except -1:
        return self._parser.status_code


cdef object _error_for(llhttp_t *parser, llhttp_errno_t error):
    """The exception httptools raises for ``error`` (its parser_error_from_errno)."""
    cdef const char *reason = llhttp_get_error_reason(parser)
    message = (<bytes>reason).decode("latin-1") if reason is not NULL else ""
    if error in (HPE_CB_MESSAGE_BEGIN, HPE_CB_HEADERS_COMPLETE, HPE_CB_MESSAGE_COMPLETE,
                 HPE_CB_CHUNK_HEADER, HPE_CB_CHUNK_COMPLETE, HPE_USER):
        return HttpParserCallbackError(message)
    if error == HPE_INVALID_STATUS:
        return HttpParserInvalidStatusError(message)
    if error == HPE_INVALID_METHOD:
        return HttpParserInvalidMethodError(message)
    if error == HPE_INVALID_URL:
        return HttpParserInvalidURLError(message)
    return HttpParserError(message)


# -- llhttp's callbacks: each calls the parser's ParserCallbacks, and turns what it raises into
# -- an llhttp error, keeping the exception for feed_data (as httptools' cb_* functions do).

cdef int _keep(HttpParser self, object exc, llhttp_t *parser, const char *reason) noexcept:
    """Keep what a callback raised for feed_data (the context of its HttpParserCallbackError)
    and stop llhttp: a data callback names itself in ``reason`` and returns HPE_USER; the
    others return -1, and llhttp names them."""
    self._error = exc
    if reason is NULL:
        return -1
    llhttp_set_error_reason(parser, reason)
    return HPE_USER


cdef int _on_message_begin(llhttp_t *parser) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        self._callbacks.on_message_begin()
    except BaseException as exc:
        return _keep(self, exc, parser, NULL)
    return 0


cdef int _on_url(llhttp_t *parser, const char *at, size_t length) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        self._callbacks.on_url(PyBytes_FromStringAndSize(at, <Py_ssize_t>length))
    except BaseException as exc:
        return _keep(self, exc, parser, "`on_url` callback error")
    return 0


cdef int _on_status(llhttp_t *parser, const char *at, size_t length) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        self._callbacks.on_status(PyBytes_FromStringAndSize(at, <Py_ssize_t>length))
    except BaseException as exc:
        return _keep(self, exc, parser, "`on_status` callback error")
    return 0


cdef int _on_header_field(llhttp_t *parser, const char *at, size_t length) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    cdef bytes piece
    try:
        self._flush_header()
        piece = PyBytes_FromStringAndSize(at, <Py_ssize_t>length)
        self._name = piece if self._name is None else self._name + piece
    except BaseException as exc:
        return _keep(self, exc, parser, "`on_header_field` callback error")
    return 0


cdef int _on_header_value(llhttp_t *parser, const char *at, size_t length) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    cdef bytes piece
    try:
        piece = PyBytes_FromStringAndSize(at, <Py_ssize_t>length)
        self._value = piece if self._value is None else self._value + piece
    except BaseException as exc:
        return _keep(self, exc, parser, "`on_header_value` callback error")
    return 0


cdef int _on_headers_complete(llhttp_t *parser) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        self._flush_header()
        self._callbacks.on_headers_complete()
    except BaseException as exc:
        return _keep(self, exc, parser, NULL)
    return 1 if self._parser.upgrade else 0


cdef int _on_body(llhttp_t *parser, const char *at, size_t length) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        self._callbacks.on_body(PyBytes_FromStringAndSize(at, <Py_ssize_t>length))
    except BaseException as exc:
        return _keep(self, exc, parser, "`on_body` callback error")
    return 0


cdef int _on_message_complete(llhttp_t *parser) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        self._callbacks.on_message_complete()
    except BaseException as exc:
        return _keep(self, exc, parser, NULL)
    return 0


cdef int _on_chunk_header(llhttp_t *parser) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        if self._value is not None or self._name is not None:
            raise HttpParserError("invalid headers state")
    except BaseException as exc:
        return _keep(self, exc, parser, NULL)
    return 0


cdef int _on_chunk_complete(llhttp_t *parser) noexcept:
    cdef HttpParser self = <HttpParser>parser.data
    try:
        self._flush_header()
    except BaseException as exc:
        return _keep(self, exc, parser, NULL)
    return 0
