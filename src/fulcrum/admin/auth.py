"""Who may use the admin API: a bearer token (``admin.token`` / ``FULCRUM_ADMIN__TOKEN``).

Every change needs the token; reads need it too unless the listener is on
loopback. Without a token the API is read-only, and only on loopback: a
non-loopback listener without one is refused at start. Tokens are compared in
constant time. A 401 says the token is missing, a 403 that it is wrong (or that
no token is configured, so no change is possible).

Wrong tokens are throttled per client address: after ``MAX_FAILURES`` within
``FAILURE_WINDOW`` seconds, that address gets 429 with ``Retry-After`` until the window
ends, without its token being compared (the right one included). A missing token is no
guess and is not counted; a right one clears the address's count.

Reads without a token rest on the listener being reachable only from this host.
A web page could still reach it through DNS rebinding (its own name, re-pointed
at 127.0.0.1), so such a listener also requires a loopback Host header: a
rebound page sends its own name and gets 403.
"""
from __future__ import annotations

import hmac
import logging
import math
import time
from collections import OrderedDict
from typing import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fulcrum.admin.exposure import is_loopback
from fulcrum.http.headers import host_without_port

bearer = HTTPBearer(auto_error=False, scheme_name="adminToken",
                    description="The admin token: admin.token in the config, or FULCRUM_ADMIN__TOKEN.")

MISSING = ("missing bearer token: send 'Authorization: Bearer <token>' with the admin token "
           "(admin.token or FULCRUM_ADMIN__TOKEN)")
WRONG = "invalid bearer token: it does not match admin.token"
FOREIGN_HOST = ("Host {host!r} is not a loopback name: without a token the admin API answers only "
                "requests for localhost, 127.0.0.1 or [::1] (DNS-rebinding protection)")
NO_TOKEN = ("the admin API is read-only: no admin token is configured; set admin.token "
            "(or FULCRUM_ADMIN__TOKEN) and restart to make changes")
THROTTLED = ("too many wrong admin tokens from {client}: {failures} within {window:g} s; "
             "try again in {retry_after} s")

MAX_FAILURES = 20         # wrong tokens from one address within FAILURE_WINDOW before it waits
FAILURE_WINDOW = 60.0     # seconds, from the first wrong token of a window
MAX_TRACKED = 4096        # addresses remembered at once (the oldest window is forgotten first)

log = logging.getLogger("fulcrum.admin")


class FailureThrottle:
    """Wrong tokens per client address, in fixed windows; sans-IO, ``clock`` injected.

    Memory is bounded: windows are kept oldest first, expired ones are dropped as new ones
    open, and past ``max_tracked`` addresses the oldest window is forgotten."""

    __slots__ = ("max_failures", "window", "max_tracked", "clock", "_windows")

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = FAILURE_WINDOW,
                 max_tracked: int = MAX_TRACKED, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.window, self.max_tracked = max_failures, window, max_tracked
        self.clock = clock
        self._windows: OrderedDict[str, list] = OrderedDict()  # address -> [opened_at, failures]

    def retry_after(self, client: str) -> float | None:
        """Seconds ``client`` must wait before its token is compared again, or None."""
        entry = self._windows.get(client)
        if entry is None or entry[1] < self.max_failures:
            return None
        left = entry[0] + self.window - self.clock()
        return left if left > 0 else None

    def failed(self, client: str) -> None:
        """``client`` sent a wrong token."""
        now = self.clock()
        entry = self._windows.get(client)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            if entry[1] == self.max_failures:
                log.warning("admin authentication throttled", extra={"fields": {
                    "client": client, "failures": entry[1], "retry_after": round(self.window - (now - entry[0]), 1)}})
            return
        self._windows.pop(client, None)
        while self._windows:  # oldest first: drop the windows that have ended
            oldest = next(iter(self._windows.values()))
            if now - oldest[0] < self.window and len(self._windows) < self.max_tracked:
                break
            self._windows.popitem(last=False)
        self._windows[client] = [now, 1]

    def succeeded(self, client: str) -> None:
        self._windows.pop(client, None)

    def __len__(self) -> int:
        return len(self._windows)


class Auth:
    """The token and which requests need it."""

    __slots__ = ("token", "reads_need_token", "throttle")

    def __init__(self, token: str | None, host: str, throttle: FailureThrottle | None = None) -> None:
        self.token = token.encode() if token else None
        self.reads_need_token = not is_loopback(host)
        self.throttle = throttle if throttle is not None else FailureThrottle()

    def foreign_host(self, host: bytes | None) -> str | None:
        """Why a request for ``host`` is refused (reads open on loopback), or None."""
        if self.reads_need_token:
            return None  # every read carries the token: the Host does not matter
        name = host_without_port(host).strip("[]") if host else ""
        if name == "localhost" or is_loopback(name):
            return None
        return FOREIGN_HOST.format(host=(host or b"").decode("latin-1"))

    def check(self, credentials: HTTPAuthorizationCredentials | None, client: str = "") -> None:
        """Raise the 401, 403 or 429 that these credentials from ``client`` (its address)
        deserve, or return."""
        if self.token is None:
            raise HTTPException(403, NO_TOKEN)
        if credentials is None or not credentials.credentials:
            raise HTTPException(401, MISSING, headers={"WWW-Authenticate": "Bearer"})
        wait = self.throttle.retry_after(client)
        if wait is not None:
            seconds = math.ceil(wait)
            raise HTTPException(429, THROTTLED.format(client=client or "?", failures=self.throttle.max_failures,
                                                      window=self.throttle.window, retry_after=seconds),
                                headers={"Retry-After": str(seconds)})
        if not hmac.compare_digest(credentials.credentials.encode(), self.token):
            self.throttle.failed(client)
            raise HTTPException(403, WRONG, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        self.throttle.succeeded(client)


async def require_token(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """FastAPI dependency: the request must carry the admin token."""
    request.app.state.auth.check(credentials, request.client.host if request.client else "")
