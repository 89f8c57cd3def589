"""TLS termination through real sockets: a TLS listener beside the plain one, certificates
chosen by SNI and reloaded when their files change, the protocol floor, X-Forwarded-Proto,
HSTS on TLS only, and the plain listener redirecting to https."""
from __future__ import annotations

import json
import re
import socket
import ssl

import pytest

from tests.support.certs import names_of, self_signed, serial_of
from tests.support.processes import pool_config, run_cli
from tests.support.rawhttp import ResponseReader

TLS_LISTENING = re.compile(r"listening tls address=[\d.]+:(\d+)")


def tls_port(proc) -> int:
    for line in proc.lines:
        m = TLS_LISTENING.search(line)
        if m:
            return int(m.group(1))
    raise AssertionError("no 'listening tls' line:\n" + proc.output)


def handshake(port: int, server_name: str | None, max_version=None) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: the tests read the certificate instead
    if max_version is not None:
        context.maximum_version = max_version
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname=server_name)


def get(sock: socket.socket, target: str, host: str = "a.test"):
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    (response,) = ResponseReader(sock).read()
    return response


@pytest.fixture
def certs(tmp_path):
    return {"a": self_signed(tmp_path, "a", ["a.test"]),
            "b": self_signed(tmp_path, "b", ["b.test", "*.b.test"])}


@pytest.fixture
def tls_lb(backends, fulcrum, certs):
    def start(**tls):
        (backend,) = backends(1)
        pairs = [{"cert": str(c), "key": str(k)} for c, k in certs.values()]
        config = {"pools": {"web": pool_config(backend)},
                  "tls": {"listen": "127.0.0.1:0", "certificates": pairs, **tls}}
        proc = fulcrum(config)
        return proc, tls_port(proc)
    return start


def test_tls_listener_proxies_and_says_https_to_the_backend(tls_lb):
    proc, port = tls_lb()
    with handshake(port, "a.test") as sock:
        response = get(sock, "/?echo=1")
    assert response.status == 200
    sent = {n.lower(): v for n, v in json.loads(response.body)["headers"]}
    assert sent["x-forwarded-proto"] == "https"
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as plain:  # the plain one still serves
        response = get(plain, "/?echo=1")
    sent = {n.lower(): v for n, v in json.loads(response.body)["headers"]}
    assert sent["x-forwarded-proto"] == "http"


@pytest.mark.parametrize("server_name, expected", [
    ("a.test", ["a.test"]), ("b.test", ["b.test", "*.b.test"]), ("x.b.test", ["b.test", "*.b.test"]),
    ("unknown.test", ["a.test"]), (None, ["a.test"]),  # no match, no SNI: the first certificate
])
def test_certificate_is_chosen_by_sni(tls_lb, server_name, expected):
    _, port = tls_lb()
    with handshake(port, server_name) as sock:
        assert names_of(sock.getpeercert(binary_form=True)) == expected


def test_changed_certificate_files_are_reloaded_for_new_handshakes(tls_lb, certs, tmp_path):
    proc, port = tls_lb()
    with handshake(port, "b.test") as sock:
        before = serial_of(sock.getpeercert(binary_form=True))
    renewed_cert, renewed_key = self_signed(tmp_path, "renewed", ["b.test", "*.b.test"])
    cert_path, key_path = certs["b"]
    key_path.write_bytes(renewed_key.read_bytes())
    cert_path.write_bytes(renewed_cert.read_bytes())
    expected = serial_of_pem(renewed_cert)

    def served() -> int:
        with handshake(port, "b.test") as sock:
            return serial_of(sock.getpeercert(binary_form=True))

    assert wait_for(lambda: served() == expected), (before, expected, proc.output)
    assert any("certificate reloaded" in line for line in proc.lines)


def test_minimum_version_refuses_older_clients(tls_lb):
    _, port = tls_lb(min_version="1.3")
    with pytest.raises(ssl.SSLError):
        handshake(port, "a.test", max_version=ssl.TLSVersion.TLSv1_2)
    with handshake(port, "a.test") as sock:
        assert sock.version() == "TLSv1.3"


def test_plain_listener_redirects_to_https_when_asked(tls_lb):
    proc, port = tls_lb(redirect_http=True)
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as plain:
        response = get(plain, "/path?q=1", host="a.test:8080")
    assert response.status == 308
    assert response.header("location") == f"https://a.test:{port}/path?q=1"
    with handshake(port, "a.test") as sock:
        assert get(sock, "/path").status == 200


def test_hsts_only_over_tls(backends, fulcrum, certs):
    (backend,) = backends(1)
    cert, key = certs["a"]
    proc = fulcrum({"pools": {"web": pool_config(backend)},
                    "tls": {"listen": "127.0.0.1:0", "certificates": [{"cert": str(cert), "key": str(key)}]},
                    "security_headers": {"hsts": {"max_age": 600}}})
    with handshake(tls_port(proc), "a.test") as sock:
        assert get(sock, "/").header("strict-transport-security") == "max-age=600"
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as plain:
        assert get(plain, "/").header("strict-transport-security") is None


def test_unreadable_certificate_is_a_config_error(tmp_path):
    path = tmp_path / "fulcrum.yaml"
    path.write_text(json.dumps({
        "pools": {"web": {"backends": [{"url": "http://127.0.0.1:9"}]}},
        "tls": {"certificates": [{"cert": str(tmp_path / "missing.pem"), "key": str(tmp_path / "missing.key")}]},
    }))
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 2, result
    assert "tls.certificates[0]" in result.stderr + result.stdout


def serial_of_pem(path) -> int:
    from cryptography import x509
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def wait_for(predicate, timeout: float = 10.0) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_reload_with_new_certificates_on_the_same_listener(backends, fulcrum, certs):
    # A tls change that keeps tls.listen is applied to the bound listener: no re-bind.
    import signal

    import yaml
    (backend,) = backends(1)
    pairs = [{"cert": str(c), "key": str(k)} for c, k in certs.values()]
    config = {"pools": {"web": pool_config(backend)}, "watch_config": False,
              "tls": {"listen": "127.0.0.1:0", "certificates": pairs}}
    proc = fulcrum(config)
    port = tls_port(proc)
    with handshake(port, None) as sock:
        assert names_of(sock.getpeercert(binary_form=True)) == ["a.test"]
    swapped = {**config, "listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"},
               "log": {"level": "info"}, "tls": {"listen": "127.0.0.1:0", "certificates": pairs[::-1]}}
    proc.config_path.write_text(yaml.safe_dump(swapped))
    proc.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: any("config reloaded" in line for line in proc.lines)), proc.output
    with handshake(port, None) as sock:  # the same port: the default is now b's certificate
        assert names_of(sock.getpeercert(binary_form=True)) == ["b.test", "*.b.test"]
    with handshake(port, "a.test") as sock:
        assert names_of(sock.getpeercert(binary_form=True)) == ["a.test"]
        assert get(sock, "/").status == 200


def rsa_self_signed(directory, stem: str, name: str):
    """An RSA certificate (``self_signed`` makes EC ones, with which RSA key exchange cannot happen)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def tls12_with(port: int, cipher: str) -> bool:
    """Whether a TLS 1.2 client offering only ``cipher`` completes a handshake and a request."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(cipher)
    try:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                 server_hostname="a.test") as sock:
            assert sock.cipher()[0] == cipher
            return get(sock, "/").status == 200
    except ssl.SSLError:
        return False


def test_ciphers_null_means_the_secure_default_at_start_and_after_every_reload(backends, fulcrum, tmp_path):
    # RSA key exchange (no forward secrecy) is what OpenSSL's "DEFAULT" would bring back.
    import signal

    import yaml
    (backend,) = backends(1)
    cert, key = rsa_self_signed(tmp_path, "rsa", "a.test")
    tls = {"listen": "127.0.0.1:0", "certificates": [{"cert": str(cert), "key": str(key)}], "ciphers": None}
    config = {"listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"}, "log": {"level": "info"},
              "pools": {"web": pool_config(backend)}, "watch_config": False, "tls": tls}
    proc = fulcrum(config)
    port = tls_port(proc)

    def reload(ciphers: str | None) -> None:
        before = sum("tls settings applied" in line for line in proc.lines)
        proc.config_path.write_text(yaml.safe_dump({**config, "tls": {**tls, "ciphers": ciphers}}))
        proc.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: sum("tls settings applied" in line for line in proc.lines) > before), proc.output

    assert (tls12_with(port, "AES128-GCM-SHA256"), tls12_with(port, "ECDHE-RSA-AES128-GCM-SHA256")) == (False, True)
    reload("ECDHE+AESGCM:AES128-GCM-SHA256")  # an explicit list is the operator's to choose
    assert tls12_with(port, "AES128-GCM-SHA256")
    reload(None)
    assert (tls12_with(port, "AES128-GCM-SHA256"), tls12_with(port, "ECDHE-RSA-AES128-GCM-SHA256")) == (False, True)
    assert not tls12_with(port, "ECDHE-RSA-AES128-SHA256")  # CBC is out too
