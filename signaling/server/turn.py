"""TURN and STUN servers handed to clients, with short-lived TURN credentials (protocol v1.1).

coturn's shared-secret scheme ("TURN REST API", ``use-auth-secret``): parley-server and coturn
share a secret; for each logged-in user the server makes

- username ``EXPIRY:USERNAME``, ``EXPIRY`` the Unix time at which the credential expires,
- password ``base64(HMAC-SHA1(secret, username))``,

and coturn, which knows the secret, recomputes the password and refuses an expired username.
The secret itself never leaves the server. Clients get the list in the ``login`` (and
``register``) reply and ask again with ``ice.servers`` before it expires.

``parley-server --turn URL`` (repeatable) ``--stun URL --turn-secret-file F --turn-ttl S``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signaling.protocol.ice import ICE_TTL_MAX_S, ICE_TTL_MIN_S, check_ice_url

#: coturn's documentation and the TURN REST draft suggest a day; calls outlive an hour easily.
DEFAULT_TTL_S = 24 * 3600
_SECRET = re.compile(r"[\x21-\x7e]{16,256}")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class IceSettings:
    """The STUN and TURN servers this server hands out (none: a LAN server needs none)."""

    turn_urls: tuple[str, ...] = ()
    stun_urls: tuple[str, ...] = ()
    secret: str = field(default="", repr=False)
    ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        for url in (*self.turn_urls, *self.stun_urls):
            check_ice_url(url)
        if self.turn_urls and not self.secret:
            raise ValueError("TURN servers need the shared secret (--turn-secret-file)")
        if not ICE_TTL_MIN_S <= self.ttl_s <= ICE_TTL_MAX_S:
            raise ValueError(f"the TTL must be {ICE_TTL_MIN_S} to {ICE_TTL_MAX_S} seconds")

    @property
    def enabled(self) -> bool:
        """Whether there is anything to hand out."""
        return bool(self.turn_urls or self.stun_urls)


def turn_credential(secret: str, username: str, expires_at: int) -> tuple[str, str]:
    """coturn's REST credential for ``username``, valid until the Unix time ``expires_at``."""
    name = f"{expires_at}:{username}"
    digest = hmac.new(secret.encode("utf-8"), name.encode("utf-8"), hashlib.sha1).digest()
    return name, base64.b64encode(digest).decode("ascii")


def ice_servers(settings: IceSettings, username: str, now: float) -> Json:
    """The reply fields for ``username`` at ``now``: ``ice_servers`` (RTCIceServer objects)
    and ``ice_ttl`` (seconds they are valid)."""
    servers: list[Json] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls:
        name, password = turn_credential(settings.secret, username, int(now) + settings.ttl_s)
        servers.append({"urls": list(settings.turn_urls), "username": name, "credential": password})
    return {"ice_servers": servers, "ice_ttl": settings.ttl_s}


def read_turn_secret(path: Path) -> str:
    """The shared secret in ``path`` (its first line): 16 to 256 printable characters."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the TURN secret file {path}: {exc}") from None
    lines = text.strip().splitlines()
    secret = lines[0].strip() if lines else ""
    if not _SECRET.fullmatch(secret):
        raise ValueError(
            f"the TURN secret in {path} must be 16 to 256 printable characters, no spaces"
        )
    return secret


# Command line -------------------------------------------------------------------------------


def _url(scheme: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        try:
            check_ice_url(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not text.startswith(scheme):
            raise argparse.ArgumentTypeError(f"'{text}' is not a {scheme}: URL")
        return text

    return check


def _ttl(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of seconds") from None
    if not ICE_TTL_MIN_S <= value <= ICE_TTL_MAX_S:
        raise argparse.ArgumentTypeError(f"from {ICE_TTL_MIN_S} to {ICE_TTL_MAX_S} seconds")
    return value


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--turn``, ``--stun``, ``--turn-secret-file``, ``--turn-ttl``."""
    parser.add_argument(
        "--turn",
        type=_url("turn"),
        action="append",
        default=[],
        metavar="URL",
        help="a TURN server clients may relay through, e.g. turn:HOST:3478?transport=udp, "
        "turn:HOST:3478?transport=tcp, turns:HOST:5349; repeat for several. Clients get "
        "short-lived credentials made with --turn-secret-file (coturn's use-auth-secret)",
    )
    parser.add_argument(
        "--stun",
        type=_url("stun"),
        action="append",
        default=[],
        metavar="URL",
        help="a STUN server clients learn their public address from, e.g. stun:HOST:3478",
    )
    parser.add_argument(
        "--turn-secret-file",
        type=Path,
        metavar="F",
        help="file whose first line is the secret shared with coturn (static-auth-secret)",
    )
    parser.add_argument(
        "--turn-ttl",
        type=_ttl,
        default=DEFAULT_TTL_S,
        metavar="S",
        help=f"seconds a TURN credential is valid; clients renew before (default: {DEFAULT_TTL_S})",
    )


def settings_from_args(args: argparse.Namespace) -> IceSettings | None:
    """The ICE settings of the command line, or ``None``; ``ValueError`` for a person."""
    if not args.turn:
        if args.turn_secret_file is not None:
            raise ValueError("--turn-secret-file needs --turn")
        if not args.stun:
            return None
        return IceSettings((), tuple(args.stun), "", args.turn_ttl)
    if args.turn_secret_file is None:
        raise ValueError("--turn needs --turn-secret-file (the secret shared with coturn)")
    secret = read_turn_secret(args.turn_secret_file)
    return IceSettings(tuple(args.turn), tuple(args.stun), secret, args.turn_ttl)
