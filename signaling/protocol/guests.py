"""Guest links (protocol v1.1): requests, their validation, and what a guest may send.

A signed-in user creates a link for a 1:1 call with them or for a meeting they are
in; a person who opens it joins from a browser as a *guest*: a display name, no
account. Pure definitions and parsers, like :mod:`signaling.protocol.messages`,
which registers the parsers below beside its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from signaling.protocol.constants import RequestType
from signaling.protocol.errors import bad_message
from signaling.protocol.fields import Fields

#: A link admits guests for this long unless its creator says otherwise.
GUEST_LINK_DEFAULT_S = 24 * 3600
GUEST_LINK_MIN_S = 60
GUEST_LINK_MAX_S = 7 * 24 * 3600
#: A guest's own name (the server shows it as ``Guest: NAME``, within the 64 of a display name).
MAX_GUEST_NAME_CHARS = 48
GUEST_PREFIX = "Guest: "
#: Link codes: ``secrets.token_urlsafe(24)``, 192 random bits in 32 characters.
CODE_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")
LINK_ID_RE = re.compile(r"[0-9a-f]{16}")
#: Guests' usernames: ``guest-`` and 12 hex digits. Reserved: nobody registers one.
GUEST_USERNAME_RE = re.compile(r"guest-[0-9a-f]{12}")
#: Where the page of a link is served: ``/g/CODE`` on the server's own port.
LINK_PATH_PREFIX = "/g/"
#: Active links one user may hold at once.
MAX_ACTIVE_LINKS = 50

#: The only requests a guest's connection may send; anything else is ``forbidden``.
GUEST_REQUESTS = frozenset(
    {
        RequestType.RTC_SIGNAL,
        RequestType.CALL_HANGUP,
        RequestType.CALL_CANCEL,
        RequestType.MEETING_LEAVE,
        RequestType.MEETING_MEDIA,
        RequestType.MEETING_CHAT,
        # A meeting through a media server: the relay to it (protocol/sfu.py).
        RequestType.SFU_PUBLISH,
        RequestType.SFU_SUBSCRIBE,
        RequestType.SFU_ANSWER,
        RequestType.SFU_TRICKLE,
        RequestType.SFU_VIDEO,
    }
)


def is_guest_username(username: str) -> bool:
    """Whether ``username`` is of the form the server gives guests (reserved)."""
    return GUEST_USERNAME_RE.fullmatch(username) is not None


def link_path(code: str) -> str:
    """The path of a link's page on the server (``/g/CODE``)."""
    return f"{LINK_PATH_PREFIX}{code}"


@dataclass(frozen=True, slots=True)
class GuestLinkCreate:
    """Make a link: for a 1:1 call with oneself (no ``meeting_id``) or for a meeting."""

    meeting_id: str | None
    expires_in: int


@dataclass(frozen=True, slots=True)
class GuestLinkRevoke:
    """Revoke one's link; guests it admitted are removed."""

    link_id: str


@dataclass(frozen=True, slots=True)
class GuestLinkList:
    """One's links that still admit guests."""


@dataclass(frozen=True, slots=True)
class GuestJoin:
    """Open a guest session with a link's code (before any login)."""

    code: str
    display_name: str
    audio: bool
    video: bool


@dataclass(frozen=True, slots=True)
class GuestRemove:
    """Send a guest away from one's call or meeting."""

    username: str


def _parse_create(f: Fields) -> GuestLinkCreate:
    meeting_id = f.call_id("meeting_id") if f.has("meeting_id") else None
    expires_in = f.integer("expires_in", low=GUEST_LINK_MIN_S, high=GUEST_LINK_MAX_S, optional=True)
    return GuestLinkCreate(meeting_id, GUEST_LINK_DEFAULT_S if expires_in is None else expires_in)


def _parse_revoke(f: Fields) -> GuestLinkRevoke:
    link_id = f.required_text("link_id", min_len=16, max_len=16)
    if not LINK_ID_RE.fullmatch(link_id):
        raise bad_message("'link_id' must be 16 hex digits")
    return GuestLinkRevoke(link_id)


def _parse_join(f: Fields) -> GuestJoin:
    code = f.required_text("code", min_len=1, max_len=64)
    if not CODE_RE.fullmatch(code):
        raise bad_message("'code' is not a link code")
    name = f.text(
        "display_name", min_len=1, max_len=MAX_GUEST_NAME_CHARS, optional=False, control_ok=False
    )
    assert name is not None
    if not name.strip():
        raise bad_message("'display_name' must not be blank")
    media = f.object("media")
    assert media is not None
    return GuestJoin(code, name.strip(), media.boolean("audio"), media.boolean("video"))


def _parse_remove(f: Fields) -> GuestRemove:
    username = f.username("username")
    if not is_guest_username(username):
        raise bad_message("'username' is not a guest")
    return GuestRemove(username)


GUEST_PARSERS = {
    RequestType.GUEST_LINK_CREATE: _parse_create,
    RequestType.GUEST_LINK_REVOKE: _parse_revoke,
    RequestType.GUEST_LINK_LIST: lambda f: GuestLinkList(),
    RequestType.GUEST_JOIN: _parse_join,
    RequestType.GUEST_REMOVE: _parse_remove,
}
