# The compiled core's declarations for chain.py (fulcrum/core.py): the hooks of each phase,
# which an exchange reads in C. Public attributes stay readable and writable from Python.
cdef class Chain:
    cdef public tuple filters, request, upstream_request, response, log
