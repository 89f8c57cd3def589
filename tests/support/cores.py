"""Which core a test run asked for (fulcrum/core.py)."""
from __future__ import annotations

import os


def expected_core() -> str:
    """The pure-Python core under FULCRUM_NO_EXTENSIONS=1 (scripts/test.sh's second run), else
    the compiled one, which scripts/setup.sh built: a run that silently fell back fails."""
    return "pure-python" if os.environ.get("FULCRUM_NO_EXTENSIONS", "") not in ("", "0") else "compiled"
