# The compiled core's declarations for response_plan.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.http.wire cimport header_line

cpdef tuple plan_response(bytes method, int status, bint http11, content_length, codings)
