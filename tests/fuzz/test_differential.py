"""Differential fuzzing of Fulcrum's request path: generated requests go through a real Fulcrum
to a backend that parses with h11; every example is judged against h11's reading of the client
bytes (tests/fuzz/oracle.py says what may differ), then a canary on a fresh connection checks
that the pooled backend connection was left clean. A second Fulcrum running the other core
(compiled or pure Python) gets the same example and must answer it the same (tests/fuzz/twin.py).

CI runs 200 fixed (derandomized) examples; hypothesis shrinks each kind of failure it meets.
``make fuzz`` runs it long with random seeds: FUZZ_EXAMPLES sets the number of examples,
FUZZ_SURVEY=1 records every failure class instead of stopping at the first, then shrinks the
shortest input of each (FUZZ_SHRINK_SECONDS apiece) and writes the report to FUZZ_REPORT.
(Not FULCRUM_*: Fulcrum reads every FULCRUM_* variable but FULCRUM_NO_EXTENSIONS as a config override.)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz import reference
from tests.fuzz.client import exchange
from tests.fuzz.findings import REGISTRY, Example, class_key, error_for
from tests.fuzz.minimize import minimize
from tests.fuzz.oracle import Run, judge
from tests.fuzz.recording_backend import CLOSED, CUT, ERROR, LEFTOVER, RecordingBackend
from tests.fuzz.strategies import PLACEHOLDER, client_bytes
from tests.fuzz.twin import compare, other_core_env
from tests.support.processes import Fulcrum, pool_config

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
LONG = "FUZZ_EXAMPLES" in os.environ
SURVEY = os.environ.get("FUZZ_SURVEY") == "1"

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,            # CI: the same examples every run
    database=None if not LONG else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,
)

# Short client-side timeouts: an incomplete request costs this long, not the defaults' seconds.
# The response timeout stays well above a loaded machine's stalls: a 504 is reported as a finding.
CONFIG = {
    "timeouts": {"client_header": "500ms", "client_body": "500ms", "client_idle": "2s", "response": "3s",
                 "connect": "2s"},
    "limits": {"max_header_bytes": "8KB"},
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """This run's core and its twin with the other core, each with a backend of its own."""
    with RecordingBackend() as backend, RecordingBackend() as twin_backend:
        workdir = tmp_path_factory.mktemp("fuzz")
        lb = Fulcrum({**CONFIG, "pools": {"fuzz": pool_config(backend)}}, workdir)
        twin = Fulcrum({**CONFIG, "pools": {"fuzz": pool_config(twin_backend)}}, workdir, other_core_env())
        try:
            yield Proxies(lb, backend, twin, twin_backend)
        finally:
            codes = [(proc, proc.stop()) for proc in (lb, twin)]
            for proc, code in codes:
                assert code == 0, f"fulcrum exited with {code}:\n{proc.output[-4000:]}"


@dataclass
class Proxies:
    lb: Fulcrum
    backend: RecordingBackend
    twin: Fulcrum
    twin_backend: RecordingBackend

    def drop_connections(self) -> None:
        self.backend.drop_connections()
        self.twin_backend.drop_connections()


class _Nonces:
    """Six characters per example, so markers keep the placeholder's length."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> bytes:
        self.count += 1
        return b"%06d" % (self.count % 1_000_000)


NONCES = _Nonces()


def run_example(lb, backend: RecordingBackend, template: bytes) -> Run:
    nonce = NONCES.next()
    raw = template.replace(PLACEHOLDER, nonce)
    ref = reference.read(raw)
    start = backend.mark()
    client = exchange(lb.port, raw, expected=len(ref.requests))
    canary_target = b"/canary" + nonce
    canary = exchange(lb.port, b"GET " + canary_target + b" HTTP/1.1\r\nHost: canary.test\r\n\r\n", expected=1)
    backend.settle()
    return Run(raw, nonce, ref, backend.since(start), client, canary_target, canary)


def run_both(proxy: Proxies, template: bytes) -> tuple[Run, list]:
    """The example through this run's core, judged, and through the twin, compared."""
    run = run_example(proxy.lb, proxy.backend, template)
    twin = run_example(proxy.twin, proxy.twin_backend, template)
    findings = judge(run) + compare(run, proxy.backend.port, twin, proxy.twin_backend.port)
    if findings or any(e.kind in (CUT, ERROR, LEFTOVER, CLOSED) for e in run.events + twin.events):
        # Whatever the example left (closed or half-read backend connections) must not leak
        # into the next one: start it from a clean pool.
        proxy.drop_connections()
        time.sleep(0.02)  # Fulcrum notices the closes before the next example picks a connection
    return run, findings


# No per-test timeout on long runs; in CI, room for hypothesis to shrink what it finds.
LONG_RUN = pytest.mark.timeout(0 if LONG or SURVEY else 900)


@LONG_RUN
@FUZZ_SETTINGS
@given(template=client_bytes())
def test_backend_parses_exactly_what_fulcrum_forwarded(proxy, template):
    run, findings = run_both(proxy, template)
    if not findings:
        REGISTRY.record([], run.raw, "", run.nonce)
        return
    report = run.report(findings)
    REGISTRY.record(findings, run.raw, report, run.nonce)
    if not SURVEY:
        raise error_for(findings[0].kind)(report)


if SURVEY:  # collected after the examples (make fuzz runs with -p no:randomly)
    @LONG_RUN
    def test_survey_found_nothing(proxy):
        """The examples only recorded: shrink the shortest input of each failure class and fail
        with them (the whole report also goes to FUZZ_REPORT, when set)."""
        _shrink_and_report(proxy)


def _shrink_and_report(proxy: Proxies) -> None:
    def replay(template: bytes) -> tuple[set[str], str]:
        run, findings = run_both(proxy, template)
        proxy.drop_connections()
        time.sleep(0.02)
        return {class_key(f) for f in findings}, run.report(findings)

    for key, example in list(REGISTRY.smallest.items()):
        template = example.raw.replace(example.nonce, PLACEHOLDER)
        template, report = minimize(template, key, replay, float(os.environ.get("FUZZ_SHRINK_SECONDS", "30")))
        REGISTRY.smallest[key] = Example(template.replace(PLACEHOLDER, example.nonce), report, example.nonce)
    text = "\n".join(REGISTRY.summary()) + "\n\n" + REGISTRY.details()
    if os.environ.get("FUZZ_REPORT"):
        Path(os.environ["FUZZ_REPORT"]).write_text(text)
    assert not REGISTRY.counts, text
