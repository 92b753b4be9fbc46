"""Built-in users that live inside the server (the Echo Test), speaking the protocol in-process.

A bot gets a hub :class:`Session` like any connection, but its peer is a
Python object: requests go straight to ``Hub.receive`` and replies and events
come back through ``send``. It offers the same ``request``/``on_event``
interface as the client's ``SignalingClient``, so the bot drives calls with the
very same call engine the desktop app uses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from signaling.protocol.errors import RequestError
from signaling.protocol.messages import Json
from signaling.server.hub import Hub
from signaling.server.store import UserRecord

_bot_ids = itertools.count(-1, -1)  # negative ids never collide with real connections


class HubLink:
    """A signaling link from a bot to the hub of the same process."""

    def __init__(self, hub: Hub, user: UserRecord) -> None:
        self.hub = hub
        self.id = next(_bot_ids)
        self.address = "bot"
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Json]] = {}
        self._callbacks: list[Callable[[Json], None]] = []
        self.session = hub.connect(self)
        hub.attach_bot(self.session, user)

    def send(self, message: Json) -> None:
        """Called by the hub: a reply completes its request, anything else is an event."""
        future = self._pending.pop(message.get("re", ""), None) if "re" in message else None
        if future is not None:
            if not future.done():
                future.set_result(message)
            return
        for callback in list(self._callbacks):
            callback(message)

    def on_event(self, callback: Callable[[Json], None]) -> Callable[[], None]:
        """Subscribe to events for this bot."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request through the hub; raises :class:`RequestError` on ``error``."""
        request_id = f"bot{next(self._ids)}"
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self.hub.receive(self.session, json.dumps({"type": kind, "id": request_id, **fields}))
        reply = await future
        if reply["type"] == "error":
            raise RequestError(reply["code"], reply["message"])
        return reply

    async def close(self) -> None:
        """Leave the hub."""
        await self.hub.disconnect(self.session)
