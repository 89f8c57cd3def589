# cython: language_level=3
"""The compiled core's twin of wire.py (read that file for what each function means): the
same functions as C loops. Names are matched without a lower-cased copy and without hashing:
by length first, then byte by byte with ASCII letters folded."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.string cimport memcpy

from fulcrum.http.headers import REQUEST_HEADERS, RESPONSE_HEADERS

PASSED = -1

cdef enum:
    _LONGEST = 32  # names longer than this are in no table (the longest listed is 17 bytes)


cdef struct _Name:
    const unsigned char *lower
    int kind
    int next  # the next name of the same length, or -1


cdef class _Table:
    """One header table as C arrays: its names (lower-case, kept alive by ``keep``) and kinds,
    chained by length (``first[n]``: the first name of n bytes, or -1)."""
    cdef list keep
    cdef _Name names[64]
    cdef int first[_LONGEST + 1]

    def __init__(self, dict table):
        cdef int i = 0, n
        if len(table) > 64:
            raise ValueError("a header table of more than 64 names")
        self.keep = []
        for n in range(_LONGEST + 1):
            self.first[n] = -1
        for name, kind in table.items():
            if len(name) > _LONGEST or name != name.lower():
                raise ValueError(f"header table name {name!r}: lower case, at most {_LONGEST} bytes")
            n = len(name)
            self.keep.append(name)
            self.names[i].lower = <const unsigned char *>PyBytes_AS_STRING(name)
            self.names[i].kind = kind
            self.names[i].next = self.first[n]
            self.first[n] = i
            i += 1

    cdef inline int kind(self, bytes name):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(name), j
        cdef const unsigned char *s = <const unsigned char *>PyBytes_AS_STRING(name)
        cdef const unsigned char *t
        cdef unsigned char c
        cdef int i
        if n > _LONGEST:
            return PASSED
        i = self.first[n]
        while i != -1:
            t = self.names[i].lower
            for j in range(n):
                c = s[j]
                if 65 <= c <= 90:
                    c += 32
                if c != t[j]:
                    break
            else:
                return self.names[i].kind
            i = self.names[i].next
        return PASSED


cdef _Table _REQUEST = _Table(REQUEST_HEADERS)
cdef _Table _RESPONSE = _Table(RESPONSE_HEADERS)


cpdef bytes join(list parts):
    cdef Py_ssize_t count = PyList_GET_SIZE(parts), size = 0, i, n
    cdef object part
    cdef bytes out
    cdef char *at
    for i in range(count):
        part = <object>PyList_GET_ITEM(parts, i)
        if type(part) is not bytes:
            return b"".join(parts)  # a bytearray or memoryview: Python's join takes any buffer
        size += PyBytes_GET_SIZE(part)
    out = PyBytes_FromStringAndSize(NULL, size)
    at = PyBytes_AS_STRING(out)
    for i in range(count):
        part = <object>PyList_GET_ITEM(parts, i)
        n = PyBytes_GET_SIZE(part)
        memcpy(at, PyBytes_AS_STRING(part), n)
        at += n
    return out


cpdef bytes header_line(bytes prefix, bytes value):
    cdef Py_ssize_t a = PyBytes_GET_SIZE(prefix), b = PyBytes_GET_SIZE(value)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, a + b + 2)
    cdef char *at = PyBytes_AS_STRING(out)
    memcpy(at, PyBytes_AS_STRING(prefix), a)
    memcpy(at + a, PyBytes_AS_STRING(value), b)
    at[a + b] = 13
    at[a + b + 1] = 10
    return out


cpdef int request_kind(bytes name):
    return _REQUEST.kind(name)


cpdef int response_kind(bytes name):
    return _RESPONSE.kind(name)


cdef inline bint _same_lower(const unsigned char *s, Py_ssize_t n, const char *lower):
    """``s`` (n bytes) equals the NUL-terminated lower-case ``lower``, ASCII letters folded."""
    cdef Py_ssize_t j
    cdef unsigned char c
    for j in range(n):
        c = s[j]
        if 65 <= c <= 90:
            c += 32
        if lower[j] == 0 or c != <unsigned char>lower[j]:
            return False
    return lower[n] == 0


cpdef bint plain_connection(bytes value) except -1:
    cdef const unsigned char *s = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    return _same_lower(s, n, b"close") or _same_lower(s, n, b"keep-alive")


cpdef bytes request_id(bytes prefix, unsigned long long count):
    cdef char digits[16]
    cdef int n = 0, i
    cdef Py_ssize_t length = PyBytes_GET_SIZE(prefix)
    cdef bytes out
    cdef char *at
    while count or n < 8:
        digits[n] = b"0123456789abcdef"[count & 15]
        count >>= 4
        n += 1
    out = PyBytes_FromStringAndSize(NULL, length + 1 + n)
    at = PyBytes_AS_STRING(out)
    memcpy(at, PyBytes_AS_STRING(prefix), length)
    at[length] = b"-"
    for i in range(n):
        at[length + 1 + i] = digits[n - 1 - i]
    return out
