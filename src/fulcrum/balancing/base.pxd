# The compiled core's declarations for base.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cdef class Strategy:
    cdef public list backends
    cdef public object options, rng, clock
    # Strategies written in Python (plugins, tests) keep their instance dict and weak references.
    cdef object __weakref__
    cdef dict __dict__

    cpdef pick(self, request)
