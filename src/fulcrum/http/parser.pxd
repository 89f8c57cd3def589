# The compiled core's declarations for parser.py, implemented by parser.pyx over the vendored
# llhttp (vendor/llhttp): the core cimports these and calls them in C.
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint64_t


cdef extern from "llhttp.h":
    ctypedef struct llhttp_t:
        int32_t error
        void *data
        uint8_t method
        uint8_t http_major
        uint8_t http_minor
        uint8_t upgrade
        uint16_t status_code

    ctypedef int (*llhttp_data_cb)(llhttp_t *, const char *at, size_t length) noexcept
    ctypedef int (*llhttp_cb)(llhttp_t *) noexcept

    ctypedef struct llhttp_settings_t:
        llhttp_cb on_message_begin
        llhttp_data_cb on_url
        llhttp_data_cb on_status
        llhttp_data_cb on_header_field
        llhttp_data_cb on_header_value
        llhttp_cb on_headers_complete
        llhttp_data_cb on_body
        llhttp_cb on_message_complete
        llhttp_cb on_chunk_header
        llhttp_cb on_chunk_complete


cdef class ParserCallbacks:
    cpdef on_message_begin(self)
    cpdef on_url(self, bytes url)
    cpdef on_status(self, bytes reason)
    cpdef on_header(self, bytes name, bytes value)
    cpdef on_headers_complete(self)
    cpdef on_body(self, bytes body)
    cpdef on_message_complete(self)


cdef class HttpParser:
    cdef llhttp_t _parser
    cdef llhttp_settings_t _settings
    cdef ParserCallbacks _callbacks
    cdef bytes _name, _value
    cdef object _error
    cdef bint _feeding

    cdef _init(self, ParserCallbacks callbacks, int kind)
    cdef _flush_header(self)
    cpdef feed_data(self, data)
    cpdef str get_http_version(self)
    cpdef bint should_keep_alive(self) except -1
    cpdef bint should_upgrade(self) except -1


cdef class HttpRequestParser(HttpParser):
    cpdef bytes get_method(self)


cdef class HttpResponseParser(HttpParser):
    cpdef int get_status_code(self) except -1
