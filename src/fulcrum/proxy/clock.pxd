# The compiled core's declarations for clock.py, implemented in C by clock.pyx.
cpdef double monotonic() noexcept
