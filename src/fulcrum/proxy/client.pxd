# The compiled core's declarations for client.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.http.parser cimport HttpRequestParser
from fulcrum.proxy.clock cimport monotonic
from fulcrum.proxy.downstream cimport Downstream
cimport cython
from fulcrum.proxy.exchange cimport Exchange, new_exchange
from fulcrum.proxy.settings cimport ProxySettings

cdef class ClientConnection(Downstream):
    cdef public ProxySettings settings
    cdef public HttpRequestParser parser
    cdef public object server, current, queue, timer, tunnel, trusted_by, body_left
    cdef public Exchange receiving
    cdef public bytes url, early
    cdef public list headers
    cdef public Py_ssize_t header_bytes, budget, head_limit, body_seen, body_pauses, send_buffered
    cdef public bint in_head, closed, advancing, counted, upgrading, peer_trusted
    cdef public int wait
    cdef public double deadline, last_body, body_start, handshake_until

    @cython.locals(upgraded_at=Py_ssize_t, budget=Py_ssize_t)
    cpdef data_received(self, bytes data)
    cpdef on_message_begin(self)
    cpdef on_url(self, bytes url)
    cpdef on_header(self, bytes name, bytes value)
    @cython.locals(exchange=Exchange, parser=HttpRequestParser)
    cpdef on_headers_complete(self)
    cpdef on_body(self, bytes body)
    cpdef on_message_complete(self)
    cpdef exchange_done(self, exchange)
    cpdef abort_response(self)
    cpdef _wait(self, int what, double timeout)
    cpdef bint trusts_peer(self, trusted) except -1
