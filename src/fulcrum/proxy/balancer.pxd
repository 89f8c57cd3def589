# The compiled core's declarations for balancer.py (fulcrum/core.py): attribute types, and the
# methods an exchange calls in C. Public attributes stay readable and writable from Python.
from fulcrum.balancing.backend cimport Backend

cdef class Balancer:
    cdef public str name
    cdef public dict connections
    cdef public object outliers, retry, budget, rng
    cdef public bint tries_header, timed_tries

    cpdef lease(self, request, tuple exclude=*)
    cpdef record(self, Backend backend, bint ok, double now)
