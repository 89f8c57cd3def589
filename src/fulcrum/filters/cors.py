"""CORS (the Fetch standard's CORS protocol): preflights are answered here, and responses to
allowed origins get Access-Control-Allow-Origin and friends.

A preflight is an OPTIONS request with Origin and Access-Control-Request-Method. From an
allowed origin asking for allowed methods and headers it gets 204 with the allow headers;
otherwise 403 saying what was refused. A plain OPTIONS (no Access-Control-Request-Method)
goes to the backend. Origins are exact (``https://app.example.com``), wildcard subdomains
(``https://*.example.com``: any subdomain, not the apex) or ``*``.
"""
from __future__ import annotations

from fulcrum.config.filters import CorsConfig
from fulcrum.filters.base import Filter, Reply, ResponseHead


class Cors(Filter):
    """Answers preflights and marks responses readable by allowed origins."""

    name = "cors"
    Options = CorsConfig

    def __init__(self, options: CorsConfig, resources) -> None:
        super().__init__(options, resources)
        self.any_origin = "*" in options.allow_origins
        self.exact = {o.encode() for o in options.allow_origins if "://*." not in o and o != "*"}
        self.suffixes = []  # (scheme://, .domain[:port]) for wildcard subdomains
        for origin in options.allow_origins:
            if "://*." in origin:
                scheme, rest = origin.split("://*.", 1)
                self.suffixes.append(((scheme + "://").encode(), ("." + rest).encode()))
        self.methods = {m.upper().encode() for m in options.allow_methods}
        self.allow_methods = ", ".join(m.upper() for m in options.allow_methods).encode()
        self.allow_headers = {h.lower().encode() for h in options.allow_headers}
        self.expose = ", ".join(options.expose_headers).encode()
        self.credentials = options.allow_credentials
        self.max_age = b"%d" % options.max_age

    def allowed(self, origin: bytes) -> bool:
        origin = origin.lower()
        if self.any_origin or origin in self.exact:
            return True
        for scheme, suffix in self.suffixes:
            # "https://a.example.com" ends with ".example.com" past its scheme; the apex does not.
            if origin.startswith(scheme) and origin.endswith(suffix) and len(origin) > len(scheme) + len(suffix):
                return True
        return False

    def on_request(self, exchange) -> Reply | None:
        if exchange.method != b"OPTIONS":
            return None
        origin = exchange.header(b"origin")
        method = exchange.header(b"access-control-request-method")
        if origin is None or method is None:
            return None
        if not self.allowed(origin):
            return Reply(403, f"CORS: origin {origin.decode('latin-1')} is not allowed")
        if method.strip().upper() not in self.methods:
            return Reply(403, f"CORS: method {method.decode('latin-1')} is not allowed")
        requested = exchange.header(b"access-control-request-headers") or b""
        names = [n.strip().lower() for n in requested.split(b",") if n.strip()]
        if self.allow_headers:
            refused = [n for n in names if n not in self.allow_headers]
            if refused:
                return Reply(403, f"CORS: header {refused[0].decode('latin-1')} is not allowed")
        headers = [("Access-Control-Allow-Methods", self.allow_methods.decode()),
                   ("Access-Control-Max-Age", self.max_age.decode())]
        if names:
            headers.append(("Access-Control-Allow-Headers", b", ".join(names).decode("latin-1")))
        return Reply(204, None, headers)

    def on_response(self, exchange, head: ResponseHead) -> None:
        origin = exchange.header(b"origin")
        if origin is None or not self.allowed(origin):
            return
        # The allow headers are ours to state: a backend's own are replaced.
        if self.any_origin and not self.credentials:
            head.set(b"Access-Control-Allow-Origin", b"*")
        else:
            head.set(b"Access-Control-Allow-Origin", origin)
            head.add(b"Vary", b"Origin")  # the answer depends on the Origin asked with
        if self.credentials:
            head.set(b"Access-Control-Allow-Credentials", b"true")
        if self.expose and head.status != 204:
            head.set(b"Access-Control-Expose-Headers", self.expose)
