"""Shrinking a failing input by hand, for the survey mode (where hypothesis does not shrink):
drop lines, then single bytes, while the same failure class shows. Generated requests'
markers stay: the oracle reads them (past h11's refusal only generated requests may be
forwarded), so a line or byte that carries one is never dropped.
"""
from __future__ import annotations

import re
import time
from typing import Callable

from tests.fuzz.strategies import PLACEHOLDER

MARKER = re.compile(rb"(fz" + PLACEHOLDER + rb"r\d)")  # a generated request's (hidden ones may go)

# Replays a template and returns the failure classes it shows, and the run's report.
Replay = Callable[[bytes], tuple[set[str], str]]


def minimize(template: bytes, key: str, replay: Replay, budget: float = 60.0) -> tuple[bytes, str]:
    """The smallest variant of ``template`` found within ``budget`` seconds that still shows ``key``."""
    deadline = time.monotonic() + budget
    classes, report = replay(template)
    if key not in classes:
        return template, report  # not reproducible on its own (it needed an earlier example's state)
    for split in (_lines, _bytes):
        changed = True
        while changed and time.monotonic() < deadline:
            changed = False
            units = split(template)
            i = len(units) - 1
            while i >= 0 and time.monotonic() < deadline:
                candidate = b"".join(units[:i] + units[i + 1:])
                if candidate and not MARKER.search(units[i]):
                    found, candidate_report = replay(candidate)
                    if key in found:
                        template, report, units = candidate, candidate_report, units[:i] + units[i + 1:]
                        changed = True
                i -= 1
    return template, report


def _lines(data: bytes) -> list[bytes]:
    return [part for part in re.split(rb"(?<=\n)", data) if part]


def _bytes(data: bytes) -> list[bytes]:
    """Single bytes, and each target marker as one unit (which stays)."""
    if len(data) > 400:
        return [data]
    units = []
    for part in MARKER.split(data):
        units += [part] if MARKER.fullmatch(part) else [part[i:i + 1] for i in range(len(part))]
    return units
