# The compiled core's declarations for random_choice.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy

cdef class RandomChoice(Strategy):
    @cython.locals(backends=list, total=Py_ssize_t, b=Backend, last=Backend, r=double)
    cpdef pick(self, request)
