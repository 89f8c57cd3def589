"""TLS termination: one SSLContext per certificate, picked by SNI, and reloaded when its
files change (checked by the listener's sweeper, so a renewed certificate is served to new
handshakes without a restart; established connections keep theirs).

Ciphers (TLS 1.2; TLS 1.3 suites are all AEAD with forward secrecy): ``ciphers`` when
configured, else ``SECURE_CIPHERS``, at start and on every reload alike, so a reload never
brings back what the default leaves out (RSA key exchange, CBC, SHA-1).
"""
from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

log = logging.getLogger("fulcrum.tls")

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# ``tls.ciphers: null``: ECDHE key exchange (forward secrecy) with AEAD ciphers only.
SECURE_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def certificate_names(cert_path: str) -> list[str]:
    """The DNS names a PEM certificate covers: its SAN DNS entries, else its CN."""
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower() for n in names]


@dataclass
class _Pair:
    cert: str
    key: str
    names: list[str]
    context: ssl.SSLContext
    stamp: tuple = field(default=())


class TlsTerminator:
    """The SSLContexts of the TLS listener; raises ValueError naming a file that won't load."""

    def __init__(self, certificates, min_version: str = "1.2", ciphers: str | None = None) -> None:
        self.min_version = _VERSIONS[min_version]
        self.ciphers = ciphers or SECURE_CIPHERS
        self.pairs: list[_Pair] = []
        for i, c in enumerate(certificates):
            try:
                names = [n.lower() for n in c.server_names] if c.server_names else certificate_names(c.cert)
                pair = _Pair(c.cert, c.key, names, self._context(c.cert, c.key), _stamp(c.cert, c.key))
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ValueError(f"certificates[{i}]: cannot load {c.cert} / {c.key}: {exc}") from exc
            self.pairs.append(pair)
        self.by_name = self._index()
        self.context = self.pairs[0].context  # the listener's: the default pair, with the SNI hook
        self.context.sni_callback = self._pick

    def _context(self, cert: str, key: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self.min_version
        context.set_ciphers(self.ciphers)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _index(self) -> dict[str, ssl.SSLContext]:
        index: dict[str, ssl.SSLContext] = {}
        for pair in self.pairs:
            for name in pair.names:
                index.setdefault(name, pair.context)
        return index

    def _pick(self, sock: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        if not server_name:
            return None  # the default certificate
        name = server_name.lower()
        context = self.by_name.get(name)
        if context is None and "." in name:
            context = self.by_name.get("*." + name.split(".", 1)[1])
        if context is not None and context is not sock.context:
            sock.context = context
        return None

    def adopt(self, listener: ssl.SSLContext) -> None:
        """Serve from a listener already bound with another terminator's context (a reload
        that kept ``tls.listen``): new handshakes get this version, floor and ciphers and
        these certificates; connections already open keep theirs. Nothing is re-bound."""
        listener.minimum_version = self.min_version
        listener.set_ciphers(self.ciphers)
        default = self.pairs[0]
        listener.load_cert_chain(default.cert, default.key)
        listener.set_alpn_protocols(["http/1.1"])
        default.context = self.context = listener
        self.by_name = self._index()
        listener.sni_callback = self._pick

    def reload_changed(self) -> None:
        """Reload every pair whose files changed; a pair that fails to load keeps the old one."""
        changed = False
        for pair in self.pairs:
            try:
                stamp = _stamp(pair.cert, pair.key)
                if stamp == pair.stamp:
                    continue
                fresh = self._context(pair.cert, pair.key)
            except (OSError, ssl.SSLError) as exc:
                log.error("certificate reload failed", extra={"fields": {"cert": pair.cert, "error": str(exc)}})
                continue
            if pair is self.pairs[0]:
                # The listener's own context holds the SNI hook; load the new chain into it.
                pair.context.load_cert_chain(pair.cert, pair.key)
            else:
                pair.context = fresh
            pair.stamp = stamp
            changed = True
            log.info("certificate reloaded", extra={"fields": {"cert": pair.cert, "names": pair.names}})
        if changed:
            self.by_name = self._index()


def _stamp(*paths: str) -> tuple:
    return tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)
