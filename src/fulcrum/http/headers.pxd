# The compiled core's declarations for headers.py (fulcrum/core.py): the functions the core
# calls in C, with the types they take and return.
cpdef list without_named(list fields, set named)
cpdef list field_lines(list fields)
cpdef str host_without_port(bytes host)
