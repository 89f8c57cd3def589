# The compiled core's declarations for round_robin.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy

cdef class RoundRobin(Strategy):
    cdef public Py_ssize_t _next

    @cython.locals(backends=list, n=Py_ssize_t, i=Py_ssize_t, b=Backend)
    cpdef pick(self, request)
