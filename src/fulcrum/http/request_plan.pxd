# The compiled core's declarations for request_plan.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.http.headers cimport without_named
from fulcrum.http.wire cimport header_line, join, plain_connection, request_kind

cdef dict REQUEST_HEADERS
cdef int PASSED, _SLASH

cdef class RequestPlan:
    cdef public bytes target, host, framing, request_id
    cdef public list fields
    cdef public object peer_fields, upgrade, forwarded_for
    cdef public bint has_body, chunked
    cdef public object content_length

@cython.locals(plan=RequestPlan, fields=list, kind=int)
cpdef RequestPlan plan_request(bytes method, bytes target, list headers, bint http11, bint upgrade,
                               max_body_size, bytes known_host=*)
@cython.locals(parts=list, forwarded_for=list)
cpdef bytes upstream_head(bytes method, bytes target, bytes host, list fields, RequestPlan plan,
                          bytes client_ip, bint https, bytes request_id, bint peer_fields=*)
