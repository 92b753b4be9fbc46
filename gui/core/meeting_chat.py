"""Chat in a meeting through a media server: relayed by the signaling server.

A meeting through a media server (topology ``"sfu"``) has no peer data channel, so
chat goes to the server as ``meeting.chat`` and comes back to the others as the
``meeting.chat`` event (docs/protocol.md, v1.1). The ``ok`` reply is the delivery
receipt: the server took the message and relayed it to everyone else in the meeting.
A mesh meeting keeps chatting over each link's data channel (``peer_channel.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gui.core.meeting_machine import SendRequest
from gui.core.peer_channel import MAX_CHAT_CHARS, ChatMessage
from gui.core.peer_link import SignalingLink
from gui.core.runner import send_request

log = logging.getLogger("parley.meeting.chat")

Json = dict[str, Any]


class ServerChat:
    """Sends this end's chat through the server and reads the others' from its events."""

    def __init__(
        self,
        link: SignalingLink,
        meeting_id: str,
        delivered: Callable[[str], object],
        refused: Callable[[str, str, str], object],
    ) -> None:
        self.link = link
        self.meeting_id = meeting_id
        self._delivered = delivered
        self._refused = refused
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, text: str) -> ChatMessage:
        """Send ``text`` (``ValueError`` when empty or too long); ``delivered`` follows the
        server's ``ok``, ``refused(kind, code, message)`` its refusal."""
        text = text.strip()
        if not text:
            raise ValueError("empty message")
        if len(text) > MAX_CHAT_CHARS:
            raise ValueError(f"a message is at most {MAX_CHAT_CHARS} characters")
        message = ChatMessage(uuid.uuid4().hex, text, time.time(), outgoing=True)
        action = SendRequest(
            "meeting.chat", {"meeting_id": self.meeting_id, "chat_id": message.id, "text": text}
        )
        task = asyncio.get_running_loop().create_task(self._send(action, message.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return message

    async def _send(self, action: SendRequest, msg_id: str) -> None:
        reply = await send_request(
            self.link, action, f"meeting {self.meeting_id}", log, self._refuse
        )
        if reply is not None:
            self._delivered(msg_id)

    def _refuse(self, kind: str, code: str, message: str) -> None:
        self._refused(kind, code, message)

    def received(self, event: Json) -> tuple[str, ChatMessage] | None:
        """The sender and message of a ``meeting.chat`` event (``None`` when malformed)."""
        sender = event.get("from")
        username = sender.get("username") if isinstance(sender, dict) else None
        msg_id, text = event.get("chat_id"), event.get("text")
        if not (
            isinstance(username, str)
            and isinstance(msg_id, str)
            and isinstance(text, str)
            and 0 < len(text) <= MAX_CHAT_CHARS
        ):
            log.info("meeting %s: malformed chat event dropped", self.meeting_id)
            return None
        return username, ChatMessage(msg_id, text, _when(event.get("sent_at")), outgoing=False)

    def close(self) -> None:
        """Stop sending what is still on its way."""
        for task in list(self._tasks):
            task.cancel()


def _when(value: object) -> float:
    """The server's time of the message, or now."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()


__all__ = ["ServerChat"]
