# The compiled core's declarations for pool.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy
from fulcrum.balancing.lease cimport Lease, take
from fulcrum.resilience.circuit_breaker cimport CircuitBreaker
from fulcrum.runtime.membership cimport Membership

cdef class Pool(Membership):
    cdef public list backends
    cdef public Strategy strategy
    cdef public object _checker, clock, builders
    cdef public Py_ssize_t max_in_flight
    cdef public double panic_threshold, slow_start
    cdef public bint panicking

    @cython.locals(backend=Backend)
    cpdef lease(self, request, tuple exclude=*)
    @cython.locals(backend=Backend)
    cpdef pick(self, request, tuple exclude=*)
    @cython.locals(breaker=CircuitBreaker)
    cpdef record(self, Backend backend, bint ok, double now)
