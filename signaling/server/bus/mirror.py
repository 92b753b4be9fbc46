"""What the coordinator keeps in Redis so that another instance can take its place.

The hub decides as it always did; this module only watches the things it changes that must
outlive the instance holding them: the calls in progress (with their timers' deadlines), the
meetings, the presence users chose, and who is logged in on each connection (a guest with what
its link admitted it to). Watching, not editing: the hub's ``calls``, meeting table,
``chosen_presence`` and ``timers`` are swapped, once, at start, for subclasses that report each
change (:func:`install`), and a session's login travels as a small dict (:func:`session_state`,
:func:`restore_session`).

A call changes only together with a timer of its own being started or cancelled (ringing, a
party's grace; cancelled even when it never ran) or when it is added or removed, so watching the
call table and the call timers sees every change of a call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, override

from signaling.protocol.constants import CallReason, Presence, Topology
from signaling.protocol.messages import Json, Media
from signaling.server.calls import Call, CallPhase, CallTable
from signaling.server.guests import GuestPass
from signaling.server.hub import Hub, Session
from signaling.server.meetings import Invitation, Meeting, MeetingTable, Participant, Person
from signaling.server.routing import Timers
from signaling.server.store import UserRecord

Changed = Callable[[str], None]


class WatchedCalls(CallTable):
    """The hub's call table, reporting each call added or removed by its id."""

    def __init__(self, unlimited: frozenset[str], changed: Changed) -> None:
        super().__init__(unlimited)
        self._changed = changed

    @override
    def add(self, call: Call) -> None:
        super().add(call)
        self._changed(call.call_id)

    @override
    def remove(self, call: Call) -> None:
        super().remove(call)
        self._changed(call.call_id)


class WatchedMeetings(MeetingTable):
    """The meeting table, reporting each meeting looked up or changed by its id.

    A meeting changes in many ways (joins, media, chat, invitations), always right after the
    hub looked it up here; reporting the look-up has its state written a moment later.
    """

    def __init__(self, changed: Changed) -> None:
        super().__init__()
        self._changed = changed

    def _seen(self, meeting: Meeting | None) -> Meeting | None:
        if meeting is not None:
            self._changed(meeting.meeting_id)
        return meeting

    @override
    def get(self, meeting_id: str) -> Meeting | None:
        return self._seen(super().get(meeting_id))

    @override
    def of_user(self, username: str) -> Meeting | None:
        return self._seen(super().of_user(username))

    @override
    def invitations_of(self, username: str) -> list[Meeting]:
        found = super().invitations_of(username)
        for meeting in found:
            self._seen(meeting)
        return found

    @override
    def add(self, meeting: Meeting) -> None:
        super().add(meeting)
        self._seen(meeting)

    @override
    def joined(self, meeting: Meeting, username: str) -> None:
        super().joined(meeting, username)
        self._seen(meeting)

    @override
    def left(self, meeting: Meeting, username: str) -> None:
        super().left(meeting, username)
        self._seen(meeting)

    @override
    def remove(self, meeting: Meeting) -> None:
        super().remove(meeting)
        self._seen(meeting)


class WatchedPresence(dict[str, Presence]):
    """The hub's chosen presence by user, reporting each user whose entry changed."""

    def __init__(self, changed: Changed) -> None:
        super().__init__()
        self._changed = changed

    @override
    def __setitem__(self, key: str, value: Presence) -> None:
        super().__setitem__(key, value)
        self._changed(key)

    @override
    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed(key)

    @override
    def pop(self, key: str, default: Any = None) -> Any:
        found = super().pop(key, default)
        self._changed(key)
        return found


def owner_of(key: Hashable) -> tuple[str, str, str] | None:
    """A call's or a meeting's timer key (``("call"|"meeting", id, name)``), else ``None``."""
    if isinstance(key, tuple) and len(key) == 3 and key[0] in ("call", "meeting"):
        return str(key[0]), str(key[1]), str(key[2])
    return None


class WatchedTimers(Timers):
    """The hub's timers, remembering each call's and meeting's timers' deadlines (Unix s)."""

    def __init__(self, spawn: Callable[[Awaitable[None]], None], changed: Changed) -> None:
        super().__init__(spawn)
        self._changed = changed
        #: ("call"|"meeting", id) → timer name ("ring" or a username) → deadline.
        self.deadlines: dict[tuple[str, str], dict[str, float]] = {}
        #: Awaited by a timer that fires, before its work: False skips the work (the bus's
        #: lease was lost, another instance decides now).
        self.gate: Callable[[], Awaitable[bool]] | None = None

    def of(self, kind: str, owner: str) -> dict[str, float]:
        """The deadlines of one call's or meeting's timers, by name."""
        return self.deadlines.get((kind, owner), {})

    @override
    def start(self, key: Hashable, delay: float, work: Callable[[], Awaitable[None]]) -> None:
        async def gated() -> None:
            if self.gate is None or await self.gate():
                await work()

        super().start(key, delay, gated)
        owner = owner_of(key)
        if owner is not None:
            kind, owner_id, name = owner
            self.deadlines.setdefault((kind, owner_id), {})[name] = time.time() + delay
            if kind == "call":
                self._changed(owner_id)

    @override
    def cancel(self, key: Hashable) -> None:
        super().cancel(key)
        owner = owner_of(key)
        if owner is None:
            return
        kind, owner_id, name = owner
        timers = self.deadlines.get((kind, owner_id))
        if timers is not None and timers.pop(name, None) is not None and not timers:
            del self.deadlines[(kind, owner_id)]
        if kind == "call":
            # Even a timer that never ran: an answer cancels the ring timer, which starts only
            # after the invite's reply, so an Echo Test that answers at once changes the call
            # with no timer of its own to show for it.
            self._changed(owner_id)

    @override
    def cancel_all(self) -> None:
        super().cancel_all()
        self.deadlines.clear()


def install(
    hub: Hub, call_changed: Changed, presence_changed: Changed, meeting_changed: Changed
) -> WatchedTimers:
    """Swap the hub's (still empty) call and meeting tables, chosen presence and timers for
    watched ones."""
    assert not len(hub.calls) and not hub.chosen_presence, "install before the hub serves"
    assert not len(hub.meetings.table), "install before the hub serves"
    hub.calls = WatchedCalls(frozenset(hub.calls._unlimited), call_changed)
    meetings = WatchedMeetings(meeting_changed)
    hub.meetings.table = meetings
    if hub.meetings.sfu is not None:
        hub.meetings.sfu.table = meetings
    hub.chosen_presence = WatchedPresence(presence_changed)
    timers = WatchedTimers(hub._spawn, call_changed)
    hub.timers = timers
    return timers


def call_json(call: Call, deadlines: dict[str, float]) -> str:
    """A call in progress and its timers' deadlines, as stored in Redis."""
    return json.dumps(
        {
            "id": call.call_id,
            "caller": call.caller,
            "callee": call.callee,
            "media": call.media.to_json(),
            "started": call.started_at,
            "caller_conn": call.caller_conn,
            "callee_conn": call.callee_conn,
            "phase": call.phase.value,
            "answered": call.answered_at,
            "timers": deadlines,
        }
    )


def call_from_json(text: str | bytes) -> tuple[Call, dict[str, float]]:
    """The inverse of :func:`call_json`."""
    data = json.loads(text)
    media = data["media"]
    call = Call(
        data["id"],
        data["caller"],
        data["callee"],
        Media(bool(media["audio"]), bool(media["video"])),
        float(data["started"]),
        data["caller_conn"],
        data["callee_conn"],
        CallPhase(data["phase"]),
        data["answered"],
    )
    return call, {str(k): float(v) for k, v in data["timers"].items()}


def meeting_json(meeting: Meeting, deadlines: dict[str, float]) -> str:
    """A meeting in progress and its participants' grace deadlines, as stored in Redis."""
    return json.dumps(
        {
            "id": meeting.meeting_id,
            "host": meeting.host,
            "capacity": meeting.capacity,
            "started": meeting.started_at,
            "title": meeting.title,
            "topology": meeting.topology.value,
            "participants": [
                [p.username, p.person.display_name, p.audio, p.video, p.screen, p.joined_at, p.conn]
                for p in meeting.participants.values()
            ],
            "invited": [
                [
                    i.person.username,
                    i.person.display_name,
                    i.inviter.username,
                    i.inviter.display_name,
                    i.media.audio,
                    i.media.video,
                ]
                for i in meeting.invited.values()
            ],
            "former": sorted(meeting.former),
            "chat": list(meeting.chat),
            "e2e_until": meeting.end_to_end_until,
            "timers": deadlines,
        },
        separators=(",", ":"),
    )


def meeting_from_json(text: str | bytes) -> tuple[Meeting, dict[str, float]]:
    """The inverse of :func:`meeting_json`."""
    data = json.loads(text)
    meeting = Meeting(
        str(data["id"]),
        str(data["host"]),
        int(data["capacity"]),
        float(data["started"]),
        data["title"],
        Topology(data["topology"]),
    )
    for username, name, audio, video, screen, joined, conn in data["participants"]:
        meeting.participants[username] = Participant(
            Person(username, name), bool(audio), bool(video), float(joined), conn, bool(screen)
        )
    for username, name, by, by_name, audio, video in data["invited"]:
        meeting.invited[username] = Invitation(
            Person(username, name), Person(by, by_name), Media(bool(audio), bool(video))
        )
    meeting.former.update(data["former"])
    meeting.chat.extend(data["chat"])
    meeting.end_to_end_until = data.get("e2e_until")  # absent: mirrored by an older instance
    return meeting, {str(k): float(v) for k, v in data["timers"].items()}


def timer_reason(name: str) -> CallReason:
    """What a call timer ends the call with: no answer while ringing, else a party gone."""
    return CallReason.TIMEOUT if name == "ring" else CallReason.LOST


def session_state(session: Session) -> Json | None:
    """Who is logged in on ``session``: a user (by token) or a guest (what its link admitted it
    to, ``"g"``); ``None``: nobody, or a guest the server is sending away."""
    user = session.user
    if user is None:
        return None
    state: Json = {"u": user.username, "n": user.display_name, "f": sorted(session.features)}
    guest: GuestPass | None = session.guest
    if guest is not None:
        if guest.leaving:
            return None
        return state | {"g": [guest.link_id, guest.owner, guest.meeting_id]}
    if session.token_hash is None:
        return None
    return state | {"t": session.token_hash}


def restore_session(hub: Hub, session: Session, state: Json) -> None:
    """Log ``session`` in again as it was on the previous coordinator (no events sent)."""
    user = UserRecord(str(state["u"]), str(state["n"]))
    session.user = user
    session.features = frozenset(str(f) for f in state["f"])
    admitted = state.get("g")
    if admitted is not None:  # a guest: no token, no presence, its link's pass
        link_id, owner, meeting_id = admitted
        session.guest = GuestPass(str(link_id), str(owner), meeting_id)
        hub.guests.sessions[user.username] = session
        hub.by_user.setdefault(user.username, set()).add(session)
        return
    session.token_hash = str(state["t"])
    if user.username not in hub.by_user:
        hub.by_user[user.username] = set()
        if user.username not in hub.chosen_presence:
            hub.chosen_presence[user.username] = Presence.ONLINE
    hub.by_user[user.username].add(session)
