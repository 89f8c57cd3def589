# The compiled core's declarations for least_connections.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy

cdef class LeastConnections(Strategy):
    cdef public list _current

    @cython.locals(backends=list, best=Backend, best_load=Py_ssize_t, best_w=Py_ssize_t, tied=Py_ssize_t,
                   b=Backend, w=Py_ssize_t, load=Py_ssize_t, current=list, total=Py_ssize_t,
                   win=Py_ssize_t, win_cw=Py_ssize_t, i=Py_ssize_t, cw=Py_ssize_t)
    cpdef pick(self, request)
