"""Who may use the admin API: a bearer token (``admin.token`` / ``FULCRUM_ADMIN__TOKEN``).

Every change needs the token; reads need it too unless the listener is on
loopback. Without a token the API is read-only, and only on loopback: a
non-loopback listener without one is refused at start. Tokens are compared in
constant time. A 401 says the token is missing, a 403 that it is wrong (or that
no token is configured, so no change is possible).

Reads without a token rest on the listener being reachable only from this host.
A web page could still reach it through DNS rebinding (its own name, re-pointed
at 127.0.0.1), so such a listener also requires a loopback Host header: a
rebound page sends its own name and gets 403.
"""
from __future__ import annotations

import hmac

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


class Auth:
    """The token and which requests need it."""

    __slots__ = ("token", "reads_need_token")

    def __init__(self, token: str | None, host: str) -> None:
        self.token = token.encode() if token else None
        self.reads_need_token = not is_loopback(host)

    def foreign_host(self, host: bytes | None) -> str | None:
        """Why a request for ``host`` is refused (reads open on loopback), or None."""
        if self.reads_need_token:
            return None  # every read carries the token: the Host does not matter
        name = host_without_port(host).strip("[]") if host else ""
        if name == "localhost" or is_loopback(name):
            return None
        return FOREIGN_HOST.format(host=(host or b"").decode("latin-1"))

    def check(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        """Raise the 401 or 403 that these credentials deserve, or return."""
        if self.token is None:
            raise HTTPException(403, NO_TOKEN)
        if credentials is None or not credentials.credentials:
            raise HTTPException(401, MISSING, headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), self.token):
            raise HTTPException(403, WRONG, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def require_token(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """FastAPI dependency: the request must carry the admin token."""
    request.app.state.auth.check(credentials)
