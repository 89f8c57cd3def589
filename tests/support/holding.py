"""A backend that keeps requests in flight until a test lets them go, for tests of what
happens meanwhile (drains, removals, in-flight gauges): no timing involved."""
from __future__ import annotations

import threading
import time

import httpx

from tests.support.fake_backend import FakeBackend


class Holding(FakeBackend):
    """A backend named "held" that keeps each GET /hold unanswered until ``release()``;
    anything else it answers at once."""

    def __init__(self) -> None:
        self.released = threading.Event()
        super().__init__(self._reply)

    def _reply(self, head: bytes, index: int) -> bytes:
        if head.startswith(b"GET /hold "):
            self.released.wait(30)
        return b"HTTP/1.1 200 OK\r\nX-Backend: held\r\nContent-Length: 2\r\n\r\nok"

    def release(self) -> None:
        self.released.set()


def held_request(url: str) -> tuple[threading.Thread, list]:
    """GET /hold through the proxy; (status, X-Backend, when it finished) lands in the list."""
    result: list = []

    def run() -> None:
        response = httpx.get(f"{url}/hold", trust_env=False, timeout=30)
        result.append((response.status_code, response.headers.get("x-backend"), time.monotonic()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result
