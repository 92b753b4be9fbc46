"""Built-in users inside the server process (the Echo Test), speaking the protocol in-process.

The server knows a bot only as ``signaling.protocol.bots.Bot``: a composition root
(``parley-server``'s command line, the app's built-in server) hands bots to
``SignalingServer``, which logs each in as its built-in user on a :class:`HubLink` and
closes it at the end. The bots themselves are clients of the protocol and live in the
client package (``gui/bots``), so that nothing here imports the client.

A :class:`HubLink` gets a hub :class:`Session` like any connection, but its peer is a
Python object: requests go straight to ``Hub.receive`` and replies and events come back
through ``send``. It offers the same ``request``/``on_event`` interface as the client's
``SignalingClient``, so a bot drives calls with the very same call engine the desktop
app uses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from signaling.protocol.bots import Bot
from signaling.protocol.constants import ECHO_USERNAME, EventType
from signaling.protocol.errors import RequestError
from signaling.protocol.messages import Json, event_message
from signaling.server.calls import Call, CallPhase
from signaling.server.hub import ECHO_USER, Hub
from signaling.server.logs import log_event
from signaling.server.store import UserRecord

_bot_ids = itertools.count(-1, -1)  # negative ids never collide with real connections

#: The users a bot may log in as: the server's own accounts, which no one can log in to.
BUILTIN_USERS = {ECHO_USER.username: ECHO_USER}


def take_over_call(hub: Hub, call: Call) -> bool:
    """A call to the Echo Test that another instance of the service carried until it died
    (``bus/redis.py``): this process's bot is told the call as a party logging in again is
    (``call.incoming`` while it rings, else ``call.accepted``) and carries it on by a restart
    inside the call (``gui.core.call_session.CallSession.taken_over``). ``False``: this
    process has no bot to take it (``--no-echo``)."""
    bot = next((s for s in hub.by_user.get(ECHO_USERNAME, ()) if s.bot), None)
    if bot is None or call.callee != ECHO_USERNAME:
        return False
    if call.phase is CallPhase.RINGING:
        caller = UserRecord(call.caller, call.caller).public()
        message = event_message(
            EventType.CALL_INCOMING,
            call_id=call.call_id,
            media=call.media.to_json(),
            **{"from": caller},
        )
    else:
        call.bind(ECHO_USERNAME, bot.id)  # in place of the dead process's bot
        message = event_message(
            EventType.CALL_ACCEPTED, call_id=call.call_id, peer=call.caller, role="callee"
        )
    log_event("call.taken_over", call=call.call_id, user=ECHO_USERNAME)
    hub.send(bot, message)
    return True


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

    @classmethod
    def for_bot(cls, hub: Hub, bot: Bot) -> HubLink:
        """A link logged in as ``bot``'s built-in user; ``ValueError`` if there is no such user."""
        user = BUILTIN_USERS.get(bot.username)
        if user is None:
            raise ValueError(f"{bot.username!r} is not a built-in user")
        return cls(hub, user)

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
