"""The hub's meeting half: the ``meeting.*`` requests, meeting ``rtc.signal``, and what a
connection's life (login, logout, loss) means for the meetings its user is in.

Same order of effects as the rest of the hub: validate, change the pure
:class:`~signaling.server.meetings.Meeting` synchronously (so racing requests see each
other), commit to the store, reply, then send events. The reconnection grace is one of the
hub's timers; when it fires the participant leaves with ``lost``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from signaling.protocol.chat import MeetingChat
from signaling.protocol.constants import (
    ECHO_USERNAME,
    MEETINGS_FEATURE,
    ErrorCode,
    EventType,
    LeaveReason,
    MeetingReason,
    RequestType,
    Topology,
)
from signaling.protocol.errors import ProtocolError, bad_message
from signaling.protocol.messages import (
    Json,
    MeetingAction,
    MeetingCreate,
    MeetingInvite,
    MeetingJoin,
    MeetingMedia,
    MeetingSignal,
    event_message,
)
from signaling.protocol.sfu import SFU_FEATURE
from signaling.server.calls import Call
from signaling.server.logs import log_event
from signaling.server.meetings import (
    Invitation,
    Meeting,
    MeetingTable,
    Participant,
    Person,
    check_invitees,
    participant_json,
)
from signaling.server.routing import Handler, Result, Session, iso, me, me_user
from signaling.server.sfu.relay import SfuRelay
from signaling.server.store import MeetingIdTaken, MeetingRecord, UserRecord

#: How long a participant's bound connection has to answer a ping when they join from another
#: connection (``_let_go_if_dead``).
PROBE_S = 3.0

if TYPE_CHECKING:
    from signaling.server.hub import Hub


def _person(user: UserRecord) -> Person:
    return Person(user.username, user.display_name)


class MeetingRouter:
    """Meetings in progress, and the requests and events that change them."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.table = MeetingTable()
        #: Rooms on the media servers, when the server has any (``--sfu``).
        self.sfu = SfuRelay(hub, self.table, hub.config.sfu) if hub.config.sfu else None

    def handlers(self) -> dict[RequestType, Handler]:
        """The requests this part of the hub answers (``rtc.signal`` comes through the hub)."""
        return {
            RequestType.MEETING_CREATE: self._create,
            RequestType.MEETING_INVITE: self._invite,
            RequestType.MEETING_JOIN: self._join,
            RequestType.MEETING_DECLINE: self._decline,
            RequestType.MEETING_LEAVE: self._leave,
            RequestType.MEETING_END: self._end,
            RequestType.MEETING_MEDIA: self._media,
            RequestType.MEETING_CHAT: self._chat,
            **(self.sfu.handlers() if self.sfu is not None else {}),
        }

    # Questions the hub asks ------------------------------------------------------

    def in_meeting(self, username: str) -> bool:
        """Whether ``username`` is a participant of a meeting (so busy, and ``in_call``)."""
        return self.table.of_user(username) is not None

    # Sending -------------------------------------------------------------------

    def _send_bound(self, meeting: Meeting, username: str, message: Json) -> None:
        self.hub.send_conn(meeting.bound_conn(username), username, message)

    def _send_others(self, meeting: Meeting, username: str, message: Json) -> None:
        for participant in meeting.others(username):
            self._send_bound(meeting, participant.username, message)

    def _invited_message(self, meeting: Meeting, invitation: Invitation) -> Json:
        fields: Json = {"meeting_id": meeting.meeting_id, "from": invitation.inviter.public()}
        if meeting.title is not None:
            fields["title"] = meeting.title
        fields["participants"] = [p.person.public() for p in meeting.participants.values()]
        fields["media"] = invitation.media.to_json()
        return event_message(EventType.MEETING_INVITED, **fields)

    def _tell_invited(self, meeting: Meeting, invitations: Iterable[Invitation]) -> None:
        for invitation in invitations:
            message = self._invited_message(meeting, invitation)
            self.hub.send_user(invitation.person.username, message)

    # Checks shared by the requests ------------------------------------------------

    def _meeting(self, meeting_id: str) -> Meeting:
        meeting = self.table.get(meeting_id)
        if meeting is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such meeting in progress")
        return meeting

    def _check_free(self, username: str, meeting: Meeting | None = None) -> None:
        """A user is in at most one call or meeting (``meeting`` is the one being joined)."""
        if self.hub.calls.of_user(username) is not None:
            raise ProtocolError(ErrorCode.BUSY, "you are in a call")
        current = self.table.of_user(username)
        if current is not None and current is not meeting:
            raise ProtocolError(ErrorCode.BUSY, "you are in another meeting")

    async def _invitees(self, by: str, usernames: tuple[str, ...]) -> list[Person]:
        """The people ``by`` may invite: accepted contacts only, or nobody at all."""
        check_invitees(by, usernames)
        contacts = await self.hub.accepted_contacts(by)
        people = []
        for username in usernames:
            user = await self.hub.user_record(username)
            if user is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, f"no user '{username}'")
            if username not in contacts:
                raise ProtocolError(ErrorCode.FORBIDDEN, f"'{username}' is not your contact")
            people.append(_person(user))
        return people

    # Requests ------------------------------------------------------------------

    async def _create(self, session: Session, req: MeetingCreate) -> Result:
        user = me_user(session)
        if req.from_call is not None:
            return await self._from_call(session, req, req.from_call)
        self._check_free(user.username)
        people = await self._invitees(user.username, req.invite)
        # Decided from here on without waiting, so that racing requests see it.
        self._check_free(user.username)
        if self.table.get(req.meeting_id) is not None:
            raise bad_message("'meeting_id' is already in use")
        before = self.hub.presence_of(user.username)
        now = self.hub.now()
        meeting = self._new_meeting(session, req, now, [session])
        invitations = meeting.invite(user.username, people)
        self.table.add(meeting)
        await self._store_new(meeting, invitations)
        if self.sfu is not None and meeting.topology is Topology.SFU:
            self.sfu.meeting_started(meeting)
        log_event(
            "meeting.created", meeting=meeting.meeting_id, host=user.username, invited=len(people)
        )

        async def after() -> None:
            self._tell_invited(meeting, invitations)
            await self.hub.presence_changed(user.username, before)

        return Result({"meeting": meeting.to_json(iso)}, after)

    def _new_meeting(
        self, session: Session, req: MeetingCreate, now: float, apps: Iterable[Session]
    ) -> Meeting:
        """``req``'s meeting, hosted on ``session``: with a media server up, through it, as every
        new meeting, when each of ``apps`` can use it (docs/protocol.md); else a mesh."""
        sfu = self.sfu
        if sfu is not None and sfu.available() and all(SFU_FEATURE in s.features for s in apps):
            capacity, topology = sfu.capacity, Topology.SFU
        else:
            capacity, topology = self.hub.config.meeting_capacity, Topology.MESH
        return Meeting.create(
            req.meeting_id,
            _person(me_user(session)),
            req.media,
            session.id,
            now,
            capacity=capacity,
            title=req.title,
            topology=topology,
        )

    def _movable_call(self, session: Session, call_id: str) -> tuple[Call, Session]:
        """The accepted call ``session`` moves into a meeting, and the other party's connection.

        The other party must be connected, on an app that said it understands meetings
        (``features`` of its login): an older app would only see its call end.
        """
        call = self.hub.calls.get(call_id)
        if call is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such call in progress")
        peer = call.check_move(me(session), session.id)
        if peer == ECHO_USERNAME:
            raise bad_message("the Echo Test cannot join meetings")
        conn = call.bound_conn(peer)
        other = self.hub.sessions.get(conn) if conn is not None else None
        if other is None or other.user is None or other.user.username != peer:
            raise ProtocolError(ErrorCode.BUSY, f"'{peer}' is reconnecting; try again in a moment")
        if other.guest is not None:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED,
                f"'{peer}' is a guest in a browser, whose page cannot carry a call on into a "
                "meeting; send them a link to a meeting instead",
            )
        if MEETINGS_FEATURE not in other.features:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED,
                f"'{peer}' uses an app that cannot take part in meetings; "
                "hang up and start a meeting instead",
            )
        return call, other

    async def _from_call(self, session: Session, req: MeetingCreate, call_id: str) -> Result:
        """A call becomes a meeting: both parties are its first participants (the requester
        hosts), their media go on untouched, the call ends ``moved_to_meeting`` and both are
        told the meeting in ``call.ended``; ``invite`` is invited as by ``meeting.create``."""
        user = me_user(session)
        self._movable_call(session, call_id)
        people = await self._invitees(user.username, req.invite)
        # Decided from here on without waiting, so that racing requests see it.
        call, other = self._movable_call(session, call_id)
        if self.table.get(req.meeting_id) is not None:
            raise bad_message("'meeting_id' is already in use")
        assert other.user is not None
        now = self.hub.now()
        # Through the media server when both parties' apps can: they keep their own connection
        # until the media server carries them (docs/protocol.md).
        meeting = self._new_meeting(session, req, now, [session, other])
        if meeting.topology is Topology.SFU:  # the call's chat went end to end till now
            meeting.end_to_end_until = now
        meeting.admit(_person(other.user), call.media, other.id, now)
        invitations = meeting.invite(user.username, people)
        self.table.add(meeting)
        fields = {"meeting_id": meeting.meeting_id, "meeting": meeting.to_json(iso)}
        ended = await self.hub.call_router.move_call(call, fields)
        await self._store_new(meeting, invitations, also_joined=other.user.username)
        if self.sfu is not None and meeting.topology is Topology.SFU:
            self.sfu.meeting_started(meeting)
        log_event(
            "meeting.created",
            meeting=meeting.meeting_id,
            host=user.username,
            from_call=call.call_id,
            invited=len(people),
        )

        async def after() -> None:
            await self.hub.follow_up(ended)
            self._tell_invited(meeting, invitations)

        return Result(fields, after)

    async def _store_new(
        self, meeting: Meeting, invitations: list[Invitation], also_joined: str | None = None
    ) -> None:
        """Commit a meeting just added to the table (its host's stay, its invitations and
        ``also_joined``'s stay); on failure it is taken out of the table again."""
        record = MeetingRecord(
            meeting.meeting_id,
            meeting.host,
            meeting.started_at,
            title=meeting.title,
            topology=meeting.topology.value,
            capacity=meeting.capacity,
        )
        try:
            await self.hub.store.insert_meeting(record, [i.person.username for i in invitations])
            if also_joined is not None:
                await self.hub.store.meeting_joined(
                    meeting.meeting_id, also_joined, meeting.started_at
                )
        except MeetingIdTaken:
            self.table.remove(meeting)
            raise bad_message("'meeting_id' is already in use") from None
        except BaseException:
            self.table.remove(meeting)
            raise

    async def _invite(self, session: Session, req: MeetingInvite) -> Result:
        username = me(session)
        self._meeting(req.meeting_id).require_participant(username)
        people = await self._invitees(username, req.usernames)
        meeting = self._meeting(req.meeting_id)  # again: it may have ended meanwhile
        invitations = meeting.invite(username, people)
        if invitations:
            await self.hub.store.meeting_invited(
                meeting.meeting_id,
                username,
                [i.person.username for i in invitations],
                self.hub.now(),
            )
            log_event("meeting.invite", meeting=meeting.meeting_id, count=len(invitations))
        return Result(
            {"meeting": meeting.to_json(iso)}, lambda: self._tell_invited(meeting, invitations)
        )

    async def _join(self, session: Session, req: MeetingJoin) -> Result:
        user = me_user(session)
        meeting = self._meeting(req.meeting_id)
        self._check_free(user.username, meeting)
        if meeting.topology is Topology.SFU and SFU_FEATURE not in session.features:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED,
                "this meeting goes through a media server, which your app cannot use; update it",
            )
        before = self.hub.presence_of(user.username)
        now = self.hub.now()
        was_invited = user.username in meeting.invited
        try:
            joined = meeting.join(_person(user), req.media, session.id, now)
        except ProtocolError as exc:
            if exc.code is not ErrorCode.BUSY or not await self._let_go_if_dead(
                meeting, user.username, session
            ):
                raise
            joined = meeting.join(_person(user), req.media, session.id, self.hub.now())
        participant = joined.participant
        if joined.rejoined:
            self.hub.timers.cancel(_grace_key(meeting, user.username))
            log_event("meeting.reattached", meeting=meeting.meeting_id, user=user.username)

            def after_rejoin() -> None:
                self._chat_history(session, meeting)
                if joined.media_changed:
                    self._send_others(meeting, user.username, _media_message(meeting, participant))

            return Result({"meeting": meeting.to_json(iso)}, after_rejoin)
        self.table.joined(meeting, user.username)
        await self.hub.store.meeting_joined(meeting.meeting_id, user.username, now)
        log_event("meeting.joined", meeting=meeting.meeting_id, user=user.username)

        async def after() -> None:
            message = event_message(
                EventType.MEETING_JOINED,
                meeting_id=meeting.meeting_id,
                participant=participant_json(participant, iso),
            )
            self._send_others(meeting, user.username, message)
            self._chat_history(session, meeting)
            if was_invited:
                self._elsewhere(session, MeetingReason.ANSWERED_ELSEWHERE, meeting)
            await self.hub.presence_changed(user.username, before)

        return Result({"meeting": meeting.to_json(iso)}, after)

    async def _decline(self, session: Session, req: MeetingAction) -> Result:
        username = me(session)
        meeting = self._meeting(req.meeting_id)
        invitation = meeting.decline(username)
        await self.hub.store.meeting_declined(meeting.meeting_id, username, self.hub.now())
        log_event("meeting.declined", meeting=meeting.meeting_id, user=username)
        message = event_message(
            EventType.MEETING_DECLINED, meeting_id=meeting.meeting_id, username=username
        )

        def after() -> None:
            self._send_bound(meeting, invitation.inviter.username, message)
            self._elsewhere(session, MeetingReason.DECLINED_ELSEWHERE, meeting)

        return Result(then=after)

    def _elsewhere(self, session: Session, reason: MeetingReason, meeting: Meeting) -> None:
        """The invitation was answered on ``session``: the user's other connections stop
        showing it (``meeting.ended`` with ``reason``, as ``call.ended`` answered_elsewhere)."""
        message = event_message(
            EventType.MEETING_ENDED, meeting_id=meeting.meeting_id, reason=reason.value
        )
        self.hub.send_user(me(session), message, skip=session)

    async def _leave(self, session: Session, req: MeetingAction) -> Result:
        return await self._depart(self._meeting(req.meeting_id), me(session), LeaveReason.LEFT)

    async def _end(self, session: Session, req: MeetingAction) -> Result:
        meeting = self._meeting(req.meeting_id)
        meeting.check_end(me(session))
        return await self._finish(meeting, MeetingReason.ENDED)

    async def _media(self, session: Session, req: MeetingMedia) -> Result:
        username = me(session)
        meeting = self._meeting(req.meeting_id)
        if not meeting.set_media(username, req.audio, req.video, req.screen):
            return Result()
        participant = meeting.participants[username]
        message = _media_message(meeting, participant)
        return Result(then=lambda: self._send_others(meeting, username, message))

    async def _chat(self, session: Session, req: MeetingChat) -> Result:
        """Chat relayed to every other participant (guests too); the ``ok`` reply says the
        server took it (a meeting through a media server has no peer data channel)."""
        username = me(session)
        meeting = self._meeting(req.meeting_id)
        sender = meeting.require_participant(username)
        sent_at = iso(self.hub.now())
        message = event_message(
            EventType.MEETING_CHAT,
            meeting_id=meeting.meeting_id,
            **{"from": sender.person.public()},
            chat_id=req.chat_id,
            text=req.text,
            sent_at=sent_at,
        )
        meeting.chat.append(message)
        return Result(
            {"chat_id": req.chat_id, "sent_at": sent_at},
            lambda: self._send_others(meeting, username, message),
        )

    def _chat_history(self, session: Session, meeting: Meeting) -> None:
        """The chat relayed so far, to a participant who just joined (or came back), marked
        ``history``; the client drops what it has already (same ``chat_id``)."""
        for message in list(meeting.chat):
            self.hub.send(session, message | {"history": True})

    async def signal(self, session: Session, req: MeetingSignal) -> Result:
        """``rtc.signal`` within a meeting: to the named participant's bound connection only."""
        username = me(session)
        meeting = self._meeting(req.meeting_id)
        recipient = meeting.signal_target(username, req.to)
        message = event_message(
            EventType.RTC_SIGNAL,
            meeting_id=meeting.meeting_id,
            **{"from": username},
            **req.payload(),
        )
        return Result(then=lambda: self._send_bound(meeting, recipient.username, message))

    # Leaving and ending ----------------------------------------------------------

    async def _depart(self, meeting: Meeting, username: str, reason: LeaveReason) -> Result:
        """``username`` leaves (or is lost); the last one out ends the meeting ``empty``."""
        before = self.hub.presence_of(username)
        left = meeting.leave(username, reason)
        self.table.left(meeting, username)
        if self.sfu is not None:
            self.sfu.participant_left(meeting, username)
        self.hub.timers.cancel(_grace_key(meeting, username))
        await self.hub.store.meeting_left(
            meeting.meeting_id, username, self.hub.now(), reason.value
        )
        log_event("meeting.left", meeting=meeting.meeting_id, user=username, reason=reason.value)
        ended = await self._finish(meeting, MeetingReason.EMPTY) if left.empty else None
        message = event_message(
            EventType.MEETING_LEFT,
            meeting_id=meeting.meeting_id,
            username=username,
            reason=reason.value,
            host=left.host,
        )

        async def after() -> None:
            if ended is not None:
                await self.hub.follow_up(ended)
            else:
                self._send_others(meeting, username, message)
            await self.hub.presence_changed(username, before)

        return Result(then=after)

    async def _finish(self, meeting: Meeting, reason: MeetingReason) -> Result:
        """End ``meeting``: state now, commit, then tell who is in it and who is invited."""
        present = list(meeting.participants)
        before = {username: self.hub.presence_of(username) for username in present}
        invited = list(meeting.invited)
        still_in = meeting.end(reason, self.hub.now())
        self.table.remove(meeting)
        if self.sfu is not None:
            self.sfu.meeting_ended(meeting)
        for username in present:
            self.hub.timers.cancel(_grace_key(meeting, username))
        assert meeting.ended_at is not None
        await self.hub.store.meeting_ended(meeting.meeting_id, meeting.ended_at, reason.value)
        log_event("meeting.ended", meeting=meeting.meeting_id, reason=reason.value)
        self.hub.metrics.meetings[reason.value] += 1
        message = event_message(
            EventType.MEETING_ENDED, meeting_id=meeting.meeting_id, reason=reason.value
        )

        async def after() -> None:
            for participant in still_in:
                self.hub.send_conn(participant.conn, participant.username, message)
            for username in invited:
                self.hub.send_user(username, message)
            for username, presence in before.items():
                await self.hub.presence_changed(username, presence)

        return Result(then=after)

    async def _let_go_if_dead(self, meeting: Meeting, username: str, session: Session) -> bool:
        """A participant joins from a new connection while another of theirs is bound: if that
        one does not answer a ping within :data:`PROBE_S` (the client moved to a new address
        and reconnected; the keepalive would notice after a minute of silence), it is let go
        as a lost connection is, and the join may bind the new one. ``False``: it is alive
        (another device: ``busy`` stands), or not on this instance."""
        bound = meeting.bound_conn(username)
        old = next(
            (s for s in self.hub.by_user.get(username, ()) if s.id == bound and s is not session),
            None,
        )
        probe = getattr(old.peer, "probe", None) if old is not None else None
        if old is None or probe is None or await probe(PROBE_S):
            return False
        log_event("conn.unanswered", conn=old.id, user=username, meeting=meeting.meeting_id)
        await self.hub.detach(old)
        return meeting.bound_conn(username) is None

    # A connection's life -----------------------------------------------------------

    def replay(self, session: Session) -> None:
        """A user logged in: each pending invitation is shown on the new connection too."""
        username = me(session)
        for meeting in self.table.invitations_of(username):
            self.hub.send(session, self._invited_message(meeting, meeting.invited[username]))

    def detached(self, session: Session, username: str) -> None:
        """``session`` is no longer ``username``'s: a meeting bound to it starts its grace."""
        meeting = self.table.of_user(username)
        if meeting is None or not meeting.detach(username, session.id):
            return
        log_event("meeting.detached", meeting=meeting.meeting_id, user=username)
        self.start_grace(meeting, username, self.hub.config.reconnect_grace_s)

    def start_grace(self, meeting: Meeting, username: str, delay_s: float) -> None:
        """In ``delay_s`` seconds ``username`` leaves ``meeting`` as lost, unless bound again."""
        self.hub.timers.start(
            _grace_key(meeting, username), delay_s, lambda: self._lost(meeting, username)
        )

    async def _lost(self, meeting: Meeting, username: str) -> None:
        """The grace ran out: the participant leaves with ``lost`` (unless they came back)."""
        if self.table.get(meeting.meeting_id) is not meeting:
            return
        if not meeting.is_participant(username) or meeting.bound_conn(username) is not None:
            return
        await self.hub.follow_up(await self._depart(meeting, username, LeaveReason.LOST))

    # History ---------------------------------------------------------------------

    async def history(self, username: str, limit: int) -> list[Json]:
        """The user's ended meetings as MeetingRecord objects, newest first."""
        records = await self.hub.store.list_meetings(username, limit)
        return [_record_json(record) for record in records]


def _grace_key(meeting: Meeting, username: str) -> tuple[str, str, str]:
    return ("meeting", meeting.meeting_id, username)


def _media_message(meeting: Meeting, participant: Participant) -> Json:
    return event_message(
        EventType.MEETING_MEDIA,
        meeting_id=meeting.meeting_id,
        username=participant.username,
        **participant.media_state(),
    )


def _record_json(record: MeetingRecord) -> Json:
    out: Json = {"meeting_id": record.meeting_id}
    if record.title is not None:
        out["title"] = record.title
    out |= {
        "host": record.host,
        "participants": list(record.participants),
        "started_at": iso(record.started_at),
        "ended_at": iso(record.ended_at),
    }
    if record.joined_at is not None:
        out["joined_at"] = iso(record.joined_at)
    if record.left_at is not None:
        out["left_at"] = iso(record.left_at)
    return out


__all__ = ["MeetingRouter"]
