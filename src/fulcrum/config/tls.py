"""TLS termination settings: a second listener speaking TLS, certificates chosen by SNI,
protocol floor and ciphers, and an optional redirect of the plain listener to HTTPS."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from fulcrum.config.sections import Section


class CertificateConfig(Section):
    """A certificate chain and its key (PEM files); served for the names it covers."""

    cert: str = Field(min_length=1)
    key: str = Field(min_length=1)
    # Names this pair answers for in SNI; default: the certificate's DNS names (SAN, else CN).
    # "*.example.com" matches one label, as certificates do.
    server_names: list[str] | None = None


class TlsConfig(Section):
    """The TLS listener. The first certificate is the default (no SNI, or no name matched)."""

    listen: str = "127.0.0.1:8443"
    certificates: list[CertificateConfig] = Field(min_length=1)
    min_version: Literal["1.2", "1.3"] = "1.2"
    # OpenSSL cipher list for TLS 1.2; null = Fulcrum's secure default, ECDHE with AEAD only
    # ("ECDHE+AESGCM:ECDHE+CHACHA20", proxy/tls.py SECURE_CIPHERS), at start and on every reload.
    ciphers: str | None = None
    redirect_http: bool = False         # the plain listener answers 308 to https://
