"""Meetings through a media server (protocol v1.1, topology ``"sfu"``): the relay requests.

The media server (Janus) is not reachable by clients for signalling: the signaling
server relays plain JSEP between each participant and it. A participant *publishes* one
peer connection (its offer, the server's answer) and *subscribes* to each other
participant's publication (the server's offer, its answer). Pure definitions and
parsers, registered by :mod:`signaling.protocol.messages` beside its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signaling.protocol.constants import RequestType
from signaling.protocol.errors import bad_message
from signaling.protocol.fields import Fields

Json = dict[str, Any]

#: Participants of a meeting through a media server, by default.
SFU_CAPACITY = 16
#: The ``features`` word a server with a media server adds to the login reply.
SFU_FEATURE = "sfu"


@dataclass(frozen=True, slots=True)
class SfuPublish:
    """Publish this participant's media: an offer, answered in the ``ok`` reply."""

    meeting_id: str
    description: Json


@dataclass(frozen=True, slots=True)
class SfuSubscribe:
    """Receive ``username``'s publication: the ``ok`` reply carries the server's offer."""

    meeting_id: str
    username: str


@dataclass(frozen=True, slots=True)
class SfuAnswer:
    """The answer to the offer of a subscription to ``username``."""

    meeting_id: str
    username: str
    description: Json


@dataclass(frozen=True, slots=True)
class SfuTrickle:
    """An ICE candidate for the publication (``username`` ``None``) or a subscription."""

    meeting_id: str
    username: str | None
    candidate: Json


@dataclass(frozen=True, slots=True)
class SfuVideo:
    """Whether the media server sends ``username``'s video to this participant now."""

    meeting_id: str
    username: str
    on: bool


SfuRequest = SfuPublish | SfuSubscribe | SfuAnswer | SfuTrickle | SfuVideo


def _description(f: Fields, kind: str) -> Json:
    from signaling.protocol.messages import _parse_description  # here: messages imports this module

    description = _parse_description(f)
    if description is None:
        raise bad_message("'description' is required")
    if description["type"] != kind:
        raise bad_message(f"'description' must be an {kind}")
    return description


def _candidate(f: Fields) -> Json:
    from signaling.protocol.messages import _parse_candidate  # here: messages imports this module

    candidate = _parse_candidate(f)
    if candidate is None:
        raise bad_message("'candidate' is required")
    return candidate


def _trickle(f: Fields) -> SfuTrickle:
    username = f.username("username") if f.has("username") else None
    return SfuTrickle(f.call_id("meeting_id"), username, _candidate(f))


SFU_PARSERS: dict[RequestType, Callable[[Fields], SfuRequest]] = {
    RequestType.SFU_PUBLISH: lambda f: SfuPublish(
        f.call_id("meeting_id"), _description(f, "offer")
    ),
    RequestType.SFU_SUBSCRIBE: lambda f: SfuSubscribe(
        f.call_id("meeting_id"), f.username("username")
    ),
    RequestType.SFU_ANSWER: lambda f: SfuAnswer(
        f.call_id("meeting_id"), f.username("username"), _description(f, "answer")
    ),
    RequestType.SFU_TRICKLE: _trickle,
    RequestType.SFU_VIDEO: lambda f: SfuVideo(
        f.call_id("meeting_id"), f.username("username"), f.boolean("on")
    ),
}


__all__ = [
    "SFU_CAPACITY",
    "SFU_FEATURE",
    "SFU_PARSERS",
    "SfuAnswer",
    "SfuPublish",
    "SfuRequest",
    "SfuSubscribe",
    "SfuTrickle",
    "SfuVideo",
]
