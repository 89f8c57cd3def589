"""User filters for the edge-protection tests, loaded by Fulcrum by dotted path
(``tests.support.edge_filters:Boom``): Fulcrum runs with the repository root as its
working directory, so ``tests`` is importable there as it is here.

Each one is small and does one observable thing: raise in a chosen phase, add a response
header, answer locally, or record what it saw.
"""
from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict

from fulcrum.filters.base import Filter, Reply, ResponseHead


class BoomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: Literal["request", "response", "log"]
    path: str = "/boom"


class Boom(Filter):
    """Raises ``RuntimeError("edge-boom in on_<phase> for <request id>")`` in one phase, for
    requests whose target starts with ``path``; every other request passes untouched."""

    name = "boom"
    Options = BoomOptions

    def _hit(self, exchange, phase: str) -> None:
        if self.options.phase == phase and exchange.target.startswith(self.options.path.encode()):
            raise RuntimeError(f"edge-boom in on_{phase} for {exchange.request_id.decode('latin-1')}")

    def on_request(self, exchange) -> Reply | None:
        self._hit(exchange, "request")
        return None

    def on_response(self, exchange, head: ResponseHead) -> None:
        self._hit(exchange, "response")

    def on_log(self, exchange) -> None:
        self._hit(exchange, "log")


class TagOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str
    header: str = "X-Edge-Tag"


class Tag(Filter):
    """Adds ``<header>: <value>`` to every response (only ``on_response`` is hooked)."""

    name = "tag"
    Options = TagOptions

    def on_response(self, exchange, head: ResponseHead) -> None:
        head.add(self.options.header.encode(), self.options.value.encode())


class DenyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    status: int = 451


class Deny(Filter):
    """Answers ``status`` from the proxy for targets starting with ``path``, with a header."""

    name = "deny"
    Options = DenyOptions

    def on_request(self, exchange) -> Reply | None:
        if exchange.target.startswith(self.options.path.encode()):
            return Reply(self.options.status, "denied by the edge test filter", [("X-Denied-By", "edge-deny")])
        return None


class StrictOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: int
    label: str = "strict"


class Strict(Filter):
    """Does nothing; its Options are what a config check validates."""

    name = "strict"
    Options = StrictOptions


class Plain(Filter):
    """A filter that takes no options at all."""

    name = "plain"

    def on_response(self, exchange, head: ResponseHead) -> None:
        head.add(b"X-Plain", b"1")


class NotAFilter:
    """Named in a config to show that a non-Filter class is refused."""


class LogMarker(Filter):
    """Logs ``edge-log-marker request_id=<id>`` (logger ``fulcrum.edge_test``, so it shows in
    Fulcrum's own output) in ``on_log``: proof that its log hook ran for that request."""

    name = "log_marker"

    def on_log(self, exchange) -> None:
        logging.getLogger("fulcrum.edge_test").warning(
            "edge-log-marker", extra={"fields": {"request_id": exchange.request_id.decode("latin-1")}})
