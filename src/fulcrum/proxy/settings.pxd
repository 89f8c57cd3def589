# The compiled core's declarations for settings.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
cdef class ProxySettings:
    cdef public double connect_timeout, response_timeout, client_header_timeout, client_idle_timeout
    cdef public double client_body_timeout, pool_idle_timeout, tunnel_idle_timeout, client_tick
    cdef public double client_send_timeout
    cdef public Py_ssize_t max_header_bytes, max_header_count, max_url_length
    cdef public Py_ssize_t high_water, low_water, max_idle_per_backend, max_requests_per_connection
    cdef public Py_ssize_t max_connections, max_connections_per_ip
    cdef public object max_body_size, min_body_rate
