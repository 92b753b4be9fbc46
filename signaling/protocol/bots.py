"""The contract between a server and the built-in users plugged into it (the Echo Test).

Both sides hold to it without importing each other: the server (``signaling.server``)
starts a :class:`Bot` on a :class:`Link` it makes, and the bots, written as clients in
``gui/bots``, are :class:`Bot`\\ s that signal through whatever :class:`Link` they are
given. Typing only: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from signaling.protocol.messages import Json


class Link(Protocol):
    """A logged-in signaling connection as a bot sees it (a ``SignalingClient`` offers the same)."""

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request; return the ``ok`` reply or raise ``RequestError``."""

    def on_event(self, callback: Callable[[Json], None]) -> Callable[[], None]:
        """Subscribe to server events; returns the unsubscribe function."""


class Bot(Protocol):
    """A built-in user: who it is, and to start and stop it."""

    @property
    def username(self) -> str:
        """The built-in user it answers as (one the server knows, today ``echo``)."""

    async def start(self, link: Link) -> None:
        """Begin serving on ``link`` (logged in already); called once, on the server's loop."""

    async def close(self) -> None:
        """End whatever it is doing; the link is closed after."""
