"""The one seam between the WebSocket transport and the hub.

The transport (``app.py``) hands every connection to a :class:`Bus`: ``open`` when it opens,
``receive`` for each frame, ``close`` when it closes. The in-process bus (``memory.py``) passes
them straight to the hub, as one server always did. The Redis bus (``redis.py``) lets several
instances serve one service: one of them holds the hub's state (the *coordinator*, a Redis
lease), the others forward their connections' frames to it and write what it sends back.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signaling.server.hub import Hub, Peer
    from signaling.server.metrics import Metrics


class BusUnavailable(Exception):
    """The bus cannot be reached at start-up; the message is one line meant for a person."""


class Bus(ABC):
    """Where a connection's frames go, and how the hub's sends reach the connection."""

    def __init__(self) -> None:
        #: Set when this instance's hub can no longer be trusted (a coordinator that lost its
        #: lease): the server stops and starts again as a new instance (``cli.run``).
        self.restart = asyncio.Event()

    @abstractmethod
    def next_id(self) -> int:
        """A connection id no other connection of the service has."""

    @abstractmethod
    async def start(self) -> None:
        """Connect; raises :class:`BusUnavailable` when the bus cannot be reached."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop forwarding (the server is stopping; its connections are closed already)."""

    @abstractmethod
    def open(self, peer: Peer) -> Any:
        """A connection opened on this instance; returns the handle ``receive`` takes."""

    @abstractmethod
    async def receive(self, conn: Any, data: str | bytes) -> None:
        """One frame from the connection, handled (or forwarded) in order."""

    @abstractmethod
    async def close(self, conn: Any) -> None:
        """The connection closed."""

    def add_gauges(self, metrics: Metrics) -> None:
        """Register what ``/metrics`` should say of this bus (nothing, in the process)."""
        return None


def bus_for(url: str | None, hub: Hub) -> Bus:
    """The bus ``--bus`` names: ``None`` for in-process, ``redis://HOST:PORT[/DB]`` for Redis.

    Raises ``ValueError`` (one line) for a URL it cannot use.
    """
    if url is None:
        from signaling.server.bus.memory import MemoryBus

        return MemoryBus(hub)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--bus takes redis://HOST:PORT, not {url!r}")
    try:
        from signaling.server.bus.redis import RedisBus
    except ImportError:
        raise ValueError("--bus redis:// needs redis-py: pip install 'parley[cluster]'") from None
    return RedisBus(url, hub)
