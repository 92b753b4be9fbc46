"""What the two ends of a call tell each other directly, over the call's data channel.

Chat messages with ids and delivery receipts, the sender's media state
(microphone, camera, screen on or off) so the other window can show it, and
a heartbeat so that an end that vanished is noticed even while both are muted.
Every message is one JSON object: ``{"t": "chat", "id", "text", "sent_at"}``,
``{"t": "ack", "id"}``, ``{"t": "state", "audio", "video", "screen"}``,
``{"t": "ping"}``. Unknown or malformed messages are logged and skipped.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("parley.call")

MAX_CHAT_CHARS = 4000


class DataChannel(Protocol):
    """The part of ``RTCDataChannel`` used here."""

    @property
    def readyState(self) -> str:
        """``connecting``, ``open``, ``closing`` or ``closed``."""

    @property
    def on(self) -> Callable[..., Any]:
        """Register an event handler, pyee style: ``on(event, handler)``."""

    def send(self, data: str) -> None:
        """Send one message."""


class ChatUnavailable(Exception):
    """The peer negotiated no data channel, or it is closed."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message, sent or received."""

    id: str
    text: str
    sent_at: float
    outgoing: bool


@dataclass(frozen=True, slots=True)
class PeerMediaState:
    """What the other end says it is sending."""

    audio: bool
    video: bool
    screen: bool


class PeerChannel:
    """Chat, media state and heartbeats on one data channel."""

    def __init__(
        self,
        on_chat: Callable[[ChatMessage], None] = lambda m: None,
        on_delivered: Callable[[str], None] = lambda i: None,
        on_peer_state: Callable[[PeerMediaState], None] = lambda s: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_chat = on_chat
        self.on_delivered = on_delivered
        self.on_peer_state = on_peer_state
        self.clock = clock
        self.channel: DataChannel | None = None
        self.negotiated = False
        self.last_heard = clock()
        self.undelivered: dict[str, ChatMessage] = {}
        self._queue: list[str] = []

    @property
    def is_open(self) -> bool:
        """Whether messages go out now."""
        return self.channel is not None and self.channel.readyState == "open"

    def attach(self, channel: DataChannel) -> None:
        """Use ``channel`` (made by the caller, or announced to the callee)."""
        self.channel = channel
        self.negotiated = True
        channel.on("message", self.receive)
        channel.on("open", self._flush)
        if self.is_open:
            self._flush()

    def _flush(self) -> None:
        queued, self._queue = self._queue, []
        for data in queued:
            self._send_raw(data)

    def _send_raw(self, data: str) -> None:
        if self.is_open:
            assert self.channel is not None
            try:
                self.channel.send(data)
            except Exception as exc:  # closed between the check and the send
                log.info("data channel send failed: %s", exc)
        elif self.channel is not None and self.channel.readyState == "connecting":
            self._queue.append(data)

    def _send(self, message: dict[str, Any]) -> None:
        self._send_raw(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    def send_chat(self, text: str) -> ChatMessage:
        """Send a chat message; it stays in ``undelivered`` until the peer acknowledges it."""
        if (
            not self.negotiated
            or self.channel is None
            or self.channel.readyState
            in (
                "closing",
                "closed",
            )
        ):
            raise ChatUnavailable("chat is not available in this call")
        text = text.strip()
        if not text:
            raise ValueError("empty message")
        if len(text) > MAX_CHAT_CHARS:
            raise ValueError(f"a message is at most {MAX_CHAT_CHARS} characters")
        message = ChatMessage(uuid.uuid4().hex, text, time.time(), outgoing=True)
        self.undelivered[message.id] = message
        self._send({"t": "chat", "id": message.id, "text": text, "sent_at": message.sent_at})
        return message

    def send_state(self, state: PeerMediaState) -> None:
        """Tell the peer what this end sends."""
        self._send(
            {"t": "state", "audio": state.audio, "video": state.video, "screen": state.screen}
        )

    def send_ping(self) -> None:
        """Heartbeat."""
        self._send({"t": "ping"})

    def receive(self, data: object) -> None:
        """One message from the peer."""
        self.last_heard = self.clock()
        if not isinstance(data, str):
            log.warning("skipping a binary data channel message")
            return
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("skipping a data channel message that is not JSON")
            return
        if not isinstance(message, dict):
            return
        kind = message.get("t")
        if kind == "chat":
            self._chat(message)
        elif kind == "ack":
            acked = self.undelivered.pop(str(message.get("id")), None)
            if acked is not None:
                self.on_delivered(acked.id)
        elif kind == "state":
            audio, video, screen = (message.get(k) for k in ("audio", "video", "screen"))
            if isinstance(audio, bool) and isinstance(video, bool) and isinstance(screen, bool):
                self.on_peer_state(PeerMediaState(audio, video, screen))
        elif kind != "ping":
            log.info("skipping data channel message of type %r", kind)

    def _chat(self, message: dict[str, Any]) -> None:
        msg_id, text, sent_at = message.get("id"), message.get("text"), message.get("sent_at")
        if not isinstance(msg_id, str) or not isinstance(text, str) or len(msg_id) > 64:
            log.warning("skipping a malformed chat message")
            return
        self._send({"t": "ack", "id": msg_id})
        stamp = float(sent_at) if isinstance(sent_at, int | float) else time.time()
        self.on_chat(ChatMessage(msg_id, text[:MAX_CHAT_CHARS], stamp, outgoing=False))
