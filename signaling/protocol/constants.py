"""Names and limits of protocol version 1, as written in docs/protocol.md.

Kept as ``StrEnum``s so that the values are the wire strings themselves and a
typo in either side's code is an ``AttributeError``, not a silent mismatch.
"""

from __future__ import annotations

from enum import StrEnum

SUBPROTOCOL = "parley.v1"
WS_PATH = "/ws"
MAX_FRAME_BYTES = 64 * 1024
MAX_ID_LENGTH = 64
PING_INTERVAL_S = 20.0
SILENCE_TIMEOUT_S = 60.0
RING_TIMEOUT_S = 45.0
RECONNECT_GRACE_S = 30.0
TOKEN_LIFETIME_S = 30 * 24 * 3600
SEARCH_LIMIT = 20
HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200

#: What this server offers beyond version 1 (the ``features`` of the login reply).
FEATURES = ("meetings", "guests", "account")
#: The ``features`` word of meetings (the server's in the login reply, a client's in its login).
MEETINGS_FEATURE = "meetings"
#: What a client may say it understands (``features`` of ``login`` and ``register``): at most
#: this many words. A client that understands meetings says ``meetings``; a call can move into a
#: meeting (``meeting.create`` with ``from_call``) only when the other party's app said so.
MAX_CLIENT_FEATURES = 16
#: Participants of a mesh meeting, by default (every pair has its own peer connection).
MESH_CAPACITY = 4
#: Usernames in one ``invite`` or ``usernames`` list.
MAX_INVITEES = 15
#: A meeting title's length, in characters.
MAX_TITLE_CHARS = 64

ECHO_USERNAME = "echo"
ECHO_DISPLAY_NAME = "Echo Test"


class RequestType(StrEnum):
    """Every request a client may send."""

    REGISTER = "register"
    LOGIN = "login"
    LOGOUT = "logout"
    CONTACTS_LIST = "contacts.list"
    CONTACTS_REQUEST = "contacts.request"
    CONTACTS_ACCEPT = "contacts.accept"
    CONTACTS_REMOVE = "contacts.remove"
    USERS_SEARCH = "users.search"
    PRESENCE_SET = "presence.set"
    PROFILE_UPDATE = "profile.update"
    CALL_INVITE = "call.invite"
    CALL_ACCEPT = "call.accept"
    CALL_DECLINE = "call.decline"
    CALL_CANCEL = "call.cancel"
    CALL_HANGUP = "call.hangup"
    RTC_SIGNAL = "rtc.signal"
    HISTORY_LIST = "history.list"
    MEETING_CREATE = "meeting.create"
    MEETING_INVITE = "meeting.invite"
    MEETING_JOIN = "meeting.join"
    MEETING_DECLINE = "meeting.decline"
    MEETING_LEAVE = "meeting.leave"
    MEETING_END = "meeting.end"
    MEETING_MEDIA = "meeting.media"
    #: v1.1: chat relayed by the server (``signaling/protocol/chat.py``).
    MEETING_CHAT = "meeting.chat"
    #: Guest links (v1.1, ``signaling/protocol/guests.py``).
    GUEST_LINK_CREATE = "guest_link.create"
    GUEST_LINK_LIST = "guest_link.list"
    GUEST_LINK_REVOKE = "guest_link.revoke"
    GUEST_JOIN = "guest.join"
    GUEST_REMOVE = "guest.remove"
    #: Meetings through a media server (``signaling/protocol/sfu.py``).
    SFU_PUBLISH = "sfu.publish"
    SFU_SUBSCRIBE = "sfu.subscribe"
    SFU_ANSWER = "sfu.answer"
    SFU_TRICKLE = "sfu.trickle"
    #: Fresh ICE servers and TURN credentials (v1.1, ``signaling/protocol/ice.py``).
    ICE_SERVERS = "ice.servers"
    SFU_VIDEO = "sfu.video"
    #: Account self-service (v1.1, ``signaling/protocol/account.py``).
    ACCOUNT_PASSWORD = "account.password"
    ACCOUNT_SIGN_OUT_OTHERS = "account.sign_out_others"
    ACCOUNT_DELETE = "account.delete"
    ACCOUNT_BLOCK = "account.block"
    ACCOUNT_UNBLOCK = "account.unblock"
    ACCOUNT_BLOCKED = "account.blocked"


class EventType(StrEnum):
    """Every message the server sends: the two replies and the events."""

    OK = "ok"
    ERROR = "error"
    PRESENCE = "presence"
    CONTACT = "contact"
    CALL_INCOMING = "call.incoming"
    CALL_RINGING = "call.ringing"
    CALL_ACCEPTED = "call.accepted"
    CALL_ENDED = "call.ended"
    RTC_SIGNAL = "rtc.signal"
    MEETING_INVITED = "meeting.invited"
    MEETING_JOINED = "meeting.joined"
    MEETING_LEFT = "meeting.left"
    MEETING_MEDIA = "meeting.media"
    MEETING_DECLINED = "meeting.declined"
    MEETING_ENDED = "meeting.ended"
    #: v1.1: a chat message another participant sent through the server.
    MEETING_CHAT = "meeting.chat"
    #: A guest is sent away (removed by the host, or the link revoked); the socket closes next.
    GUEST_REMOVED = "guest.removed"
    #: A participant published (again) through the media server: subscribe to it.
    SFU_PUBLISHED = "sfu.published"
    #: The meeting moved to another media server: publish and subscribe again.
    SFU_RECONNECT = "sfu.reconnect"
    #: v1.1: the server signed this connection out (another session's account change).
    SIGNED_OUT = "signed_out"


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` reply."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    UNAUTHENTICATED = "unauthenticated"
    BAD_CREDENTIALS = "bad_credentials"
    TAKEN = "taken"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    BUSY = "busy"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    #: Version 1.1: the meeting has its capacity of participants already.
    MEETING_FULL = "meeting_full"
    #: Version 1.1: the other party's app cannot do what was asked (a call moved into a meeting
    #: when the other side's app never said it understands meetings).
    UNSUPPORTED = "unsupported"
    #: Version 1.1: the media server cannot do it now (it is moving, or unreachable).
    UNAVAILABLE = "unavailable"


class Presence(StrEnum):
    """What contacts see of a user."""

    ONLINE = "online"
    AWAY = "away"
    DND = "dnd"
    IN_CALL = "in_call"
    OFFLINE = "offline"


#: The presence values a client may choose with ``presence.set``.
SETTABLE_PRESENCE = frozenset({Presence.ONLINE, Presence.AWAY, Presence.DND})


class ContactStatus(StrEnum):
    """Where a contact relation stands, seen from one side.

    ``REMOVED`` is an addition to version 1: it appears only in a ``contact``
    event, to say the relation is gone; ``contacts.list`` never shows it.
    """

    ACCEPTED = "accepted"
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    REMOVED = "removed"


class CallReason(StrEnum):
    """Why a call ended."""

    DECLINED = "declined"
    CANCELLED = "cancelled"
    HANGUP = "hangup"
    BUSY = "busy"
    TIMEOUT = "timeout"
    OFFLINE = "offline"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    LOST = "lost"
    #: The side that hung up could not use the call (an unusable offer, no media in time).
    FAILED = "failed"
    #: Version 1.1: a party turned the call into a meeting (``meeting.create`` with ``from_call``);
    #: both parties are in the meeting now, and their media went on.
    MOVED_TO_MEETING = "moved_to_meeting"


class Topology(StrEnum):
    """How a meeting's media flows: peer to peer between every pair, or through a media server."""

    MESH = "mesh"
    SFU = "sfu"


class LeaveReason(StrEnum):
    """Why a participant left a meeting (``meeting.left``)."""

    LEFT = "left"
    LOST = "lost"
    #: A guest sent away by the host, or whose link was revoked.
    REMOVED = "removed"


class MeetingReason(StrEnum):
    """Why a meeting ended (``meeting.ended``)."""

    ENDED = "ended"
    EMPTY = "empty"
    #: To an invitee's other connections only: they joined (or declined) on another one, so
    #: the invitation is over there; the meeting itself goes on.
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    DECLINED_ELSEWHERE = "declined_elsewhere"


#: Requests allowed before logging in.
UNAUTHENTICATED_REQUESTS = frozenset(
    {RequestType.REGISTER, RequestType.LOGIN, RequestType.GUEST_JOIN}
)
