# The compiled core's declarations for power_of_two.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy

@cython.locals(n=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, m=Py_ssize_t, a=Backend, b=Backend)
cpdef tuple two_choices(list backends, random)

cdef class PowerOfTwo(Strategy):
    @cython.locals(a=Backend, b=Backend)
    cpdef pick(self, request)
