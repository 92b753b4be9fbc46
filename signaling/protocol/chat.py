"""Chat relayed by the server in a meeting (protocol v1.1, ``meeting.chat``).

A mesh meeting chats over each link's data channel; a meeting through a media
server has no peer data channel, so its participants (guests too) send chat to
the server, which relays it to everyone else in the meeting. Pure definitions and
parsers, registered by :mod:`signaling.protocol.messages` beside its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from signaling.protocol.constants import RequestType
from signaling.protocol.errors import bad_message
from signaling.protocol.fields import Fields, has_control_characters

#: As a call's chat over the data channel (gui/core/peer_channel.py).
MAX_CHAT_CHARS = 4000
#: The sender's own id of a message (a hex UUID in Parley's apps; any short token here).
CHAT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class MeetingChat:
    """One chat message to everyone else in the meeting."""

    meeting_id: str
    #: The sender's own id of the message (``id`` is the request's).
    chat_id: str
    text: str


def _parse_chat(f: Fields) -> MeetingChat:
    meeting_id = f.call_id("meeting_id")
    chat_id = f.required_text("chat_id", min_len=1, max_len=64)
    if not CHAT_ID_RE.fullmatch(chat_id):
        raise bad_message("'chat_id' must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")
    text = f.required_text("text", min_len=1, max_len=MAX_CHAT_CHARS)
    if not text.strip():
        raise bad_message("'text' must not be blank")
    if any(_hidden(char) for char in text):
        raise bad_message("'text' must not contain control or invisible format characters")
    return MeetingChat(meeting_id, chat_id, text)


def _hidden(char: str) -> bool:
    """Format (Cf) characters and controls other than line breaks and tabs: chat text may
    span lines, but bidirectional overrides and zero-width characters spoof what is shown."""
    return char not in "\n\t" and has_control_characters(char)


CHAT_PARSERS: dict[RequestType, Callable[[Fields], MeetingChat]] = {
    RequestType.MEETING_CHAT: _parse_chat,
}

__all__ = ["CHAT_ID_RE", "CHAT_PARSERS", "MAX_CHAT_CHARS", "MeetingChat"]
