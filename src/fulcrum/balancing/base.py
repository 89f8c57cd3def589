"""The strategy interface: one method, ``pick``, and what a strategy may read.

Strategies are sans-IO: they see Backend objects and a read-only view of the
request, and get time and randomness injected so tests can fake both.
"""
from __future__ import annotations

import random
import time
from typing import Callable, ClassVar, Protocol, Sequence

from pydantic import BaseModel

from fulcrum.balancing.backend import Backend


class RequestInfo(Protocol):
    """What a strategy may know about the request it places."""

    client_ip: str

    def header(self, name: bytes) -> bytes | None:
        """The value of a request header (``name`` in lower case), or None."""


class Strategy:
    """Picks one available backend for a request, or None when none is available.

    A strategy instance is built for a fixed list of backends; when membership
    changes the pool builds a new instance and swaps it in. Availability and
    weights may change between picks and must be read at pick time.
    Subclasses set ``name`` and, when they take options, an ``Options`` model.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel] | None] = None

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        options: BaseModel | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backends = list(backends)
        self.options = options
        self.rng = rng or random.Random()
        self.clock = clock

    def pick(self, request: RequestInfo) -> Backend | None:
        raise NotImplementedError
