# The compiled core's declarations for backend.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.balancing.ewma cimport PeakEwma
from fulcrum.resilience.circuit_breaker cimport CircuitBreaker

cdef class Backend:
    cdef public str id, url, host
    cdef public object port, last_error
    cdef public CircuitBreaker breaker
    cdef public Py_ssize_t weight
    cdef public Py_ssize_t in_flight, requests, failures
    cdef public bint available, enabled, healthy, ejected
    cdef public double ramp
    cdef public PeakEwma latency
