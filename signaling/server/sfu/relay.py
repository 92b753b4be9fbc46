"""The hub's media-server part: one Janus room per ``"sfu"`` meeting, and the ``sfu.*`` relay.

Janus listens on loopback and answers only this server (its token), so a client never
talks to it for signalling: it sends plain JSEP here and the server carries it to the
participant's handles. Per meeting the server holds one Janus session with a control
handle (the room), one publisher handle per participant and one subscriber handle per
(viewer, publisher) pair.

Who may enter is decided twice: the meeting (:meth:`Meeting.require_participant`) for
every request, and Janus itself, which admits a handle to the room only with a token of
the room's ``allowed`` list: one random token per participant, added when they publish,
removed when they leave; the room's id is random and its secret derived from it and the
admin secret (``sweep.py``: a server that restarts after a crash can destroy the rooms its
previous run left). A participant never sees any of them.

When the room's instance dies, the pool calls :meth:`SfuRelay.instance_down`: each of
its meetings gets a new room on another instance (new tokens, new secret) and every
participant an ``sfu.reconnect``, after which they publish and subscribe again. A meeting
resumed by a new coordinator of several instances (:meth:`SfuRelay.meeting_resumed`) takes
the same path: its room and handles lived in the dead coordinator's Janus sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from signaling.protocol.constants import ErrorCode, EventType, RequestType, Topology
from signaling.protocol.errors import ProtocolError, bad_message
from signaling.protocol.messages import Json, event_message
from signaling.protocol.sfu import SfuAnswer, SfuPublish, SfuSubscribe, SfuTrickle, SfuVideo
from signaling.server.config import SfuSettings
from signaling.server.logs import log_event
from signaling.server.meetings import Meeting, MeetingTable
from signaling.server.routing import Background, Handler, Result, Session, me
from signaling.server.sfu.janus import JanusError, JanusSession, VideoRoomHandle
from signaling.server.sfu.pool import Member, SfuPool
from signaling.server.sfu.sweep import deployment_of, room_description, room_secret, sweep

if TYPE_CHECKING:
    from signaling.server.hub import Hub

#: How long a request waits for its meeting's room (being made, or moving after a failure).
READY_WAIT_S = 20.0
#: Between two tries to place a room when no instance is up.
PLACE_RETRY_S = 1.0
#: What the room lets each publisher send (bits/s); a small room's 720p fits.
PUBLISHER_BITRATE = 1_500_000


def _unavailable(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.UNAVAILABLE, message)


@dataclass(slots=True)
class Publication:
    """A participant's publisher handle in the room."""

    handle: VideoRoomHandle
    feed: str
    number: int
    #: Janus said its media is up (``webrtcup``): only then can anyone subscribe to it.
    live: bool = False


@dataclass(slots=True)
class Subscription:
    """A viewer's subscriber handle to one publication."""

    handle: VideoRoomHandle
    number: int
    video_mids: list[str]


@dataclass(slots=True)
class Room:
    """One meeting's room, on whichever instance holds it now."""

    meeting: Meeting
    ready: asyncio.Future[None]
    member: Member | None = None
    session: JanusSession | None = None
    control: VideoRoomHandle | None = None
    room_id: str = ""
    secret: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    publications: dict[str, Publication] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    numbers: int = 0
    #: Rises on every move: work begun on an older room is dropped.
    epoch: int = 0
    closed: bool = False

    def token(self, username: str) -> str:
        """The participant's token for this room (made on first use)."""
        return self.tokens.setdefault(username, secrets.token_urlsafe(18))


class SfuRelay:
    """Rooms for the meetings through a media server, and the ``sfu.*`` requests."""

    def __init__(self, hub: Hub, table: MeetingTable, settings: SfuSettings) -> None:
        self.hub = hub
        self.table = table
        self.settings = settings
        self.pool = SfuPool(
            list(settings.addresses),
            settings.admin_secret,
            self.instance_down,
            on_up=self.instance_up,
        )
        #: What this server's rooms are marked with (``sweep.py``).
        self.deployment = settings.deployment or deployment_of(hub.config.db_path)
        self.rooms: dict[str, Room] = {}
        self._background = Background("sfu")
        self._spawn = self._background.spawn

    # Life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the instances (waiting a few seconds for one to be up)."""
        await self.pool.start()

    async def stop(self) -> None:
        """Destroy the rooms and let go of the instances."""
        for room in list(self.rooms.values()):
            await self._close_room(room)
        await self._background.cancel()
        await self.pool.stop()

    @property
    def capacity(self) -> int:
        """Participants of a meeting through the media server."""
        return self.settings.capacity

    def available(self) -> bool:
        """Whether an instance is up now (a new meeting then goes through it)."""
        return bool(self.pool.healthy())

    def handlers(self) -> dict[RequestType, Handler]:
        """The relay's requests."""
        return {
            RequestType.SFU_PUBLISH: self._publish,
            RequestType.SFU_SUBSCRIBE: self._subscribe,
            RequestType.SFU_ANSWER: self._answer,
            RequestType.SFU_TRICKLE: self._trickle,
            RequestType.SFU_VIDEO: self._video,
        }

    # What the meeting part tells --------------------------------------------------

    def meeting_started(self, meeting: Meeting) -> None:
        """A meeting through the media server began: make its room."""
        room = Room(meeting, asyncio.get_running_loop().create_future())
        self.rooms[meeting.meeting_id] = room
        self._spawn(self._place(room))

    def meeting_resumed(self, meeting: Meeting) -> None:
        """A meeting another server of the service held until it died (``bus/redis.py``): its
        room went with that server's Janus session, so, as when a Janus dies, it gets a new room
        and every participant connected now an ``sfu.reconnect`` (the others publish again
        when they join again)."""
        self.meeting_started(meeting)
        self._tell_reconnect(meeting)

    def _tell_reconnect(self, meeting: Meeting) -> None:
        message = event_message(EventType.SFU_RECONNECT, meeting_id=meeting.meeting_id)
        for participant in meeting.participants.values():
            self.hub.send_conn(participant.conn, participant.username, message)

    def participant_left(self, meeting: Meeting, username: str) -> None:
        """A participant is out: their handles go, and others' subscriptions to them."""
        room = self.rooms.get(meeting.meeting_id)
        if room is None:
            return
        handles = []
        publication = room.publications.pop(username, None)
        if publication is not None:
            handles.append(publication.handle)
        for key in [k for k in room.subscriptions if username in k]:
            handles.append(room.subscriptions.pop(key).handle)
        token = room.tokens.pop(username, None)

        async def cleanup() -> None:
            for handle in handles:
                await handle.detach()
            if token is not None and room.control is not None and not room.closed:
                with contextlib.suppress(JanusError):
                    await room.control.message(self._allowed(room, "remove", token))

        self._spawn(cleanup())

    def meeting_ended(self, meeting: Meeting) -> None:
        """The meeting is over: destroy its room."""
        room = self.rooms.pop(meeting.meeting_id, None)
        if room is not None:
            self._spawn(self._close_room(room))

    async def instance_up(self, member: Member) -> None:
        """``member`` is connected (first or again): destroy the rooms of this deployment
        on it that no meeting of this server holds (left by a crashed run, or moved away)."""
        await sweep(
            member.janus,
            self.settings.admin_secret,
            self.deployment,
            lambda: {r.room_id for r in self.rooms.values() if r.member is not None},
        )

    async def instance_down(self, member: Member) -> None:
        """``member`` died: move each of its meetings to another instance."""
        for room in [r for r in self.rooms.values() if r.member is member]:
            old = room.session
            self._reset(room)
            if old is not None:
                self._spawn(old.destroy())
            log_event("sfu.moving", 30, meeting=room.meeting.meeting_id, sfu=member.address.url)
            self._tell_reconnect(room.meeting)
            self._spawn(self._place(room))

    # Rooms ----------------------------------------------------------------------

    def _reset(self, room: Room) -> None:
        room.epoch += 1
        room.member = room.session = room.control = None
        room.room_id = room.secret = ""  # the old room, if its instance lives, is an orphan
        room.publications.clear()
        room.subscriptions.clear()
        room.tokens.clear()
        if room.ready.done():
            room.ready = asyncio.get_running_loop().create_future()

    def _allowed(self, room: Room, action: str, *tokens: str) -> Json:
        return {
            "request": "allowed",
            "room": room.room_id,
            "secret": room.secret,
            "action": action,
            "allowed": list(tokens),
        }

    def _refresh_load(self) -> None:
        for member in self.pool.members:
            member.load = sum(
                len(r.meeting.participants) for r in self.rooms.values() if r.member is member
            )

    async def _place(self, room: Room) -> None:
        """Make the room on the least loaded instance up, trying until the meeting ends."""
        epoch = room.epoch
        while not room.closed and room.epoch == epoch:
            self._refresh_load()
            member = self.pool.pick()
            if member is None:
                await asyncio.sleep(PLACE_RETRY_S)
                continue
            session: JanusSession | None = None
            try:
                session = await member.janus.session()
                control = await session.attach()
                room_id = secrets.token_hex(12)
                secret = room_secret(self.settings.admin_secret, room_id)
                await control.message(
                    {
                        "request": "create",
                        "room": room_id,
                        "description": room_description(self.deployment, room.meeting.meeting_id),
                        "admin_key": self.settings.admin_secret,
                        "secret": secret,
                        "is_private": True,
                        "allowed": [],
                        "publishers": self.capacity,
                        "bitrate": PUBLISHER_BITRATE,
                        "audiocodec": "opus",
                        "videocodec": "vp8",
                        "notify_joining": False,
                    }
                )
            except JanusError as exc:
                log_event("sfu.room_failed", 30, meeting=room.meeting.meeting_id, error=exc.reason)
                if session is not None:
                    await session.destroy()
                await asyncio.sleep(PLACE_RETRY_S)
                continue
            if room.closed or room.epoch != epoch:
                await session.destroy()
                return
            room.member, room.session, room.control = member, session, control
            room.room_id, room.secret = room_id, secret
            log_event("sfu.room", meeting=room.meeting.meeting_id, sfu=member.address.url)
            if not room.ready.done():
                room.ready.set_result(None)
            return

    async def _close_room(self, room: Room) -> None:
        room.closed = True
        if not room.ready.done():
            room.ready.cancel()
        if room.control is not None:
            with contextlib.suppress(JanusError):
                await room.control.message(
                    {"request": "destroy", "room": room.room_id, "secret": room.secret}
                )
        if room.session is not None:
            await room.session.destroy()
        room.publications.clear()
        room.subscriptions.clear()

    # Requests -------------------------------------------------------------------

    def _room_of(self, meeting_id: str, username: str) -> Room:
        meeting = self.table.get(meeting_id)
        if meeting is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such meeting in progress")
        meeting.require_participant(username)
        room = self.rooms.get(meeting.meeting_id)
        if meeting.topology is not Topology.SFU or room is None:
            raise bad_message("this meeting is a mesh: use rtc.signal")
        return room

    async def _ready(self, room: Room) -> tuple[int, JanusSession]:
        """Wait for the room; returns its epoch and session (``unavailable`` if it never is)."""
        try:
            await asyncio.wait_for(asyncio.shield(room.ready), READY_WAIT_S)
        except (TimeoutError, asyncio.CancelledError):
            raise _unavailable("the media server is not reachable now") from None
        if room.session is None:
            raise _unavailable("the meeting is moving to another media server")
        return room.epoch, room.session

    @staticmethod
    def _check_epoch(room: Room, epoch: int) -> None:
        if room.epoch != epoch or room.closed:
            raise _unavailable("the meeting moved to another media server; publish again")

    def _target(self, room: Room, viewer: str, username: str) -> str:
        if username == viewer:
            raise bad_message("'username' names yourself")
        if not room.meeting.is_participant(username):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"'{username}' is not in this meeting")
        return username

    async def _publish(self, session: Session, req: SfuPublish) -> Result:
        username = me(session)
        room = self._room_of(req.meeting_id, username)
        epoch, janus = await self._ready(room)
        old = room.publications.pop(username, None)
        stale = [
            room.subscriptions.pop(k).handle for k in list(room.subscriptions) if k[1] == username
        ]
        for gone in ([old.handle] if old else []) + stale:
            await gone.detach()
        token = room.token(username)
        handle: VideoRoomHandle | None = None
        try:
            assert room.control is not None
            await room.control.message(self._allowed(room, "add", token))
            room.numbers += 1
            number = room.numbers
            handle = await janus.attach(lambda event: self._publisher_event(room, number, event))
            feed = f"{username}.{number}"
            await handle.message(
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": room.room_id,
                    "id": feed,
                    "display": username,
                    "token": token,
                },
                waits_event=True,
            )
            _, answer = await handle.message(
                {"request": "publish"}, jsep=req.description, waits_event=True
            )
        except JanusError as exc:
            if handle is not None:
                await handle.detach()
            raise self._failed(room, epoch, "publish", exc) from None
        if answer is None or room.epoch != epoch or not room.meeting.is_participant(username):
            await handle.detach()
            self._check_epoch(room, epoch)
            raise _unavailable("the media server gave no answer")
        room.publications[username] = Publication(handle, feed, number)
        publishers = [
            {"username": name, "publication": p.number}
            for name, p in room.publications.items()
            if name != username and p.live
        ]
        return Result({"description": _jsep(answer, room), "publishers": publishers})

    def _publisher_event(self, room: Room, number: int, event: Json) -> None:
        """Janus about a publisher handle: once its media is up, the others may subscribe."""
        if event.get("janus") != "webrtcup":
            return
        for username, publication in room.publications.items():
            if publication.number == number and not publication.live:
                publication.live = True
                log_event("sfu.published", meeting=room.meeting.meeting_id, user=username)
                message = event_message(
                    EventType.SFU_PUBLISHED,
                    meeting_id=room.meeting.meeting_id,
                    username=username,
                    publication=number,
                )
                for other in room.meeting.others(username):
                    self.hub.send_conn(other.conn, other.username, message)

    def _failed(self, room: Room, epoch: int, what: str, exc: JanusError) -> ProtocolError:
        log_event(f"sfu.{what}_failed", 30, meeting=room.meeting.meeting_id, error=exc.reason)
        if room.epoch != epoch:
            return _unavailable("the meeting moved to another media server; publish again")
        return _unavailable(f"the media server refused: {exc.reason}")

    async def _subscribe(self, session: Session, req: SfuSubscribe) -> Result:
        viewer = me(session)
        room = self._room_of(req.meeting_id, viewer)
        target = self._target(room, viewer, req.username)
        epoch, janus = await self._ready(room)
        publication = room.publications.get(target)
        if publication is None or not publication.live:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"'{target}' publishes nothing now")
        old = room.subscriptions.pop((viewer, target), None)
        if old is not None:
            await old.handle.detach()
        handle: VideoRoomHandle | None = None
        try:
            handle = await janus.attach()
            data, offer = await handle.message(
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": room.room_id,
                    "streams": [{"feed": publication.feed}],
                    "token": room.token(viewer),
                },
                waits_event=True,
            )
        except JanusError as exc:
            if handle is not None:
                await handle.detach()
            raise self._failed(room, epoch, "subscribe", exc) from None
        if offer is None or room.epoch != epoch:
            await handle.detach()
            self._check_epoch(room, epoch)
            raise _unavailable("the media server gave no offer")
        streams = data.get("streams") if isinstance(data.get("streams"), list) else []
        mids = [
            str(s["mid"]) for s in streams or [] if isinstance(s, dict) and s.get("type") == "video"
        ]
        room.subscriptions[(viewer, target)] = Subscription(handle, publication.number, mids)
        fields = {
            "username": target,
            "publication": publication.number,
            "description": _jsep(offer, room),
        }
        return Result(fields)

    def _subscription(self, room: Room, viewer: str, username: str) -> Subscription:
        subscription = room.subscriptions.get((viewer, self._target(room, viewer, username)))
        if subscription is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no subscription to '{username}'")
        return subscription

    async def _answer(self, session: Session, req: SfuAnswer) -> Result:
        viewer = me(session)
        room = self._room_of(req.meeting_id, viewer)
        epoch, _ = await self._ready(room)
        subscription = self._subscription(room, viewer, req.username)
        try:
            await subscription.handle.message(
                {"request": "start"}, jsep=req.description, waits_event=True
            )
        except JanusError as exc:
            raise self._failed(room, epoch, "answer", exc) from None
        return Result()

    async def _trickle(self, session: Session, req: SfuTrickle) -> Result:
        viewer = me(session)
        room = self._room_of(req.meeting_id, viewer)
        epoch, _ = await self._ready(room)
        if req.username is None:
            publication = room.publications.get(viewer)
            if publication is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, "you publish nothing now")
            handle = publication.handle
        else:
            handle = self._subscription(room, viewer, req.username).handle
        try:
            await handle.trickle(req.candidate)
        except JanusError as exc:
            raise self._failed(room, epoch, "trickle", exc) from None
        return Result()

    async def _video(self, session: Session, req: SfuVideo) -> Result:
        viewer = me(session)
        room = self._room_of(req.meeting_id, viewer)
        epoch, _ = await self._ready(room)
        subscription = self._subscription(room, viewer, req.username)
        if subscription.video_mids:
            streams = [{"mid": mid, "send": req.on} for mid in subscription.video_mids]
            try:
                await subscription.handle.message(
                    {"request": "configure", "streams": streams}, waits_event=True
                )
            except JanusError as exc:
                raise self._failed(room, epoch, "video", exc) from None
        return Result()


def _jsep(jsep: Json, room: Room) -> Json:
    """The plain JSEP a client gets: ``type`` and ``sdp`` only; Janus names the room in the
    SDP (``s=VideoRoom ID``), and the client is shown the meeting's id instead."""
    sdp = str(jsep.get("sdp"))
    if room.room_id:  # (never empty where a description is relayed; replace("") would insert)
        sdp = sdp.replace(room.room_id, room.meeting.meeting_id)
    return {"type": str(jsep.get("type")), "sdp": sdp}


__all__ = ["SfuRelay"]
