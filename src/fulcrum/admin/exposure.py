"""Who can reach the admin listener: loopback only, or anyone who can route to it.

Kept free of web-framework imports: the App checks this before it binds anything,
while the admin API itself is still being imported.
"""
from __future__ import annotations

from fulcrum.config.model import is_loopback


class InsecureAdminListener(RuntimeError):
    """The admin listener would be reachable off this host with no token."""


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve the admin API off loopback without a token."""
    if not token and not is_loopback(host):
        raise InsecureAdminListener(
            f"admin.listen is {host}, not loopback, and no admin.token is set: "
            "set admin.token (or FULCRUM_ADMIN__TOKEN), or listen on 127.0.0.1")
