# The compiled core's declarations for weighted_round_robin.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy

cdef class WeightedRoundRobin(Strategy):
    cdef public list _current

    @cython.locals(current=list, total=Py_ssize_t, best=Py_ssize_t, best_cw=Py_ssize_t, i=Py_ssize_t,
                   b=Backend, w=Py_ssize_t, cw=Py_ssize_t)
    cpdef pick(self, request)
