# cython: language_level=3
"""The compiled core's twin of clock.py: CLOCK_MONOTONIC in seconds, computed as CPython's
time.monotonic computes it (nanoseconds, then one division)."""
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cpdef double monotonic() noexcept:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return <double>(<long long>now.tv_sec * 1000000000LL + now.tv_nsec) / 1e9
