# The compiled core's declarations for outlier.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython

cdef class OutlierState:
    cdef public Py_ssize_t consecutive_failures, multiplier, times_ejected
    cdef public object ejected_at, ejected_until, clean_since

cdef class OutlierDetector:
    cdef public Py_ssize_t consecutive_failures, max_multiplier, ejections_total, refused_total
    cdef public object base_ejection_time, max_ejection_time, max_ejection_percent
    cdef public dict hosts

    @cython.locals(h=OutlierState)
    cpdef bint record(self, backend_id, bint ok, double now) except -1
