"""The certificate of a Parley that shares its built-in server on the network.

Made once, self-signed (an EC P-256 key, valid ten years), and kept in the profile's data
directory, so that clients that pinned it (``gui/core/pinning.py``) keep trusting it after
restarts; the key file is readable by its owner only. It names ``localhost``, ``127.0.0.1``
and this computer's addresses when it was made; clients that pin it do not check names.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gui.core.pinning import SHARED_ORGANIZATION, fingerprint, fingerprint_words

VALID_DAYS = 3650


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """Where the certificate and its key are, and its fingerprint."""

    cert_path: Path
    key_path: Path
    fingerprint: str

    @property
    def words(self) -> list[str]:
        """The fingerprint as the words clients are shown on first use."""
        return fingerprint_words(self.fingerprint)


def ensure_certificate(directory: Path, addresses: list[str] | None = None) -> ServerCertificate:
    """The certificate in ``directory``, made now if there is none (or it cannot be read)."""
    cert_path, key_path = directory / "server-cert.pem", directory / "server-key.pem"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        cert = _make(cert_path, key_path, addresses or [])
    der = cert.public_bytes(serialization.Encoding.DER)
    return ServerCertificate(cert_path, key_path, fingerprint(der))


def _make(cert_path: Path, key_path: Path, addresses: list[str]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SHARED_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Parley on {socket.gethostname()}"),
        ]
    )
    ips = {ipaddress.ip_address("127.0.0.1")}
    for address in addresses:
        try:
            ips.add(ipaddress.ip_address(address))
        except ValueError:
            continue
    alt = [x509.DNSName("localhost"), *(x509.IPAddress(ip) for ip in sorted(ips, key=str))]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert
