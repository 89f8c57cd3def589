# The compiled core's declarations for exchange.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.lease cimport Lease
from fulcrum.filters.chain cimport Chain
from fulcrum.http.headers cimport field_lines, host_without_port, without_named
from fulcrum.http.request_plan cimport RequestPlan, plan_request, upstream_head
from fulcrum.http.response_plan cimport plan_response
from fulcrum.http.wire cimport join, plain_connection, response_kind
from fulcrum.observability.metrics cimport RequestMetrics
from fulcrum.proxy.balancer cimport Balancer
from fulcrum.proxy.clock cimport monotonic
from fulcrum.proxy.downstream cimport Downstream
from fulcrum.proxy.frontend cimport Destination, Frontend
from fulcrum.proxy.pool cimport ConnectionPool
from fulcrum.proxy.response_sink cimport ResponseSink
from fulcrum.proxy.upstream cimport UpstreamConnection

cdef dict RESPONSE_HEADERS
cdef tuple _NEXT, _STATUS_CODES
cdef unsigned long long _ALLOWED
cdef int PASSED

cdef class Exchange(ResponseSink):
    cdef public Downstream client
    cdef public Frontend runtime
    cdef public object attempts, route, limit, _ctx
    cdef public Balancer pool
    cdef public Lease lease
    cdef public Backend backend
    cdef public UpstreamConnection conn
    cdef public Chain chain
    cdef public object content_length
    cdef public bytes method, target, host, upstream_head, head_method, request_id
    cdef public list headers, pending_body, head_pending
    cdef public bint http11, keep_alive, has_body, chunked, request_done, response_started
    cdef public object client_ip
    cdef public RequestPlan plan
    cdef public int phase, framing, status, tries
    cdef public long long body_bytes, bytes_out
    cdef public double sent_at, received_at, upstream_time, duration

    cpdef prepare(self, Downstream client, Frontend runtime, bytes method, bytes target, list headers,
                  bint http11, bint keep_alive, bint upgrade)
    cpdef _to(self, int phase)
    @cython.locals(destination=Destination)
    cpdef start(self)
    @cython.locals(connections=ConnectionPool, lease=Lease, backend=Backend)
    cpdef try_backend(self)
    cpdef connect(self)
    cpdef forward(self, UpstreamConnection conn)
    cpdef on_request_body(self, bytes chunk)
    cpdef on_request_complete(self)
    cpdef on_informational(self, int status, bytes reason, list headers)
    @cython.locals(out=list, kind=int, i=Py_ssize_t, name=bytes, value=bytes)
    cpdef bint on_response_head(self, conn, int status, bytes reason, list headers) except -1
    @cython.locals(parts=list)
    cpdef on_response_body(self, bytes chunk)
    @cython.locals(connections=ConnectionPool, parts=list)
    cpdef on_response_complete(self, conn)
    cpdef on_switching_protocols(self, conn, bytes reason, list headers)
    cpdef start_tunnel(self, conn, bytes rest)
    cpdef upstream_failed(self, conn, str reason, bint nothing_received)
    cpdef upstream_invalid(self, conn, str reason)
    cpdef upstream_timed_out(self, conn)
    cpdef upstream_write_paused(self)
    cpdef upstream_write_resumed(self)
    cpdef internal_error(self, exc, str where)
    cpdef finish(self)
    cpdef _log(self)

@cython.locals(exchange=Exchange)
cpdef Exchange new_exchange(Downstream client, Frontend runtime, bytes method, bytes target, list headers,
                            bint http11, bint keep_alive, bint upgrade)
cpdef run_log_phase(exchange, Chain chain, RequestMetrics metrics)
cpdef run_log_hooks(exchange, Chain chain)
