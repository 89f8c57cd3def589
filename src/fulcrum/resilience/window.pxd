# The compiled core's declarations for window.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cimport cython

cdef class RollingCounts:
    cdef public double window, width
    cdef public Py_ssize_t size
    cdef public long long[:] counts, totals
    cdef public long long head
    cdef public bint started

    @cython.locals(slot=cython.longlong, head=cython.longlong, s=cython.longlong, i=Py_ssize_t, c=Py_ssize_t,
                   k=Py_ssize_t, size=Py_ssize_t, counts='long long[:]', totals='long long[:]')
    cpdef Py_ssize_t _advance(self, double now) except -1
    @cython.locals(i=Py_ssize_t)
    cpdef add(self, double now, Py_ssize_t column, Py_ssize_t n=*)
    cpdef total(self, double now, Py_ssize_t column)
    @cython.locals(k=Py_ssize_t, counts='long long[:]', totals='long long[:]')
    cpdef _zero(self)
