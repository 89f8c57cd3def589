# The compiled core's declarations for metrics.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython

cdef class _Series:
    cdef public long long requests, bytes_in, bytes_out, retries, rate_limited
    cdef public list duration, upstream
    cdef public double duration_sum, upstream_sum

@cython.locals(lo=Py_ssize_t, hi=Py_ssize_t, mid=Py_ssize_t, bound=double)
cpdef Py_ssize_t bucket(tuple bounds, double value) except -1

cdef class RequestMetrics:
    cdef public tuple bounds
    cdef public dict series, retired, recent

    cpdef observe(self, exchange)
    @cython.locals(s=_Series, bounds=tuple)
    cpdef count(self, pool, backend, bytes method, int status, str route, long long bytes_in,
                long long bytes_out, int tries, bint rate_limited, double duration, double upstream)
