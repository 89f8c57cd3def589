"""Shared fixtures: example backends and Fulcrum as real processes, cleaned up after each test."""
from __future__ import annotations

import os
import shutil

import pytest

# Tests talk only to 127.0.0.1: never through a proxy from the environment.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"

from tests.support.processes import Backend, Fulcrum


@pytest.fixture
def backends():
    """``backends(n, *flags)`` starts n example backends named b1..bn."""
    started: list[Backend] = []

    def start(n: int = 1, *flags: str, prefix: str = "b") -> list[Backend]:
        new = [Backend(f"{prefix}{len(started) + i + 1}", *flags) for i in range(n)]
        started.extend(new)
        return new

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def fulcrum(tmp_path):
    """``fulcrum(config_dict)`` starts Fulcrum on a free port with that config."""
    started: list[Fulcrum] = []

    def start(config: dict, env: dict | None = None) -> Fulcrum:
        proc = Fulcrum(config, tmp_path, env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        code = proc.stop()
        assert code == 0, f"fulcrum exited with {code}:\n{proc.output}"


def require_binary(name: str, package: str) -> str:
    """Fail (never skip) when a system tool a test needs is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `apt-get install -y {package}` (make test does this)")
    return path
