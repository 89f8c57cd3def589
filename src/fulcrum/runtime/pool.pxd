# The compiled core's declarations for pool.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy
from fulcrum.balancing.lease cimport Lease
from fulcrum.runtime.membership cimport Membership

cdef class Pool(Membership):
    cdef public str name
    cdef public list backends
    cdef public Strategy strategy
    cdef public dict connections
    cdef public object outliers, retry, budget, _checker, clock, rng, builders
    cdef public Py_ssize_t max_in_flight
    cdef public double panic_threshold, slow_start
    cdef public bint tries_header, panicking, timed_tries

    @cython.locals(backend=Backend)
    cpdef lease(self, request, tuple exclude=*)
    @cython.locals(backend=Backend)
    cpdef pick(self, request, tuple exclude=*)
    cpdef record(self, Backend backend, bint ok, double now)
