"""Guest links as the client sees them (Qt-free): make, list and revoke them; their address.

The server answers ``guest_link.create`` with the link's ``path`` (``/g/CODE``); the page
is served on the signaling server's own port, over TLS when the WebSocket is ``wss://``.
The code in it is secret and shown once: callers hand the address to the user, never log it.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

Json = dict[str, Any]
#: How long a link may admit guests, in seconds (the server's limits).
MIN_EXPIRY_S = 60
MAX_EXPIRY_S = 7 * 24 * 3600


class Requester(Protocol):
    """The part of the signaling client used here."""

    url: str

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request; return the ``ok`` reply or raise."""


def guest_link_url(server_url: str, path: str) -> str:
    """The page's address for ``path`` on the server at ``server_url`` (``ws[s]://HOST:PORT/ws``)."""
    parts = urlsplit(server_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


async def create_link(
    client: Requester, meeting_id: str | None = None, expires_in: int | None = None
) -> Json:
    """A new link (a GuestLink without its code) with its ``url``: for a call, or a meeting."""
    fields: Json = {}
    if meeting_id:
        fields["meeting_id"] = meeting_id.lower()
    if expires_in is not None:
        fields["expires_in"] = expires_in
    link: Json = (await client.request("guest_link.create", **fields))["link"]
    url = guest_link_url(client.url, link.pop("path"))
    link.pop("code", None)
    return {"url": url, **link}


async def list_links(client: Requester) -> list[Json]:
    """The user's links that still admit guests."""
    return list((await client.request("guest_link.list"))["links"])


async def revoke_link(client: Requester, link_id: str) -> None:
    """Turn a link off; the guests it admitted are sent away."""
    await client.request("guest_link.revoke", link_id=link_id.lower())
