# The compiled core's declarations for membership.py (fulcrum/core.py). Membership holds no
# state; it is an extension type only so that its subclass, runtime.pool.Pool, can be one
# (a Balancer, for the exchanges).
from fulcrum.proxy.balancer cimport Balancer

cdef class Membership(Balancer):
    pass
