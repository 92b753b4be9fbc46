"""The protocol's messages as typed values, and their wire form.

``decode_request`` turns one received frame into a typed request (or raises
:class:`ProtocolError` with the right code and, when it could be read, the
request's ``id``); the ``*_message`` functions build what the server sends.
Pure functions, no I/O: both the server and the client use them, and the
tests drive them without a socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signaling.protocol.account import ACCOUNT_PARSERS
from signaling.protocol.chat import CHAT_PARSERS
from signaling.protocol.constants import (
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MAX_CLIENT_FEATURES,
    MAX_ID_LENGTH,
    MAX_INVITEES,
    MAX_TITLE_CHARS,
    SETTABLE_PRESENCE,
    ErrorCode,
    EventType,
    Presence,
    RequestType,
)
from signaling.protocol.errors import ProtocolError, bad_message
from signaling.protocol.fields import Fields, is_encodable
from signaling.protocol.guests import GUEST_PARSERS
from signaling.protocol.ice import ICE_PARSERS
from signaling.protocol.sfu import SFU_PARSERS

Json = dict[str, Any]

SDP_TYPES = frozenset({"offer", "answer", "pranswer", "rollback"})
HANGUP_REASONS = frozenset({"failed"})
MAX_SDP_CHARS = 60_000
MAX_CANDIDATE_CHARS = 1024
#: v1.1: a restart's token on ``rtc.signal`` (a call's fresh peer connection).
MAX_RESTART_CHARS = 32
MAX_MID_CHARS = 64


@dataclass(frozen=True, slots=True)
class Media:
    """What a call carries."""

    audio: bool
    video: bool

    def to_json(self) -> Json:
        """The wire form."""
        return {"audio": self.audio, "video": self.video}


@dataclass(frozen=True, slots=True)
class Register:
    """Create an account and log in."""

    username: str
    password: str
    display_name: str | None
    #: What the client understands (v1.1: ``meetings``); unknown words are ignored.
    features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Login:
    """Log in with a password or with a token."""

    username: str | None
    password: str | None
    token: str | None
    #: What the client understands (v1.1: ``meetings``); unknown words are ignored.
    features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Logout:
    """Revoke this connection's token."""


@dataclass(frozen=True, slots=True)
class ContactsList:
    """List one's contacts."""


@dataclass(frozen=True, slots=True)
class ContactsRequest:
    """Ask to become contacts (or accept the other side's request)."""

    username: str


@dataclass(frozen=True, slots=True)
class ContactsAccept:
    """Accept a pending incoming request."""

    username: str


@dataclass(frozen=True, slots=True)
class ContactsRemove:
    """Remove a contact or decline a request."""

    username: str


@dataclass(frozen=True, slots=True)
class UsersSearch:
    """Find users by prefix of username or display name."""

    query: str


@dataclass(frozen=True, slots=True)
class PresenceSet:
    """Choose online, away or dnd."""

    status: Presence


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    """Change one's display name."""

    display_name: str


@dataclass(frozen=True, slots=True)
class CallInvite:
    """Ring a contact."""

    to: str
    call_id: str
    media: Media


@dataclass(frozen=True, slots=True)
class CallAction:
    """``call.accept``, ``call.decline``, ``call.cancel`` or ``call.hangup``."""

    call_id: str
    #: ``call.hangup`` with reason ``failed``: the sender's end could not use the call.
    failed: bool = False


@dataclass(frozen=True, slots=True)
class RtcSignal:
    """An SDP description and/or an ICE candidate for the other party."""

    call_id: str
    description: Json | None
    candidate: Json | None
    #: v1.1: the token of a restart's fresh peer connection this signal belongs to.
    restart: str | None = None

    def payload(self) -> Json:
        """The relayed fields, exactly as validated."""
        out = _signal_payload(self.description, self.candidate)
        if self.restart is not None:
            out["restart"] = self.restart
        return out


def _signal_payload(description: Json | None, candidate: Json | None) -> Json:
    out: Json = {}
    if description is not None:
        out["description"] = description
    if candidate is not None:
        out["candidate"] = candidate
    return out


@dataclass(frozen=True, slots=True)
class HistoryList:
    """One's own recent calls."""

    limit: int


@dataclass(frozen=True, slots=True)
class MeetingCreate:
    """Open a meeting, join it as its host and invite contacts (v1.1)."""

    meeting_id: str
    media: Media
    invite: tuple[str, ...]
    title: str | None
    #: The accepted call this meeting continues (its two parties become its first participants).
    from_call: str | None = None


@dataclass(frozen=True, slots=True)
class MeetingInvite:
    """Invite more contacts to a meeting one is in."""

    meeting_id: str
    usernames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MeetingJoin:
    """Join (or, after losing the connection, rejoin) a meeting."""

    meeting_id: str
    media: Media


@dataclass(frozen=True, slots=True)
class MeetingAction:
    """``meeting.decline``, ``meeting.leave`` or ``meeting.end``."""

    meeting_id: str


@dataclass(frozen=True, slots=True)
class MeetingMedia:
    """What a participant sends now."""

    meeting_id: str
    audio: bool
    video: bool
    screen: bool

    def state(self) -> Json:
        """The three flags, as the wire carries them."""
        return {"audio": self.audio, "video": self.video, "screen": self.screen}


@dataclass(frozen=True, slots=True)
class MeetingSignal:
    """An SDP description and/or an ICE candidate for one participant of a meeting."""

    meeting_id: str
    to: str
    description: Json | None
    candidate: Json | None

    def payload(self) -> Json:
        """The relayed fields, exactly as validated."""
        return _signal_payload(self.description, self.candidate)


Request = (
    Register
    | Login
    | Logout
    | ContactsList
    | ContactsRequest
    | ContactsAccept
    | ContactsRemove
    | UsersSearch
    | PresenceSet
    | ProfileUpdate
    | CallInvite
    | CallAction
    | RtcSignal
    | HistoryList
    | MeetingCreate
    | MeetingInvite
    | MeetingJoin
    | MeetingAction
    | MeetingMedia
    | MeetingSignal
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded request with its type and optional id."""

    type: RequestType
    id: str | None
    request: Request


def _display_name(
    fields: Fields, name: str = "display_name", optional: bool = False, max_len: int = 64
) -> str | None:
    value = fields.text(name, min_len=1, max_len=max_len, optional=optional, control_ok=False)
    if value is not None and not value.strip():
        raise bad_message(f"'{name}' must not be blank")
    return value


def _password(fields: Fields) -> str:
    return fields.required_text("password", min_len=8, max_len=256)


def _features(f: Fields) -> tuple[str, ...]:
    return f.words("features", max_count=MAX_CLIENT_FEATURES)


def _parse_register(f: Fields) -> Register:
    return Register(
        f.username("username"), _password(f), _display_name(f, optional=True), _features(f)
    )


def _parse_login(f: Fields) -> Login:
    if f.has("token"):
        token = f.required_text("token", min_len=1, max_len=256)
        return Login(None, None, token, _features(f))
    if not f.has("username") and not f.has("password"):
        raise bad_message("login needs 'username' and 'password', or 'token'")
    return Login(f.username("username"), _password(f), None, _features(f))


def _parse_media(f: Fields) -> Media:
    media = f.object("media")
    assert media is not None
    return Media(media.boolean("audio"), media.boolean("video"))


def _parse_description(f: Fields) -> Json | None:
    desc = f.object("description", optional=True)
    if desc is None:
        return None
    kind = desc.choice("type", SDP_TYPES)
    sdp = desc.required_text("sdp", max_len=MAX_SDP_CHARS)
    return {"type": kind, "sdp": sdp}


def _parse_candidate(f: Fields) -> Json | None:
    cand = f.object("candidate", optional=True)
    if cand is None:
        return None
    return {
        "candidate": cand.required_text("candidate", max_len=MAX_CANDIDATE_CHARS),
        "sdpMid": cand.text("sdpMid", max_len=MAX_MID_CHARS, optional=True),
        "sdpMLineIndex": cand.integer("sdpMLineIndex", low=0, high=1023, optional=True),
    }


def _parse_rtc_signal(f: Fields) -> RtcSignal | MeetingSignal:
    """A call's signal (``call_id``) or a meeting's (``meeting_id`` and ``to``), never both."""
    if f.has("call_id") and f.has("meeting_id"):
        raise bad_message("rtc.signal carries 'call_id' or 'meeting_id', not both")
    in_meeting = f.has("meeting_id")
    meeting = (f.call_id("meeting_id"), f.username("to")) if in_meeting else None
    call_id = None if in_meeting else f.call_id()
    description = _parse_description(f)
    candidate = _parse_candidate(f)
    if description is None and candidate is None:
        raise bad_message("rtc.signal needs 'description' and/or 'candidate'")
    if meeting is not None:
        return MeetingSignal(*meeting, description, candidate)
    assert call_id is not None
    restart = f.text(
        "restart", min_len=1, max_len=MAX_RESTART_CHARS, optional=True, control_ok=False
    )
    return RtcSignal(call_id, description, candidate, restart)


def _hangup_failed(f: Fields) -> bool:
    """The optional ``reason`` of ``call.hangup``: only ``failed`` (the call broke) is defined."""
    return f.has("reason") and f.choice("reason", HANGUP_REASONS) == "failed"


def _parse_history(f: Fields) -> HistoryList:
    limit = f.integer("limit", low=1, high=HISTORY_MAX_LIMIT, optional=True)
    return HistoryList(HISTORY_DEFAULT_LIMIT if limit is None else limit)


def _parse_search(f: Fields) -> UsersSearch:
    query = f.required_text("query", min_len=1, max_len=32, control_ok=False)
    return UsersSearch(query)


def _parse_display_name_update(f: Fields) -> ProfileUpdate:
    name = _display_name(f)
    assert name is not None
    return ProfileUpdate(name)


def _parse_title(f: Fields) -> str | None:
    return _display_name(f, "title", optional=True, max_len=MAX_TITLE_CHARS)


def _parse_meeting_create(f: Fields) -> MeetingCreate:
    meeting_id = f.call_id("meeting_id")
    media = _parse_media(f)
    invite = f.usernames("invite", min_count=0, max_count=MAX_INVITEES, optional=True)
    from_call = f.call_id("from_call") if f.has("from_call") else None
    return MeetingCreate(meeting_id, media, invite, _parse_title(f), from_call)


def _parse_meeting_media(f: Fields) -> MeetingMedia:
    return MeetingMedia(
        f.call_id("meeting_id"), f.boolean("audio"), f.boolean("video"), f.boolean("screen")
    )


_PARSERS: dict[RequestType, Callable[[Fields], Request]] = {
    RequestType.REGISTER: _parse_register,
    RequestType.LOGIN: _parse_login,
    RequestType.LOGOUT: lambda f: Logout(),
    RequestType.CONTACTS_LIST: lambda f: ContactsList(),
    RequestType.CONTACTS_REQUEST: lambda f: ContactsRequest(f.username("username")),
    RequestType.CONTACTS_ACCEPT: lambda f: ContactsAccept(f.username("username")),
    RequestType.CONTACTS_REMOVE: lambda f: ContactsRemove(f.username("username")),
    RequestType.USERS_SEARCH: _parse_search,
    RequestType.PRESENCE_SET: lambda f: PresenceSet(
        Presence(f.choice("status", SETTABLE_PRESENCE))
    ),
    RequestType.PROFILE_UPDATE: _parse_display_name_update,
    RequestType.CALL_INVITE: lambda f: CallInvite(f.username("to"), f.call_id(), _parse_media(f)),
    RequestType.CALL_ACCEPT: lambda f: CallAction(f.call_id()),
    RequestType.CALL_DECLINE: lambda f: CallAction(f.call_id()),
    RequestType.CALL_CANCEL: lambda f: CallAction(f.call_id()),
    RequestType.CALL_HANGUP: lambda f: CallAction(f.call_id(), _hangup_failed(f)),
    RequestType.RTC_SIGNAL: _parse_rtc_signal,
    RequestType.HISTORY_LIST: _parse_history,
    RequestType.MEETING_CREATE: _parse_meeting_create,
    RequestType.MEETING_INVITE: lambda f: MeetingInvite(
        f.call_id("meeting_id"), f.usernames("usernames", min_count=1, max_count=MAX_INVITEES)
    ),
    RequestType.MEETING_JOIN: lambda f: MeetingJoin(f.call_id("meeting_id"), _parse_media(f)),
    RequestType.MEETING_DECLINE: lambda f: MeetingAction(f.call_id("meeting_id")),
    RequestType.MEETING_LEAVE: lambda f: MeetingAction(f.call_id("meeting_id")),
    RequestType.MEETING_END: lambda f: MeetingAction(f.call_id("meeting_id")),
    RequestType.MEETING_MEDIA: _parse_meeting_media,
}
_PARSERS.update(GUEST_PARSERS)  # type: ignore[arg-type]  # guest links: protocol/guests.py
_PARSERS.update(SFU_PARSERS)  # type: ignore[arg-type]  # media server relay: protocol/sfu.py
_PARSERS.update(ICE_PARSERS)  # type: ignore[arg-type]  # ICE servers: protocol/ice.py
_PARSERS.update(ACCOUNT_PARSERS)  # type: ignore[arg-type]  # account self-service: protocol/account.py
_PARSERS.update(CHAT_PARSERS)  # type: ignore[arg-type]  # meeting chat: protocol/chat.py


class FrameError(ProtocolError):
    """A frame that could not be decoded, with the ``id`` when it was readable."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None) -> None:
        super().__init__(code, message)
        self.request_id = request_id


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: One decoder for every frame: ``json.loads`` with an argument builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_object(data: str | bytes) -> Json:
    """Parse one text frame into a JSON object; binary frames and non-objects are refused."""
    if not isinstance(data, str):
        raise FrameError(ErrorCode.BAD_MESSAGE, "binary frames are not allowed", None)
    try:
        value = _DECODER.decode(data)
    except (ValueError, RecursionError):
        raise FrameError(ErrorCode.BAD_JSON, "the frame is not valid JSON", None) from None
    if type(value) is not dict:
        raise FrameError(ErrorCode.BAD_JSON, "the frame is not a JSON object", None)
    return value


def read_id(message: Json) -> str | None:
    """The request's ``id`` if present and readable; ``bad_message`` if present and not."""
    if "id" not in message:
        return None
    request_id = message["id"]
    if (
        type(request_id) is not str
        or len(request_id) > MAX_ID_LENGTH
        or not is_encodable(request_id)
    ):
        raise FrameError(
            ErrorCode.BAD_MESSAGE,
            f"'id' must be a string of at most {MAX_ID_LENGTH} characters",
            None,
        )
    return request_id


def read_type(message: Json, request_id: str | None) -> RequestType:
    """The request's ``type``: ``bad_message`` if missing, ``unknown_type`` if not v1's."""
    kind = message.get("type")
    if type(kind) is not str:
        raise FrameError(ErrorCode.BAD_MESSAGE, "'type' must be a string", request_id)
    try:
        return RequestType(kind)
    except ValueError:
        shown = (
            kind
            if len(kind) <= 40 and is_encodable(kind)
            else kind[:40].encode("utf-8", "replace").decode()
        )
        raise FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown type '{shown}'", request_id) from None


def parse_fields(kind: RequestType, message: Json, request_id: str | None) -> Request:
    """Validate the fields of a request whose envelope was read already."""
    try:
        return _PARSERS[kind](Fields(message))
    except ProtocolError as exc:
        raise FrameError(exc.code, exc.message, request_id) from None


def decode_request(data: str | bytes) -> Envelope:
    """Decode and validate one frame completely (envelope and fields)."""
    message = decode_object(data)
    request_id = read_id(message)
    kind = read_type(message, request_id)
    return Envelope(kind, request_id, parse_fields(kind, message, request_id))


#: One encoder for every message: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(message: Json) -> str:
    """The compact wire form of one message."""
    return _ENCODER.encode(message)


def ok_message(request_id: str | None, **fields: Any) -> Json:
    """A success reply."""
    message: Json = {"type": EventType.OK.value}
    if request_id is not None:
        message["re"] = request_id
    message.update(fields)
    return message


def error_message(
    request_id: str | None, code: ErrorCode, text: str, retry_after: int | None = None
) -> Json:
    """A failure reply."""
    message: Json = {"type": EventType.ERROR.value}
    if request_id is not None:
        message["re"] = request_id
    message["code"] = code.value
    message["message"] = text
    if retry_after is not None:
        message["retry_after"] = retry_after
    return message


def event_message(kind: EventType, **fields: Any) -> Json:
    """A server event (no ``re``)."""
    message: Json = {"type": kind.value}
    message.update(fields)
    return message
