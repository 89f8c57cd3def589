"""The data plane's clock: seconds from CLOCK_MONOTONIC, the clock ``time.monotonic`` reads.

This file is the pure-Python core's clock, and it is ``time.monotonic`` itself. The compiled
core runs ``clock.pyx`` instead, which reads the same clock with the same arithmetic as a C
call (an exchange reads the clock five times per request; a Python call each costs more than
the read). tests/proxy/test_clock.py checks the two agree.
"""
from __future__ import annotations

from time import monotonic

__all__ = ("monotonic",)
