"""The differential fuzzer's summary at the end of the run: each failure class with its shortest input."""
from __future__ import annotations

from tests.fuzz.findings import REGISTRY


def pytest_terminal_summary(terminalreporter) -> None:
    if REGISTRY.examples:
        terminalreporter.section("differential fuzz")
        for line in REGISTRY.summary():
            terminalreporter.write_line(line)
