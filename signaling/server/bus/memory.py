"""One process, its own coordinator: connections go straight to the hub (no forwarding)."""

from __future__ import annotations

import itertools
from typing import override

from signaling.server.bus.base import Bus
from signaling.server.hub import Hub, Peer, Session


class MemoryBus(Bus):
    """Today's single server: ``open``/``receive``/``close`` are the hub's own calls."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self._ids = itertools.count(1)

    @override
    def next_id(self) -> int:
        return next(self._ids)

    @override
    async def start(self) -> None:
        if self.hub.meetings.sfu is not None:  # meetings through a media server
            await self.hub.meetings.sfu.start()

    @override
    async def stop(self) -> None:
        return None

    @override
    def open(self, peer: Peer) -> Session:
        return self.hub.connect(peer)

    @override
    async def receive(self, conn: Session, data: str | bytes) -> None:
        await self.hub.receive(conn, data)

    @override
    async def close(self, conn: Session) -> None:
        await self.hub.disconnect(conn)
