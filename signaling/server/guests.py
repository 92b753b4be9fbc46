"""The hub's guest half: guest links, guest sessions, and what guests may not do.

A signed-in user makes a link (``guest_link.create``) for a 1:1 call with them or
for a meeting they are in. A person who opens it joins with ``guest.join``: the
connection is logged in as a *guest* (``guest-`` and 12 hex digits, shown as
``Guest: NAME``), which at once calls the link's owner or joins the meeting. A
guest's connection may only carry that call or meeting (:data:`GUEST_REQUESTS`);
it is closed by the server when the call or meeting ends, when the guest leaves,
is removed (``guest.remove``) or the link is revoked (``guest_link.revoke``).

Codes are 192 random bits; the store keeps only their SHA-256, and nothing logs
them. Link use is rate limited per address (unknown codes, as failed logins) and
per link (joins).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from signaling.protocol.constants import (
    FEATURES,
    MEETINGS_FEATURE,
    CallReason,
    ErrorCode,
    EventType,
    LeaveReason,
    RequestType,
)
from signaling.protocol.errors import ProtocolError
from signaling.protocol.guests import (
    GUEST_PREFIX,
    GUEST_REQUESTS,
    MAX_ACTIVE_LINKS,
    GuestJoin,
    GuestLinkCreate,
    GuestLinkRevoke,
    GuestRemove,
    link_path,
)
from signaling.protocol.messages import CallInvite, Json, Media, MeetingJoin, event_message
from signaling.protocol.sfu import SFU_FEATURE
from signaling.server.logs import log_event
from signaling.server.meetings import Invitation, Meeting, Person
from signaling.server.ratelimit import FailureLimiter
from signaling.server.routing import Handler, Result, Session, iso, me, me_user
from signaling.server.store import GuestLinkRecord, UserRecord

if TYPE_CHECKING:
    from signaling.server.hub import Hub

#: Joins through one link within a minute; more are ``rate_limited`` (a leaked link cannot
#: be used to ring its owner without end).
JOINS_PER_LINK = 10
#: Unknown codes from one address (guest.join and page loads) within a minute.
UNKNOWN_CODES_PER_ADDRESS = 20
WINDOW_S = 60.0
#: What the guest page understands, as a client says with ``features`` at login.
GUEST_PAGE_FEATURES = frozenset({MEETINGS_FEATURE, SFU_FEATURE})
#: WebSocket close code after a guest's call or meeting is over for them (normal closure).
CLOSE_DONE = 1000


class LinkState(StrEnum):
    """What a link's code leads to now."""

    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    #: A meeting's link whose meeting is over.
    ENDED = "ended"


def code_hash(code: str) -> str:
    """What the store keeps of a code (codes are random: no salt needed)."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def link_state(record: GuestLinkRecord | None, now: float, meeting_open: bool) -> LinkState:
    """Whether ``record`` admits a guest at ``now`` (``meeting_open``: its meeting is on)."""
    if record is None:
        return LinkState.UNKNOWN
    if record.revoked_at is not None:
        return LinkState.REVOKED
    if now >= record.expires_at:
        return LinkState.EXPIRED
    if record.meeting_id is not None and not meeting_open:
        return LinkState.ENDED
    return LinkState.OK


_STATE_WORDS = {
    LinkState.UNKNOWN: "this guest link does not exist",
    LinkState.EXPIRED: "this guest link has expired",
    LinkState.REVOKED: "this guest link was revoked",
    LinkState.ENDED: "the meeting of this guest link has ended",
}


@dataclass(slots=True)
class GuestPass:
    """What a guest's session was admitted to."""

    link_id: str
    owner: str
    meeting_id: str | None
    #: Set once the server closes the connection (nothing more is sent on it).
    leaving: bool = False


@dataclass(frozen=True, slots=True)
class LinkView:
    """What the page of a link shows: its state, its owner, the meeting's title."""

    state: LinkState
    owner: UserRecord | None = None
    meeting_title: str | None = None

    @property
    def for_meeting(self) -> bool:
        """Whether it leads into a meeting (else a 1:1 call)."""
        return self.meeting_title is not None


def _forbidden(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.FORBIDDEN, message)


class GuestRouter:
    """Guest links and guest sessions of one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.unknown_codes = FailureLimiter(UNKNOWN_CODES_PER_ADDRESS, WINDOW_S)
        self.joins = FailureLimiter(JOINS_PER_LINK, WINDOW_S)
        #: Guest sessions by username.
        self.sessions: dict[str, Session] = {}

    def handlers(self) -> dict[RequestType, Handler]:
        """The requests this part of the hub answers."""
        return {
            RequestType.GUEST_LINK_CREATE: self._create,
            RequestType.GUEST_LINK_LIST: self._list,
            RequestType.GUEST_LINK_REVOKE: self._revoke,
            RequestType.GUEST_JOIN: self._join,
            RequestType.GUEST_REMOVE: self._remove,
        }

    # Checks the hub asks for ---------------------------------------------------------

    @staticmethod
    def check_allowed(session: Session, kind: RequestType) -> None:
        """A guest's connection carries its call or meeting only: anything else is refused."""
        if session.guest is not None and kind not in GUEST_REQUESTS:
            raise _forbidden("guests may not do this")

    @staticmethod
    def may_call(session: Session, callee: str) -> bool:
        """A guest's session calls its link's owner and nobody else."""
        guest: GuestPass | None = session.guest
        return guest is not None and guest.meeting_id is None and guest.owner == callee

    # Links ---------------------------------------------------------------------------

    def _link_json(self, record: GuestLinkRecord) -> Json:
        out: Json = {
            "link_id": record.link_id,
            "kind": "call" if record.meeting_id is None else "meeting",
        }
        if record.meeting_id is not None:
            out["meeting_id"] = record.meeting_id
        out |= {
            "created_at": iso(record.created_at),
            "expires_at": iso(record.expires_at),
            "guests": sum(
                1 for s in self.sessions.values() if s.guest and s.guest.link_id == record.link_id
            ),
        }
        return out

    async def _create(self, session: Session, req: GuestLinkCreate) -> Result:
        owner = me(session)
        if req.meeting_id is not None:
            meeting = self.hub.meetings.table.get(req.meeting_id)
            if meeting is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, "no such meeting in progress")
            meeting.require_participant(owner)
        now = self.hub.now()
        if len(await self.hub.store.guest_links_of(owner, now)) >= MAX_ACTIVE_LINKS:
            raise _forbidden(f"you have {MAX_ACTIVE_LINKS} active guest links; revoke some")
        code = secrets.token_urlsafe(24)
        record = GuestLinkRecord(
            link_id=secrets.token_hex(8),
            code_hash=code_hash(code),
            owner=owner,
            created_at=now,
            expires_at=now + req.expires_in,
            meeting_id=req.meeting_id,
        )
        await self.hub.store.insert_guest_link(record)
        log_event("guest_link.created", link=record.link_id, owner=owner, meeting=req.meeting_id)
        link = self._link_json(record) | {"code": code, "path": link_path(code)}
        return Result({"link": link})

    async def _list(self, session: Session, _: object) -> Result:
        records = await self.hub.store.guest_links_of(me(session), self.hub.now())
        # A meeting's link admits nobody once its meeting is over.
        live = [r for r in records if r.meeting_id is None or self._meeting_of(r) is not None]
        return Result({"links": [self._link_json(r) for r in live]})

    async def _revoke(self, session: Session, req: GuestLinkRevoke) -> Result:
        owner = me(session)
        record = await self.hub.store.revoke_guest_link(req.link_id, owner, self.hub.now())
        if record is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "you have no such guest link")
        log_event("guest_link.revoked", link=record.link_id, owner=owner)
        admitted = [
            s for s in self.sessions.values() if s.guest and s.guest.link_id == record.link_id
        ]

        async def after() -> None:
            for guest in admitted:
                await self._send_away(guest, "revoked")

        return Result(then=after)

    async def view(self, code: str, address: str) -> LinkView:
        """What the page of ``code`` says, counting unknown codes against ``address``.

        Raises ``rate_limited`` once ``address`` tried too many unknown codes.
        """
        record = await self._lookup(code, address)
        meeting = self._meeting_of(record)
        state = link_state(record, self.hub.now(), meeting is not None)
        if state is not LinkState.OK or record is None:
            return LinkView(state)
        owner = await self.hub.user_record(record.owner)
        title = (meeting.title or "") if meeting is not None else None
        return LinkView(state, owner, title)

    async def _lookup(self, code: str, address: str) -> GuestLinkRecord | None:
        now = self.hub.now()
        wait = self.unknown_codes.blocked(address, now)
        if wait is not None:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many unknown links; try later", retry_after=wait
            )
        record = await self.hub.store.guest_link(code_hash(code))
        if record is None:
            self.unknown_codes.failed(address, now)
        return record

    def _meeting_of(self, record: GuestLinkRecord | None) -> Meeting | None:
        if record is None or record.meeting_id is None:
            return None
        return self.hub.meetings.table.get(record.meeting_id)

    # Joining -------------------------------------------------------------------------

    async def _join(self, session: Session, req: GuestJoin) -> Result:
        if session.user is not None:
            raise _forbidden("log out first")
        record = await self._lookup(req.code, session.peer.address)
        meeting = self._meeting_of(record)
        now = self.hub.now()
        state = link_state(record, now, meeting is not None)
        if state is not LinkState.OK or record is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, _STATE_WORDS[state])
        wait = self.joins.blocked(record.link_id, now)
        if wait is not None:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "this link was used too often; try later", retry_after=wait
            )
        self.joins.failed(record.link_id, now)  # every join counts
        if meeting is not None and len(meeting.participants) >= meeting.capacity:
            raise ProtocolError(
                ErrorCode.MEETING_FULL, f"the meeting has its {meeting.capacity} participants"
            )
        username = f"guest-{secrets.token_hex(6)}"
        user = await self.hub.store.create_guest(
            username, f"{GUEST_PREFIX}{req.display_name}", record.link_id, now
        )
        if session.closed:
            return Result()
        guest = GuestPass(record.link_id, record.owner, record.meeting_id)
        session.user = user
        session.guest = guest
        # What the page can do (it is this server's own): meetings, also through Janus.
        session.features = GUEST_PAGE_FEATURES
        self.hub.by_user.setdefault(username, set()).add(session)
        self.sessions[username] = session
        log_event("guest.joined", conn=session.id, user=username, link=record.link_id)
        media = Media(req.audio, req.video)
        fields: Json = {"user": user.public(), "features": list(FEATURES), "guest": True}
        ice = getattr(self.hub.config, "ice", None)
        if ice is not None:  # the STUN/TURN servers a user gets at login (protocol/ice.py)
            from signaling.server.turn import ice_servers  # imported only with --turn

            fields |= ice_servers(ice, username, self.hub.now())
        try:
            if record.meeting_id is not None:
                assert meeting is not None
                joined = await self._enter_meeting(session, meeting, record, user, media)
                return Result(fields | joined.fields, joined.then)
            call_id = str(uuid.uuid4())
            invite = CallInvite(record.owner, call_id, media)
            # Busy and offline as for anyone.
            rang = await self.hub.call_router.invite(session, invite)
        except BaseException:
            await self._forget(session)
            raise
        peer = await self.hub.user_record(record.owner)
        fields |= {"call_id": call_id, "peer": peer.public() if peer else {}}
        return Result(fields, rang.then)

    async def _enter_meeting(
        self,
        session: Session,
        meeting: Meeting,
        record: GuestLinkRecord,
        user: UserRecord,
        media: Media,
    ) -> Result:
        """Invite the guest in the owner's name, then join as an invited user does."""
        owner = await self.hub.user_record(record.owner)
        inviter = Person(record.owner, owner.display_name if owner else record.owner)
        person = Person(user.username, user.display_name)
        meeting.invited[user.username] = Invitation(person, inviter, media)
        await self.hub.store.meeting_invited(
            meeting.meeting_id, record.owner, [user.username], self.hub.now()
        )
        join = self.hub.meetings.handlers()[RequestType.MEETING_JOIN]
        try:
            return await join(session, MeetingJoin(meeting.meeting_id, media))
        except BaseException:
            meeting.invited.pop(user.username, None)
            raise

    async def _forget(self, session: Session) -> None:
        """A guest whose join failed is logged out again (and its connection closed)."""
        user = session.user
        if user is None:
            return
        self.sessions.pop(user.username, None)
        sessions = self.hub.by_user.get(user.username)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.hub.by_user[user.username]
        session.user = None
        session.guest = None

    # Leaving -------------------------------------------------------------------------

    async def _remove(self, session: Session, req: GuestRemove) -> Result:
        remover = me_user(session).username
        guest_session = self.sessions.get(req.username)
        guest: GuestPass | None = guest_session.guest if guest_session else None
        if guest_session is None or guest is None or guest.leaving:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such guest here")
        call = self.hub.calls.of_user(req.username)
        meeting = self.hub.meetings.table.of_user(req.username)
        allowed = (
            remover == guest.owner
            or (call is not None and call.is_party(remover))
            or (meeting is not None and meeting.host == remover)
        )
        if not allowed:
            raise _forbidden("only the host can remove this guest")
        log_event("guest.remove", user=req.username, by=remover)

        async def after() -> None:
            await self._send_away(guest_session, "removed")

        return Result(then=after)

    async def _send_away(self, session: Session, reason: str) -> None:
        """Tell the guest why, end its part in the call or meeting, close its connection."""
        guest: GuestPass | None = session.guest
        if guest is None or guest.leaving or session.user is None:
            return
        username = session.user.username
        self.hub.send(session, event_message(EventType.GUEST_REMOVED, reason=reason))
        guest.leaving = True
        await self._end_part(username, removed=True)
        self._close(session)

    async def _end_part(self, username: str, *, removed: bool) -> None:
        """The guest's call ends (``hangup``) or it leaves its meeting (``removed``/``left``)."""
        call = self.hub.calls.of_user(username)
        if call is not None:
            await self.hub.follow_up(await self.hub.call_router.finish(call, CallReason.HANGUP))
        meeting = self.hub.meetings.table.of_user(username)
        if meeting is not None and meeting.is_participant(username):
            reason = LeaveReason.REMOVED if removed else LeaveReason.LEFT
            await self.hub.follow_up(await self.hub.meetings._depart(meeting, username, reason))

    def _close(self, session: Session) -> None:
        guest: GuestPass | None = session.guest
        if guest is not None:
            guest.leaving = True
        end = getattr(session.peer, "end", None)
        if end is not None:
            end(CLOSE_DONE, "the call is over")
        log_event("guest.closed", conn=session.id)

    def sent(self, session: Session, message: Json) -> None:
        """A message went to a guest: after the end of its call or meeting, close."""
        guest: GuestPass | None = session.guest
        if guest is None or guest.leaving:
            return
        if message["type"] in (EventType.CALL_ENDED.value, EventType.MEETING_ENDED.value):
            self._close(session)

    def settle(self, session: Session) -> None:
        """After a guest's request: one that left its call or meeting is done."""
        guest: GuestPass | None = session.guest
        if guest is None or guest.leaving or session.user is None:
            return
        username = session.user.username
        if self.hub.calls.of_user(username) is None and not self.hub.meetings.in_meeting(username):
            self._close(session)

    async def disconnected(self, session: Session) -> None:
        """A guest's connection closed: it cannot come back, so its part ends now."""
        if session.user is None:
            return
        await self.gone(session.user.username)

    async def gone(self, username: str) -> None:
        """The guest's connection is gone (closed, or it died with another instance of the
        service): its part in its call or meeting ends now, with no grace."""
        self.sessions.pop(username, None)
        await self._end_part(username, removed=False)


__all__ = ["GuestPass", "GuestRouter", "LinkState", "LinkView", "code_hash", "link_state"]
