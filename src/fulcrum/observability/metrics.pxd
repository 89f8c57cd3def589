# The compiled core's declarations for metrics.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython

cdef class _Series:
    cdef public long long requests, bytes_in, bytes_out, retries, rate_limited
    cdef public list duration, upstream
    cdef public double duration_sum, upstream_sum

cdef class RequestMetrics:
    cdef public tuple bounds
    cdef public dict series, retired, recent

    @cython.locals(s=_Series, tries=Py_ssize_t, duration=double, upstream=double, bounds=tuple)
    cpdef observe(self, exchange)
