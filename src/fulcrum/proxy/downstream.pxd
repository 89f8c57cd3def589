# The compiled core's declarations for downstream.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.http.parser cimport ParserCallbacks
from fulcrum.observability.metrics cimport RequestMetrics
from fulcrum.proxy.flow_control cimport ReadGate
from fulcrum.proxy.request_ids cimport RequestIds

cdef class Downstream(ParserCallbacks):
    cdef public object transport, loop, client_ip
    cdef public RequestMetrics request_metrics
    cdef public RequestIds request_ids
    cdef public ReadGate gate
    cdef public bint tls
    cdef public bytes client_ip_bytes, valid_host
    cdef public double send_since

    cpdef bint trusts_peer(self, trusted) except -1
    cpdef exchange_done(self, exchange)
    cpdef abort_response(self)
