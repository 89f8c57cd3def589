# The compiled core's declarations for response_sink.py (fulcrum/core.py): the methods an
# upstream connection calls in C. Public attributes stay readable and writable from Python.
cdef class ResponseSink:
    cdef public object upgrade

    cpdef on_informational(self, int status, bytes reason, list headers)
    cpdef bint on_response_head(self, conn, int status, bytes reason, list headers) except -1
    cpdef on_response_body(self, bytes chunk)
    cpdef on_response_complete(self, conn)
    cpdef on_switching_protocols(self, conn, bytes reason, list headers)
    cpdef start_tunnel(self, conn, bytes rest)
    cpdef upstream_failed(self, conn, str reason, bint nothing_received)
    cpdef upstream_invalid(self, conn, str reason)
    cpdef upstream_timed_out(self, conn)
    cpdef upstream_write_paused(self)
    cpdef upstream_write_resumed(self)
    cpdef internal_error(self, exc, str where)
