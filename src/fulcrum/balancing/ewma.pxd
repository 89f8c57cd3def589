# The compiled core's declarations for ewma.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython

cdef double _E

cdef class PeakEwma:
    cdef public double tau, default_rtt, value
    cdef public object stamp
    cdef public bint observed

    @cython.locals(elapsed=double, last=double, w=double)
    cpdef observe(self, double rtt, double now)
    @cython.locals(elapsed=double, last=double, w=double)
    cpdef double cost(self, double now) except? -1.0
