# The compiled core's declarations for frontend.py (fulcrum/core.py): attribute types the
# exchanges read in C. Public attributes stay readable and writable from Python.
from fulcrum.filters.chain cimport Chain
from fulcrum.proxy.balancer cimport Balancer
from fulcrum.proxy.settings cimport ProxySettings

cdef class Destination:
    cdef public str name
    cdef public Balancer pool
    cdef public Chain chain

cdef class Frontend:
    cdef public ProxySettings settings
    cdef public object router, trusted
    cdef public Destination single, unrouted
    cdef public bytes client_ip_header
    cdef public str forwarded_headers
