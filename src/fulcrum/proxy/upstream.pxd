# The compiled core's declarations for upstream.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.http.parser cimport HttpResponseParser, ParserCallbacks
from fulcrum.proxy.clock cimport monotonic
from fulcrum.proxy.response_sink cimport ResponseSink

cdef class UpstreamConnection(ParserCallbacks):
    cdef public ResponseSink exchange
    cdef public object pool, loop, transport, deadline, timer, body_left
    cdef public HttpResponseParser parser
    cdef public list headers
    cdef public bytes reason
    cdef public bint in_head, informational, complete, reusable, expect_eof, skip_body, closed
    cdef public bint read_paused, received, upgraded, head_done
    cdef public Py_ssize_t served, budget, head_limit, informational_count, trailer_bytes
    cdef public double idle_since, last_read, _timer_at, armed_at

    cpdef attach(self, exchange, bint skip_body)
    cpdef arm_response_timer(self, double timeout)
    @cython.locals(budget=Py_ssize_t)
    cpdef data_received(self, bytes data)
    cpdef _pass_body(self, ResponseSink exchange, bytes data)
    cpdef _completed(self, ResponseSink exchange)
    cpdef on_message_begin(self)
    cpdef on_status(self, bytes reason)
    @cython.locals(headers=list)
    cpdef on_header(self, bytes name, bytes value)
    cpdef on_headers_complete(self)
    cpdef on_body(self, bytes body)
    cpdef on_message_complete(self)
