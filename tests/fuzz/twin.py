"""The fuzzer's second opinion: the other core (fulcrum/core.py) on the same input.

Each example goes through the core this run tests and, on a second Fulcrum with a backend of
its own, through the other core. The two runs must look the same from outside: the same
responses (status, and whether the backend or Fulcrum answered) and the same requests read by
the backend. The example's nonce, the per-process request ids and the backend's own address
(the Host of an HTTP/1.0 request without one) are taken out first; what
depends on timing (how bytes were split into reads, when an idle connection closed) is left out.
"""
from __future__ import annotations

from tests.fuzz.findings import Finding
from tests.fuzz.oracle import Run
from tests.fuzz.recording_backend import CUT, ERROR, REQUEST
from tests.support.cores import expected_core

_VARIES = {b"x-request-id"}  # each process numbers its own requests
_COMPARED = (REQUEST, CUT, ERROR)


def other_core_env() -> dict[str, str]:
    """Environment for the twin Fulcrum: the core this run does not test."""
    return {"FULCRUM_NO_EXTENSIONS": "" if expected_core() == "pure-python" else "1"}


def signature(run: Run, backend_port: int) -> tuple:
    nonce, backend = run.nonce, b"127.0.0.1:%d" % backend_port

    def clean(data: bytes) -> bytes:
        return b"<backend>" if data == backend else data.replace(nonce, b"<nonce>")

    responses = tuple((r.status, r.from_backend) for r in run.client.responses)
    requests = tuple(
        (event.kind, event.request.method, clean(event.request.target), clean(event.request.body),
         tuple((name, clean(value)) for name, value in event.request.headers if name not in _VARIES))
        if event.request is not None else (event.kind,)
        for event in run.events if event.kind in _COMPARED)
    return responses, requests, run.client.hung


def compare(run: Run, port: int, twin: Run, twin_port: int) -> list[Finding]:
    """A finding when the two cores answered the same input differently (``port``: each
    run's backend)."""
    ours, theirs = signature(run, port), signature(twin, twin_port)
    if ours == theirs:
        return []
    part = ("responses", "backend requests", "hang")[next(i for i in range(3) if ours[i] != theirs[i])]
    return [Finding("cores-differ", f"the {part} differ between the cores",
                    f"{expected_core()}: {ours}; other core: {theirs}")]
