# The compiled core's declarations for circuit_breaker.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.resilience.window cimport RollingCounts

cdef class CircuitBreaker:
    cdef public Py_ssize_t failure_threshold, min_requests, half_open_requests, probes_in_flight
    cdef public Py_ssize_t episode, consecutive_failures, opened_total
    cdef public double failure_ratio, reset_timeout
    cdef public object on_change, state, retry_at, last_transition_at, last_reason
    cdef public RollingCounts counts

    cpdef bint allow(self, double now) except -1
    cpdef record_success(self, double now)
    cpdef record_failure(self, double now)
    cpdef release(self, double now, episode=*)
