"""Guest links as the client sees them: the address to hand a guest (Qt-free, no I/O).

The server answers ``guest_link.create`` with the link's ``path`` (``/g/CODE``); the page
is served on the signaling server's own port, over TLS when the WebSocket is ``wss://``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def guest_link_url(server_url: str, path: str) -> str:
    """The page's address for ``path`` on the server at ``server_url`` (``ws[s]://HOST:PORT/ws``)."""
    parts = urlsplit(server_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, path, "", ""))
