"""What the differential fuzzer found: one kind per class of failure, the smallest input seen
for each, and the exception a failing example raises (one type per kind, so hypothesis shrinks
and reports each kind as a bug of its own).
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

# Kinds, in the order the oracle reports them (the first found names the example's failure).
KINDS = {
    "connect-forwarded": "a CONNECT request reached the backend (it must be answered 405)",
    "version-forwarded": "a request with a version other than HTTP/1.0 or HTTP/1.1 reached the backend",
    "smuggled": "the backend parsed a request the client never sent as a request",
    "forwarded-differs": "the backend parsed a different method, target or body than the client sent",
    "backend-refused": "h11 on the backend refused what Fulcrum forwarded",
    "backend-cut": "a backend connection ended in the middle of a request Fulcrum had accepted",
    "backend-leftover": "bytes followed a request that ends the backend connection",
    "host": "the backend saw another Host than the client's (or, for absolute-form, the target's authority)",
    "hop-by-hop-leak": "a hop-by-hop header, a Connection-nominated header or a non-websocket Upgrade reached the backend",
    "forwarding-headers": "X-Forwarded-For, X-Forwarded-Proto or X-Request-ID is missing or wrong at the backend",
    "response-mismatch": "the client's responses are not one per forwarded request, in order",
    "canary": "a well-formed request on a fresh connection after the input was not served exactly (poisoned pool)",
    "gateway-error": "Fulcrum answered 5xx: it and the backend disagreed about the request",
    "hang": "Fulcrum neither answered nor closed before the deadline",
    "client-garbage": "the client received bytes that are not a complete response",
    "cores-differ": "the compiled core and the pure-Python core (fulcrum/core.py) answered the same input differently",
}


@dataclass
class Finding:
    kind: str      # one of KINDS
    what: str      # stable words: kind + what is the failure's class
    detail: str = ""  # this example's particulars

    def __str__(self) -> str:
        return f"{self.kind}: {self.what}" + (f" ({self.detail})" if self.detail else "")


class DesyncFound(AssertionError):
    """A differential fuzz example failed; subclassed per kind (``error_for``)."""


_ERRORS: dict[str, type[DesyncFound]] = {}


def error_for(kind: str) -> type[DesyncFound]:
    if kind not in _ERRORS:
        name = "DesyncFound_" + re.sub(r"\W", "_", kind)
        _ERRORS[kind] = type(name, (DesyncFound,), {"__module__": __name__})
    return _ERRORS[kind]


@dataclass
class Example:
    raw: bytes
    report: str
    nonce: bytes


class Registry:
    """Per failure class (``class_key``): how often, and the shortest input seen. Shared by the
    test and the terminal summary."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.examples = 0
        self.counts: dict[str, int] = {}
        self.smallest: dict[str, Example] = {}

    def record(self, findings: list[Finding], raw: bytes, report: str, nonce: bytes) -> None:
        with self.lock:
            self.examples += 1
            for key in {class_key(f) for f in findings}:
                self.counts[key] = self.counts.get(key, 0) + 1
                best = self.smallest.get(key)
                if best is None or len(raw) < len(best.raw):
                    self.smallest[key] = Example(raw, report, nonce)

    def summary(self) -> list[str]:
        lines = [f"differential fuzz: {self.examples} examples, {len(self.counts)} failure classes"]
        for key in sorted(self.counts, key=lambda k: (list(KINDS).index(k.split(":", 1)[0]), k)):
            example = self.smallest[key]
            lines.append(f"- {key}  ({self.counts[key]} examples); smallest input ({len(example.raw)} bytes):")
            lines.append(f"    {example.raw!r}")
        return lines

    def details(self) -> str:
        return "\n\n".join(f"=== {key}\n{self.smallest[key].report}" for key in sorted(self.smallest))


REGISTRY = Registry()


def class_key(finding: Finding) -> str:
    return f"{finding.kind}: {finding.what}"
