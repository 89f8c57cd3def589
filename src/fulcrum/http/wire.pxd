# The compiled core's declarations for wire.py, implemented in C by wire.pyx: the core
# cimports these and calls them in C.
cpdef bytes join(list parts)
cpdef bytes header_line(bytes prefix, bytes value)
cpdef int request_kind(bytes name)
cpdef int response_kind(bytes name)
cpdef bint plain_connection(bytes value) except -1
cpdef bytes request_id(bytes prefix, unsigned long long count)
