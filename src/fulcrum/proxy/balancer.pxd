# The compiled core's declarations for balancer.py (fulcrum/core.py): attribute types, and the
# methods an exchange calls in C. Public attributes stay readable and writable from Python.
from fulcrum.balancing.backend cimport Backend
from fulcrum.resilience.outlier cimport OutlierDetector
from fulcrum.resilience.retry_budget cimport RetryBudget

cdef class Balancer:
    cdef public str name
    cdef public dict connections
    cdef public OutlierDetector outliers
    cdef public RetryBudget budget
    cdef public object retry, rng
    cdef public bint tries_header, timed_tries

    cpdef lease(self, request, tuple exclude=*)
    cpdef record(self, Backend backend, bint ok, double now)
