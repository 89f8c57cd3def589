# The compiled core's declarations for retry_budget.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.resilience.window cimport RollingCounts

cdef class RetryBudget:
    cdef public RollingCounts counts
    cdef public object ratio, min_per_second, floor
    cdef public Py_ssize_t granted_total, refused_total

    cpdef record_request(self, double now)
