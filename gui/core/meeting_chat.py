"""A meeting's chat: what this end keeps of it, and chat relayed by the signaling server.

A meeting through a media server (topology ``"sfu"``) has no peer data channel, so
chat goes to the server as ``meeting.chat`` and comes back to the others as the
``meeting.chat`` event (docs/protocol.md, v1.1). The ``ok`` reply is the delivery
receipt: the server took the message and relayed it to everyone else in the meeting.
A mesh meeting keeps chatting over each link's data channel (``peer_channel.py``).

Whoever joins late (or comes back after a drop) sees the chat so far, the newest
:data:`HISTORY_SIZE` messages, each once (:class:`ChatLog`, one per meeting session):
through a media server the server replays what it relayed (``meeting.chat`` events marked
``history``); in a mesh, where the server never sees the chat, each participant sends its
log over the new link's data channel (``past``), so it stays end-to-end. A participant
can only vouch first-hand for someone present: what a present participant wrote is taken
from them only (:func:`vouched`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
import uuid
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from gui.core.meeting_machine import SendRequest
from gui.core.peer_channel import MAX_CHAT_CHARS, ChatMessage, PastChat
from gui.core.peer_link import SignalingLink
from gui.core.runner import send_request

log = logging.getLogger("parley.meeting.chat")

#: What the chat says at its top to someone who joined a meeting after it moved from end to end
#: to a media server (``MeetingMachine.end_to_end_before``): the messages from before were
#: end-to-end encrypted, so the server never had them to replay, and they are not uploaded
#: later (docs/protocol.md, "The chat so far").
NOT_SHOWN_END_TO_END = (
    "Messages sent before you joined, while the meeting was end-to-end encrypted, are not shown."
)

Json = dict[str, Any]

#: How many of a meeting's newest messages a late joiner gets (the server keeps as many).
HISTORY_SIZE = 100


class ChatLog:
    """The meeting's chat as this end has it: the newest ``size`` messages in order of
    sending, each id once (a message arriving again, live or as history, is not new)."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self.size = size
        self._entries: list[PastChat] = []
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._ids

    def add(self, sender: str, message: ChatMessage) -> bool:
        """Keep ``message`` by ``sender``; ``False`` when it is known already, or older than
        every message kept once the log is full."""
        if message.id in self._ids:
            return False
        entries = self._entries
        if len(entries) >= self.size and message.sent_at < entries[0].message.sent_at:
            return False
        at = bisect.bisect_right(entries, message.sent_at, key=lambda e: e.message.sent_at)
        entries.insert(at, PastChat(sender, message))
        self._ids.add(message.id)
        while len(self._entries) > self.size:
            self._ids.discard(self._entries.pop(0).message.id)
        return True

    def past(self) -> list[PastChat]:
        """Every message kept, oldest first."""
        return list(self._entries)


def vouched(entry: PastChat, relayed_by: str, me: str, present: Collection[str]) -> bool:
    """Whether a message ``relayed_by`` a participant is taken as history: its own, this
    end's, or one by someone no longer in the meeting. What a present participant wrote is
    taken from them only, so nobody can put words in the mouth of someone present."""
    return entry.sender in (relayed_by, me) or entry.sender not in present


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


__all__ = ["HISTORY_SIZE", "NOT_SHOWN_END_TO_END", "ChatLog", "ServerChat", "vouched"]
