"""ICE servers handed out by the server (protocol v1.1): URLs, the reply fields, the request.

The ``login`` and ``register`` replies of a server that has STUN or TURN servers carry
``ice_servers`` (a list of RTCIceServer objects: ``urls``, and for TURN ``username`` and
``credential``) and ``ice_ttl`` (seconds the credentials are valid), and ``features`` holds
``ice``. ``ice.servers`` (no fields) answers the same two fields with fresh credentials; a
client asks before ``ice_ttl`` runs out. Pure definitions, registered by
:mod:`signaling.protocol.messages` beside its own parsers; both sides check with these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from signaling.protocol.constants import RequestType

#: The ``features`` word of a server that hands out ICE servers.
ICE_FEATURE = "ice"
#: Bounds of ``ice_ttl`` (and of ``parley-server --turn-ttl``).
ICE_TTL_MIN_S = 60
ICE_TTL_MAX_S = 7 * 24 * 3600
#: What a client accepts from a server: at most this many servers and URLs each.
MAX_ICE_SERVERS = 8
MAX_ICE_URLS = 8
MAX_ICE_FIELD_CHARS = 512

# RFC 7064 (stun:, stuns:) and RFC 7065 (turn:, turns: with ?transport=udp|tcp), a host name,
# an IPv4 address or a bracketed IPv6 address, an optional port.
_ICE_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):"
    r"(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)


def check_ice_url(url: str) -> str:
    """``url`` if it is a STUN or TURN URL Parley can use, else ``ValueError`` saying why."""
    match = _ICE_URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise ValueError(
            f"'{url}' is not a stun:, turn: or turns: URL (HOST[:PORT][?transport=udp|tcp])"
        )
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"'{url}': a port is from 1 to 65535")
    if match["scheme"].startswith("stun") and match["transport"]:
        raise ValueError(f"'{url}': a STUN URL has no transport")
    if match["scheme"] == "turns" and match["transport"] == "udp":
        raise ValueError(f"'{url}': turns: (TLS) runs over TCP")
    return url


@dataclass(frozen=True, slots=True)
class IceServers:
    """Ask for the ICE servers again (fresh TURN credentials)."""


ICE_PARSERS = {RequestType.ICE_SERVERS: lambda f: IceServers()}


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ICE_FIELD_CHARS:
        raise ValueError(f"{what} is not a string of 1 to {MAX_ICE_FIELD_CHARS} characters")
    return value


def parse_ice_servers(reply: dict[str, Any]) -> tuple[list[dict[str, Any]], int] | None:
    """``(servers, ttl)`` from a reply's ``ice_servers`` and ``ice_ttl``, each server
    ``{"urls": [...], "username"?, "credential"?}`` with checked URLs; ``None`` when the reply
    has none (a v1 server, or one without ICE servers). ``ValueError`` when they are malformed.
    """
    if "ice_servers" not in reply:
        return None
    raw, ttl = reply["ice_servers"], reply.get("ice_ttl")
    if not isinstance(raw, list) or len(raw) > MAX_ICE_SERVERS:
        raise ValueError(f"ice_servers is not a list of at most {MAX_ICE_SERVERS}")
    if type(ttl) is not int or not ICE_TTL_MIN_S <= ttl <= ICE_TTL_MAX_S:
        raise ValueError(f"ice_ttl is not a whole number from {ICE_TTL_MIN_S} to {ICE_TTL_MAX_S}")
    servers = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("an ICE server is not an object")
        urls = item.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not 0 < len(urls) <= MAX_ICE_URLS:
            raise ValueError(f"urls is not a list of 1 to {MAX_ICE_URLS} URLs")
        server: dict[str, Any] = {"urls": [check_ice_url(_text(u, "a URL")) for u in urls]}
        turn = any(u.startswith("turn") for u in server["urls"])
        if turn or "username" in item or "credential" in item:
            server["username"] = _text(item.get("username"), "username")
            server["credential"] = _text(item.get("credential"), "credential")
        servers.append(server)
    return servers, ttl
