# The compiled core's declarations for request_ids.py (fulcrum/core.py): attribute types, and
# the methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.http.wire cimport request_id

cdef class RequestIds:
    cdef public bytes prefix
    cdef public long long count

    cpdef bytes next(self)
