"""What the two ends of a call tell each other directly, over the call's data channel.

Chat messages with ids and delivery receipts, the sender's media state
(microphone, camera, screen on or off) so the other window can show it, and
a heartbeat so that an end that vanished is noticed even while both are muted.
Every message is one JSON object: ``{"t": "chat", "id", "text", "sent_at"}``,
``{"t": "ack", "id"}``, ``{"t": "state", "audio", "video", "screen"}``,
``{"t": "ping"}``, and in meetings ``{"t": "past", "items": [{"id", "from", "text",
"sent_at"}, ...]}``: the chat from before this link, for a late joiner (an older peer drops
it as an unknown type), and ``{"t": "switched"}``: a call that moved into a meeting through a
media server, whose end gets the other's media through the media server now, so the call's
connection may close.

The other end may be hostile or broken, so what it sends costs little and
reaches the window only when it makes sense: a message that is binary, larger
than any Parley sends, not JSON, of an unknown type or with fields of the wrong
kind is dropped; so is everything past a token bucket (a burst of 100, then 50 a
second), before it is even parsed, so a flood cannot grow memory or hold the
event loop. Drops are counted by cause in ``dropped`` and logged at 1, 10, 100...
of each cause, never once per message. Chat text is passed on as the characters
received (never markup); displaying it as plain text is the window's part.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from signaling.protocol.fields import USERNAME_RE, is_encodable

log = logging.getLogger("parley.call")

MAX_CHAT_CHARS = 4000
#: Parley's largest message is a 4,000-character chat, JSON-escaped; nothing larger is read.
MAX_MESSAGE_CHARS = 32 * 1024
MAX_ID_CHARS = 64
#: Messages read from the peer: a burst of this many, then ``RATE_PER_S`` a second (a person
#: chatting, acks, state changes and a heartbeat every 2 s use a small part of it).
BURST = 100
RATE_PER_S = 50.0
#: Messages waiting for the channel to open (this end's own: state changes, heartbeats).
MAX_QUEUED = 256
#: A ``past`` message is cut to stay under this (a 4,000-character message escaped fits).
PAST_CHARS = 30 * 1024


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
class PastChat:
    """A meeting's chat message from before a link: who wrote it (a username), and it."""

    sender: str
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class PeerMediaState:
    """What the other end says it is sending."""

    audio: bool
    video: bool
    screen: bool


class TokenBucket:
    """At most ``burst`` at once, refilled at ``rate`` per second; the clock is the caller's."""

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def _path_up(channel: DataChannel) -> bool:
    """Whether the DTLS transport under ``channel`` is connected (true when it cannot tell)."""
    dtls = getattr(getattr(channel, "transport", None), "transport", None)
    return getattr(dtls, "state", "connected") == "connected"


class PeerChannel:
    """Chat, media state and heartbeats on one data channel."""

    def __init__(
        self,
        on_chat: Callable[[ChatMessage], None] = lambda m: None,
        on_delivered: Callable[[str], None] = lambda i: None,
        on_peer_state: Callable[[PeerMediaState], None] = lambda s: None,
        clock: Callable[[], float] = time.monotonic,
        on_past: Callable[[list[PastChat]], None] = lambda p: None,
        on_open: Callable[[], None] = lambda: None,
    ) -> None:
        self.on_chat = on_chat
        self.on_delivered = on_delivered
        self.on_peer_state = on_peer_state
        self.on_past = on_past
        self.on_open = on_open
        self.clock = clock
        self.channel: DataChannel | None = None
        self.negotiated = False
        self.last_heard = clock()
        self.undelivered: dict[str, ChatMessage] = {}
        #: Messages from the peer that were dropped, by cause: ``flood``, ``binary``,
        #: ``oversized``, ``malformed``, ``unknown``.
        self.dropped: Counter[str] = Counter()
        self._bucket = TokenBucket(BURST, RATE_PER_S, clock())
        self._queue: list[str] = []
        #: Called on ``{"t": "switched"}`` from the peer (``sfu_handover.py`` sets it).
        self.on_switched: Callable[[], None] = lambda: None

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
        try:
            self.on_open()
        except Exception:
            log.exception("data channel open handler failed")

    def _send_raw(self, data: str) -> None:
        if self.is_open:
            assert self.channel is not None
            if not _path_up(self.channel):
                # The path under the channel is down (a black hole, a lost network): aiortc
                # would fail the send in a task of its own, whose error nobody retrieves.
                return
            try:
                self.channel.send(data)
            except Exception as exc:  # closed between the check and the send
                log.info("data channel send failed: %s", exc)
        elif (
            self.channel is not None
            and self.channel.readyState == "connecting"
            and len(self._queue) < MAX_QUEUED
        ):
            self._queue.append(data)

    def _send(self, message: dict[str, Any]) -> None:
        self._send_raw(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    def send_chat(self, text: str, msg_id: str | None = None) -> ChatMessage:
        """Send a chat message; it stays in ``undelivered`` until the peer acknowledges it.

        ``msg_id``: the message's id (a meeting gives every link the same one), else new."""
        self._check_available()
        message = outgoing_chat(text, msg_id)
        self.send_message(message)
        return message

    def send_message(self, message: ChatMessage) -> None:
        """Send ``message``, made by :func:`outgoing_chat` (maybe for an earlier link: a
        meeting sends again what a participant's link closed on before they acknowledged
        it); it stays in ``undelivered`` until the peer acknowledges it."""
        self._check_available()
        self.undelivered[message.id] = message
        self._send(
            {"t": "chat", "id": message.id, "text": message.text, "sent_at": message.sent_at}
        )

    def _check_available(self) -> None:
        if (
            not self.negotiated
            or self.channel is None
            or self.channel.readyState in ("closing", "closed")
        ):
            raise ChatUnavailable("chat is not available in this call")

    def send_state(self, state: PeerMediaState) -> None:
        """Tell the peer what this end sends."""
        self._send(
            {"t": "state", "audio": state.audio, "video": state.video, "screen": state.screen}
        )

    def send_ping(self) -> None:
        """Heartbeat."""
        self._send({"t": "ping"})

    def send_switched(self) -> None:
        """Say that this end now gets the peer's media through a media server."""
        self._send({"t": "switched"})

    def send_past(self, past: list[PastChat]) -> None:
        """A meeting's chat so far, oldest first, in as few messages as fit (each under
        ``PAST_CHARS``; a late joiner's peer sends it as the channel opens)."""
        batch: list[str] = []
        size = 0
        for entry in past:
            item = json.dumps(
                {
                    "id": entry.message.id,
                    "from": entry.sender,
                    "text": entry.message.text,
                    "sent_at": entry.message.sent_at,
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            if batch and size + len(item) + 1 > PAST_CHARS:
                self._send_raw('{"t":"past","items":[' + ",".join(batch) + "]}")
                batch, size = [], 0
            batch.append(item)
            size += len(item) + 1
        if batch:
            self._send_raw('{"t":"past","items":[' + ",".join(batch) + "]}")

    def receive(self, data: object) -> None:
        """One message from the peer: acted on, or dropped and counted."""
        self.last_heard = now = self.clock()
        if not self._bucket.take(now):
            self._drop("flood")
        elif not isinstance(data, str):
            self._drop("binary")
        elif len(data) > MAX_MESSAGE_CHARS:
            self._drop("oversized")
        else:
            self._dispatch(data)

    @property
    def dropped_total(self) -> int:
        """Every message dropped so far."""
        return self.dropped.total()

    def _drop(self, cause: str) -> None:
        self.dropped[cause] += 1
        count = self.dropped[cause]
        if count == 10 ** (len(str(count)) - 1):  # 1, 10, 100, ...
            log.warning("dropped %d data channel message(s) from the peer: %s", count, cause)

    def _dispatch(self, data: str) -> None:
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            self._drop("malformed")
            return
        kind = message.get("t") if isinstance(message, dict) else None
        if kind == "chat":
            self._chat(message)
        elif kind == "ack":
            msg_id = message.get("id")
            acked = self.undelivered.pop(msg_id, None) if isinstance(msg_id, str) else None
            if acked is not None:
                self.on_delivered(acked.id)
        elif kind == "state":
            audio, video, screen = (message.get(k) for k in ("audio", "video", "screen"))
            if isinstance(audio, bool) and isinstance(video, bool) and isinstance(screen, bool):
                self.on_peer_state(PeerMediaState(audio, video, screen))
            else:
                self._drop("malformed")
        elif kind == "past":
            self._past(message.get("items"))
        elif kind == "switched":
            self.on_switched()
        elif kind != "ping":
            self._drop("unknown" if isinstance(kind, str) else "malformed")

    def _past(self, items: object) -> None:
        """Earlier chat from the peer: every well-formed item (the others are dropped)."""
        if not isinstance(items, list):
            self._drop("malformed")
            return
        past = []
        for item in items:
            sender = item.get("from") if isinstance(item, dict) else None
            message = self._valid_chat(item) if isinstance(item, dict) else None
            if message is None or not (isinstance(sender, str) and USERNAME_RE.fullmatch(sender)):
                self._drop("malformed")
                continue
            past.append(PastChat(sender, message))
        if past:
            self.on_past(past)

    def _chat(self, message: dict[str, Any]) -> None:
        chat = self._valid_chat(message)
        if chat is None:
            self._drop("malformed")
            return
        self._send({"t": "ack", "id": chat.id})
        self.on_chat(chat)

    @staticmethod
    def _valid_chat(message: dict[str, Any]) -> ChatMessage | None:
        """The chat message ``message`` holds (``None``: malformed)."""
        msg_id, text, sent_at = message.get("id"), message.get("text"), message.get("sent_at")
        if not (
            isinstance(msg_id, str)
            and 0 < len(msg_id) <= MAX_ID_CHARS
            and isinstance(text, str)
            and 0 < len(text) <= MAX_CHAT_CHARS
            and is_encodable(msg_id)  # JSON lets a lone surrogate through; printing fails
            and is_encodable(text)
        ):
            return None
        return ChatMessage(msg_id, text, _timestamp(sent_at), outgoing=False)


def outgoing_chat(text: str, msg_id: str | None = None) -> ChatMessage:
    """This end's message of ``text`` (stripped), sent now; ``msg_id`` or a new id. Raises
    ``ValueError`` when it is empty or longer than :data:`MAX_CHAT_CHARS`."""
    text = text.strip()
    if not text:
        raise ValueError("empty message")
    if len(text) > MAX_CHAT_CHARS:
        raise ValueError(f"a message is at most {MAX_CHAT_CHARS} characters")
    return ChatMessage(msg_id or uuid.uuid4().hex, text, time.time(), outgoing=True)


def _timestamp(value: object) -> float:
    """The sender's clock when it is a plausible one, else now."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            stamp = float(value)
        except OverflowError:
            return time.time()
        if math.isfinite(stamp) and 0 <= stamp < 2**33:
            return stamp
    return time.time()
