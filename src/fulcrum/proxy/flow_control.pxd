# The compiled core's declarations for flow_control.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cdef class ReadGate:
    cdef public object transport
    cdef public int paused_by
    cdef public Py_ssize_t pauses

    cpdef pause(self, int reason)
    cpdef resume(self, int reason)
