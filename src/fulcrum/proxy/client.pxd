# The compiled core's declarations for client.py (fulcrum/core.py): attribute types, and the
# methods that call each other in C. Public attributes stay readable and writable from Python.
from fulcrum.proxy.exchange cimport Exchange
from fulcrum.proxy.flow_control cimport ReadGate
from fulcrum.proxy.settings cimport ProxySettings

cdef class ClientConnection:
    cdef public ProxySettings settings
    cdef public ReadGate gate
    cdef public object server, loop, transport, parser, current, queue, timer, tunnel
    cdef public object trusted_by, request_metrics, next_request_id, client_ip, body_left
    cdef public Exchange receiving
    cdef public bytes client_ip_bytes, url, early, valid_host
    cdef public list headers
    cdef public Py_ssize_t header_bytes, budget, head_limit, body_seen, body_pauses, send_buffered
    cdef public bint in_head, closed, advancing, counted, tls, upgrading, peer_trusted
    cdef public int wait
    cdef public double deadline, last_body, body_start, send_since, handshake_until

    cpdef data_received(self, bytes data)
    cpdef on_message_begin(self)
    cpdef on_url(self, bytes url)
    cpdef on_header(self, bytes name, bytes value)
    cpdef on_headers_complete(self)
    cpdef on_body(self, bytes body)
    cpdef on_message_complete(self)
    cpdef exchange_done(self, Exchange exchange)
    cpdef _wait(self, int what, double timeout)
    cpdef bint trusts_peer(self, trusted) except -1
