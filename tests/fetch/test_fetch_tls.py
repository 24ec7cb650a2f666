"""HTTPS through the guarded backend: the socket goes to the checked IP, while SNI, the
certificate check and the Host header keep the host name from the URL."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from champipy.errors import RemoteFailed
from champipy.fetch import SafeFetcher

from .conftest import fetch_settings
from .server import LocalServer

HOST = "images.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer: str, public_key, signing_key, *, ca: bool, dns: str | None = None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for HOST signed by it: (ca, cert, key) PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("champipy test CA", "champipy test CA", ca_key.public_key(), ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = _certificate(HOST, "champipy test CA", leaf_key.public_key(), ca_key, ca=False, dns=HOST)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_server(jpeg: bytes, pki: tuple[Path, Path, Path]) -> Iterator[LocalServer]:
    _, cert, key = pki
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with LocalServer(jpeg, ssl_context=context) as running:
        yield running


def _client_context(pki: tuple[Path, Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki[0]))


def test_https_uses_the_url_host_name_for_sni_and_host_header(
    tls_server: LocalServer, pki: tuple[Path, Path, Path], jpeg: bytes
) -> None:
    settings = fetch_settings(allow=HOST)
    with SafeFetcher(settings, resolver=lambda host, port: ["127.0.0.1"], ssl_context=_client_context(pki)) as fetcher:
        fetched = fetcher.fetch(tls_server.url("/img.jpg", host=HOST))
    assert fetched.data == jpeg
    assert fetched.final_url == f"https://{HOST}:{tls_server.port}/img.jpg"
    seen = tls_server.requests[0]
    assert seen.sni == HOST
    assert seen.headers["Host"] == f"{HOST}:{tls_server.port}"


def test_certificate_for_another_name_is_refused(tls_server: LocalServer, pki: tuple[Path, Path, Path]) -> None:
    settings = fetch_settings(allow="other.test")
    with SafeFetcher(settings, resolver=lambda host, port: ["127.0.0.1"], ssl_context=_client_context(pki)) as fetcher:
        with pytest.raises(RemoteFailed, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            fetcher.fetch(tls_server.url("/img.jpg", host="other.test"))
    assert tls_server.requests == []


def test_untrusted_certificate_is_refused_by_default(tls_server: LocalServer) -> None:
    settings = fetch_settings(allow=HOST)
    with SafeFetcher(settings, resolver=lambda host, port: ["127.0.0.1"]) as fetcher:
        with pytest.raises(RemoteFailed, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            fetcher.fetch(tls_server.url("/img.jpg", host=HOST))
