# The compiled core's declarations for peak_ewma.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython
from fulcrum.balancing.backend cimport Backend
from fulcrum.balancing.base cimport Strategy
from fulcrum.balancing.ewma cimport PeakEwma

cdef class PeakEwmaP2C(Strategy):
    @cython.locals(a=Backend, b=Backend, now=double, cost_a=double, cost_b=double)
    cpdef pick(self, request)

@cython.locals(latency=PeakEwma)
cpdef double _load(Backend backend, double now) except? -1.0
