# Durations and byte sizes as people write them in config ("250ms", "64KB") and the
# pydantic types that accept them. Durations become float seconds, sizes int bytes.
"""Parsing of human-written durations and sizes.

Durations: a number with an optional unit ``ms``, ``s``, ``m`` or ``h``; a bare
number (or numeric string) means seconds. ``"1.5s"`` is 1.5, ``"250ms"`` 0.25.

Sizes use **binary** multiples: ``1KB == 1KiB == 1k == 1024`` bytes,
``1MB == 1048576``, ``1GB == 1073741824``. Units are case-insensitive and the
trailing ``B`` is optional (``64k``, ``64KB``, ``64KiB`` are all 65536). A bare
integer means bytes. A fractional size (``"1.5MB"``) is rounded down to whole bytes.
"""
from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, Field

__all__ = ["Duration", "Size", "parse_duration", "parse_size"]

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"^{_NUMBER}\s*(ms|s|m|h)?$", re.IGNORECASE)
_SIZE_RE = re.compile(rf"^{_NUMBER}\s*(?:([kmgt])(i?b)?|b)?$", re.IGNORECASE)

_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES_PER_UNIT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

_DURATION_HINT = "use e.g. 250ms, 2s, 1m"
_SIZE_HINT = "use e.g. 512B, 64KB, 10MB, 1GB"


def parse_duration(value: object) -> float:
    """Seconds from ``"250ms"``, ``"2s"``, ``"1m"``, ``"1h"``, ``"1.5s"`` or a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite(float(value), value, "duration", _DURATION_HINT)
    match = _DURATION_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a duration (got {_show(value)}); {_DURATION_HINT}")
    number, unit = match.groups()
    return float(number) * _SECONDS_PER_UNIT[(unit or "s").lower()]


def parse_size(value: object) -> int:
    """Bytes from ``"512B"``, ``"64KB"``, ``"10MB"``, ``"1GB"`` (binary multiples) or an int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = _SIZE_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a size (got {_show(value)}); {_SIZE_HINT}")
    number, unit, _suffix = match.groups()
    return math.floor(float(number) * _BYTES_PER_UNIT[(unit or "").lower()])


def _finite(seconds: float, original: object, what: str, hint: str) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"not a {what} (got {_show(original)}); {hint}")
    return seconds


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


# A duration in float seconds, never negative. Fields that need > 0 add Field(gt=0).
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]

# A size in int bytes, never negative.
Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
