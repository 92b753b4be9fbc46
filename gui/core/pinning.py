"""Trust on first use for ``wss://`` servers with a certificate nobody vouches for, as SSH does.

A Parley shared on a LAN serves TLS with a self-signed certificate (``gui/core/server_cert.py``)
that names :data:`SHARED_ORGANIZATION`; only such a certificate, on a local address, is
trusted on first use.
No authority signs it, so a client cannot check it against one; instead, the first time it
connects to ``HOST:PORT`` it remembers the certificate's SHA-256 fingerprint (and shows it
as words, which the server's owner reads out from their own screen), and from then on it
accepts that certificate only. A different one is refused, with an explanation, and the
password is never sent: the next connection may be someone in between.

Qt-free: ``SignalingClient`` checks, the app and ``parley-cli`` say what happened.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from gui.core.verification import WORDS

log = logging.getLogger("parley.pinning")

#: Words shown for a fingerprint (8 of 256: its first 64 bits).
FINGERPRINT_WORDS = 8
#: The organisation named in the certificate of a Parley shared on a network. Only such a
#: certificate, on an address of a local network, is trusted on first use: any other
#: certificate nobody vouches for is refused as before (trust it with --trust-cert).
SHARED_ORGANIZATION = "Parley (shared on a network)"


def is_shared_parley(der: bytes) -> bool:
    """Whether the certificate says it is a shared Parley's (see :data:`SHARED_ORGANIZATION`)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        subject = x509.load_der_x509_certificate(der).subject
    except ValueError:
        return False
    names = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return any(attribute.value == SHARED_ORGANIZATION for attribute in names)


def on_local_network(host: str) -> bool:
    """Whether ``host`` is an address of this computer or a local network (or ``*.local``)."""
    if host.lower() == "localhost" or host.lower().endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def fingerprint(der: bytes) -> str:
    """The certificate's SHA-256, as lowercase hex."""
    return hashlib.sha256(der).hexdigest()


def fingerprint_words(sha256_hex: str, count: int = FINGERPRINT_WORDS) -> list[str]:
    """The first ``count`` bytes of a fingerprint as words a person can read out."""
    digest = bytes.fromhex(sha256_hex)
    return [WORDS[byte] for byte in digest[:count]]


def unverified_context() -> ssl.SSLContext:
    """TLS with no authority check: the certificate is checked against the pin afterwards."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class CertificateChanged(Exception):
    """The server shows another certificate than the one pinned for it."""


@dataclass(frozen=True, slots=True)
class Pinned:
    """What the check found: the fingerprint, and whether it was pinned just now."""

    address: str
    fingerprint: str
    first_use: bool

    @property
    def words(self) -> list[str]:
        """The fingerprint in words."""
        return fingerprint_words(self.fingerprint)


class KnownServers:
    """``HOST:PORT`` → pinned fingerprint, in a small JSON file (``known_servers.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s; no server is pinned", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def pinned(self, address: str) -> str | None:
        """The fingerprint pinned for ``address``, if any."""
        return self._load().get(address)

    def check(self, address: str, der: bytes) -> Pinned:
        """Pin ``der`` for ``address`` on first use; :class:`CertificateChanged` if it differs."""
        seen = fingerprint(der)
        known = self._load()
        pinned = known.get(address)
        if pinned is None:
            known[address] = seen
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(known, indent=2), encoding="utf-8")
            tmp.replace(self.path)
            log.info("pinned %s: %s", address, " ".join(fingerprint_words(seen)))
            return Pinned(address, seen, first_use=True)
        if pinned != seen:
            raise CertificateChanged(self.changed_text(address, pinned, seen))
        return Pinned(address, seen, first_use=False)

    def changed_text(self, address: str, pinned: str, seen: str) -> str:
        """The explanation of a refusal, in the spirit of SSH's."""
        return (
            f"the certificate of the server at {address} has changed since you first "
            f'connected: it was "{" ".join(fingerprint_words(pinned))}", it is now '
            f'"{" ".join(fingerprint_words(seen))}". Someone may be intercepting the '
            "connection, so nothing was sent. If the server's owner made a new certificate "
            "and reads you these new words from their screen, forget the old one: remove "
            f"the line for {address} from {self.path}"
        )

    def forget(self, address: str) -> bool:
        """Drop a pin (the owner confirmed a new certificate); whether there was one."""
        known = self._load()
        if known.pop(address, None) is None:
            return False
        self.path.write_text(json.dumps(known, indent=2), encoding="utf-8")
        return True
