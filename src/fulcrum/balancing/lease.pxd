# The compiled core's declarations for lease.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.balancing.backend cimport Backend

cdef class Lease:
    cdef public Backend backend
    cdef public bint held, judged
    cdef public object episode

    cpdef release(self)
    cpdef abandon(self, double now)

cpdef Lease take(Backend backend)
cpdef _hold(Lease lease, Backend backend)
