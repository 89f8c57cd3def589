# The compiled core's declarations for pool.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.proxy.clock cimport monotonic
from fulcrum.proxy.settings cimport ProxySettings
from fulcrum.proxy.upstream cimport UpstreamConnection

cdef class ConnectionPool:
    cdef public ProxySettings settings
    cdef public object backend, loop
    cdef public list idle
    cdef public Py_ssize_t opened
    cdef public bint closed

    cpdef acquire(self)
    cpdef give_back(self, UpstreamConnection conn)
