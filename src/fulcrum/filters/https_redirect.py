"""With ``tls.redirect_http``, a request on the plain listener is answered 308 with the
same target on the TLS listener (308 keeps the method and body, unlike 301)."""
from __future__ import annotations

import re

from fulcrum.filters.base import Filter, Reply
from fulcrum.http.headers import host_without_port


# A host name or a bracketed IPv6 literal: nothing else goes into the Location header.
_HOST = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")


class HttpsRedirect(Filter):
    """Sends plain-HTTP requests to https://; TLS requests pass."""

    name = "https_redirect"

    def __init__(self, options, resources) -> None:
        super().__init__(options, resources)
        self.resources = resources  # tls_port: the port the TLS listener bound (known after binding)

    def on_request(self, exchange) -> Reply | None:
        if exchange.secure:
            return None
        host = host_without_port(exchange.host) if exchange.host else ""
        if not _HOST.fullmatch(host):
            return Reply(400, "a redirect to https needs a valid Host header")
        port = self.resources.tls_port
        suffix = "" if port == 443 else f":{port}"
        target = exchange.target.decode("latin-1")
        return Reply(308, "use https", [("Location", f"https://{host}{suffix}{target}")])
