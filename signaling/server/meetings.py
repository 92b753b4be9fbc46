"""The server's view of a meeting: a state machine with no I/O, no clock and no timers.

A meeting has participants in order of joining, a host (the creator, then the longest
present participant when the host leaves), pending invitations, a capacity and a
topology. Each transition checks who asks and raises :class:`ProtocolError` with the
protocol's code when it is not allowed; the hub persists the change and tells the
participants. Time comes in as an argument, like :mod:`signaling.server.calls`.

Beside :class:`~signaling.server.calls.Call`, not inside it: a 1:1 call and a meeting
share words (bound connection, grace, ended) but not their shape.

A participant is *bound* to the connection that created or joined: their events and
relayed ``rtc.signal`` go there. When it closes they are *detached*, and stay a
participant until the hub's grace timer makes them leave with ``lost``, or until a new
connection of theirs joins again and is bound instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signaling.protocol.constants import (
    ECHO_USERNAME,
    ErrorCode,
    LeaveReason,
    MeetingReason,
    Topology,
)
from signaling.protocol.errors import ProtocolError, bad_message
from signaling.protocol.messages import Media

#: Writes a time as the protocol does (the hub's ``iso``).
TimeWriter = Callable[[float], str | None]
#: The chat a meeting keeps for those who join later: its newest messages, while it lasts.
CHAT_HISTORY = 100


def _forbidden(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.FORBIDDEN, message)


@dataclass(frozen=True, slots=True)
class Person:
    """A user as a meeting shows them (the protocol's User object)."""

    username: str
    display_name: str

    def public(self) -> dict[str, Any]:
        """The protocol's User object."""
        return {"username": self.username, "display_name": self.display_name}


@dataclass(slots=True)
class Participant:
    """Someone in the meeting: what they send, since when, and where their events go."""

    person: Person
    audio: bool
    video: bool
    joined_at: float
    #: The bound connection; ``None`` while detached (in the grace period).
    conn: int | None
    screen: bool = False

    @property
    def username(self) -> str:
        """Who it is."""
        return self.person.username

    def media_state(self) -> dict[str, bool]:
        """``audio``, ``video`` and ``screen``, as ``meeting.media`` carries them."""
        return {"audio": self.audio, "video": self.video, "screen": self.screen}


@dataclass(frozen=True, slots=True)
class Invitation:
    """A pending invitation: who, by whom, and what the inviter sent when inviting.

    ``meeting.declined`` goes to the inviter; ``meeting.invited`` (sent again to each
    connection the invitee logs in on) shows the inviter and their media.
    """

    person: Person
    inviter: Person
    media: Media


@dataclass(frozen=True, slots=True)
class Joined:
    """What :meth:`Meeting.join` did: a new join, or ``rejoined`` (in it already, bound again)."""

    participant: Participant
    rejoined: bool
    #: The returning participant's media differ from what the others were last told.
    media_changed: bool = False


@dataclass(frozen=True, slots=True)
class Left:
    """What :meth:`Meeting.leave` did: the host after it, and whether nobody is left."""

    participant: Participant
    reason: LeaveReason
    host: str
    empty: bool


@dataclass(slots=True)
class Meeting:
    """One meeting in progress (or just ended)."""

    meeting_id: str
    host: str
    capacity: int
    started_at: float
    title: str | None = None
    topology: Topology = Topology.MESH
    #: In order of joining (dicts keep insertion order).
    participants: dict[str, Participant] = field(default_factory=dict)
    invited: dict[str, Invitation] = field(default_factory=dict)
    #: Everyone who was ever a participant (they may join again while it lasts).
    former: set[str] = field(default_factory=set)
    ended_at: float | None = None
    reason: MeetingReason | None = None
    #: The newest ``meeting.chat`` events relayed (in memory only, gone with the meeting).
    chat: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=CHAT_HISTORY))
    #: When a meeting through a media server continues an end-to-end call: the time of the
    #: move. The call's chat went end to end, never through here: whoever joins later is
    #: told that messages from before are not shown (``end_to_end_until``, docs/protocol.md).
    end_to_end_until: float | None = None

    @classmethod
    def create(
        cls,
        meeting_id: str,
        creator: Person,
        media: Media,
        conn: int,
        now: float,
        *,
        capacity: int,
        title: str | None = None,
        topology: Topology = Topology.MESH,
    ) -> Meeting:
        """A new meeting with its creator as the only participant and host."""
        if capacity < 1:
            raise ValueError("a meeting holds at least its creator")
        meeting = cls(meeting_id, creator.username, capacity, now, title, topology)
        meeting._add(creator, media, conn, now)
        return meeting

    # Questions ---------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """Whether the meeting is over."""
        return self.ended_at is not None

    def is_participant(self, username: str) -> bool:
        """Whether ``username`` is in the meeting now (detached ones included)."""
        return username in self.participants

    def bound_conn(self, username: str) -> int | None:
        """The connection ``username``'s meeting events go to, if they have one now."""
        participant = self.participants.get(username)
        return participant.conn if participant is not None else None

    def others(self, username: str) -> list[Participant]:
        """Every participant but ``username``, in order of joining."""
        return [p for name, p in self.participants.items() if name != username]

    def to_json(self, iso: TimeWriter) -> dict[str, Any]:
        """The protocol's Meeting object; ``iso`` writes times as the protocol does."""
        out: dict[str, Any] = {"meeting_id": self.meeting_id}
        if self.title is not None:
            out["title"] = self.title
        out |= {
            "host": self.host,
            "topology": self.topology.value,
            "capacity": self.capacity,
            "participants": [participant_json(p, iso) for p in self.participants.values()],
            "invited": [i.person.public() for i in self.invited.values()],
            "started_at": iso(self.started_at),
        }
        if self.end_to_end_until is not None:
            out["end_to_end_until"] = iso(self.end_to_end_until)
        return out

    # Checks ------------------------------------------------------------------

    def _require_open(self) -> None:
        if self.ended:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such meeting in progress")

    def require_participant(self, username: str) -> Participant:
        """The participant ``username``, or ``forbidden``."""
        self._require_open()
        participant = self.participants.get(username)
        if participant is None:
            raise _forbidden("you are not in this meeting")
        return participant

    # Transitions -------------------------------------------------------------

    def _add(self, person: Person, media: Media, conn: int, now: float) -> Participant:
        participant = Participant(person, media.audio, media.video, now, conn)
        self.participants[person.username] = participant
        self.former.add(person.username)
        self.invited.pop(person.username, None)
        return participant

    def invite(self, by: str, people: list[Person]) -> list[Invitation]:
        """``by`` invites ``people``; returns the invitations that are new.

        Whom the inviter may invite (accepted contacts only) is the hub's to check, since
        contacts live in the store; what is checked here is the meeting's side: only a
        participant invites, and oneself or ``echo`` is no one to invite. Someone invited
        or present already is left as they are.
        """
        inviter = self.require_participant(by)
        check_invitees(by, [person.username for person in people])
        media = Media(inviter.audio, inviter.video)
        new = []
        for person in people:
            if person.username in self.participants or person.username in self.invited:
                continue
            invitation = Invitation(person, inviter.person, media)
            self.invited[person.username] = invitation
            new.append(invitation)
        return new

    def join(self, person: Person, media: Media, conn: int, now: float) -> Joined:
        """``person`` joins on connection ``conn`` (or comes back to it after a lost connection).

        A participant who is detached is bound to ``conn`` again, keeping their place and
        host role; one whose bound connection is ``conn`` already is answered as is. Anyone
        else must be invited or a former participant, and find a free place.
        """
        self._require_open()
        present = self.participants.get(person.username)
        if present is not None:
            if present.conn is not None and present.conn != conn:
                raise ProtocolError(ErrorCode.BUSY, "you are in this meeting on another connection")
            before = present.media_state()
            if present.conn is None:
                present.screen = False  # a new connection shares no screen yet
            present.conn = conn
            present.audio, present.video = media.audio, media.video
            changed = present.media_state() != before
            return Joined(present, rejoined=True, media_changed=changed)
        if person.username not in self.invited and person.username not in self.former:
            raise _forbidden("you are not invited to this meeting")
        if len(self.participants) >= self.capacity:
            raise ProtocolError(
                ErrorCode.MEETING_FULL,
                f"the meeting has its {self.capacity} participants already",
            )
        return Joined(self._add(person, media, conn, now), rejoined=False)

    def admit(self, person: Person, media: Media, conn: int | None, now: float) -> Participant:
        """``person`` is in from the start, uninvited: the other party of the call that this
        meeting continues (``meeting.create`` with ``from_call``), bound to the connection
        their call was bound to."""
        self._require_open()
        if person.username in self.participants:
            raise bad_message(f"'{person.username}' is in the meeting already")
        if len(self.participants) >= self.capacity:
            raise ProtocolError(ErrorCode.MEETING_FULL, "the meeting has no place left")
        participant = self._add(person, media, 0, now)
        participant.conn = conn
        return participant

    def decline(self, username: str) -> Invitation:
        """An invited user declines; the invitation is gone."""
        self._require_open()
        invitation = self.invited.pop(username, None)
        if invitation is None:
            raise _forbidden("you are not invited to this meeting")
        return invitation

    def leave(self, username: str, reason: LeaveReason = LeaveReason.LEFT) -> Left:
        """A participant leaves (or, with ``lost``, did not come back in time).

        When the host leaves, the longest present participant (the first in joining
        order) becomes host. The meeting itself is ended by :meth:`end`, which the hub
        calls when :attr:`Left.empty` says nobody is left.
        """
        participant = self.require_participant(username)
        del self.participants[username]
        if self.host == username and self.participants:
            self.host = next(iter(self.participants))
        return Left(participant, reason, self.host, empty=not self.participants)

    def check_end(self, username: str) -> None:
        """Only the host ends a meeting for everyone."""
        self.require_participant(username)
        if username != self.host:
            raise _forbidden("only the host can end the meeting; leave it instead")

    def end(self, reason: MeetingReason, now: float) -> list[Participant]:
        """End the meeting; returns who was still in it (each gets ``meeting.ended``)."""
        self._require_open()
        present = list(self.participants.values())
        self.participants.clear()
        self.ended_at = now
        self.reason = reason
        return present

    def set_media(self, username: str, audio: bool, video: bool, screen: bool) -> bool:
        """A participant says what they send now; returns whether it changed."""
        participant = self.require_participant(username)
        before = participant.media_state()
        participant.audio, participant.video, participant.screen = audio, video, screen
        return participant.media_state() != before

    def signal_target(self, sender: str, to: str) -> Participant:
        """``rtc.signal`` goes from a participant to another one; returns the recipient."""
        self.require_participant(sender)
        if to == sender:
            raise bad_message("'to' names yourself")
        recipient = self.participants.get(to)
        if recipient is None:
            raise _forbidden(f"'{to}' is not in this meeting")
        return recipient

    def detach(self, username: str, conn: int) -> bool:
        """Connection ``conn`` closed: whether it was ``username``'s bound one (start a grace)."""
        participant = self.participants.get(username)
        if self.ended or participant is None or participant.conn != conn:
            return False
        participant.conn = None
        return True


def check_invitees(by: str, usernames: list[str] | tuple[str, ...]) -> None:
    """Oneself and the Echo Test are no one to invite (``bad_message``)."""
    for username in usernames:
        if username == by:
            raise bad_message("you cannot invite yourself")
        if username == ECHO_USERNAME:
            raise bad_message("the Echo Test cannot join meetings")


def participant_json(participant: Participant, iso: TimeWriter) -> dict[str, Any]:
    """The protocol's Participant object."""
    return {
        **participant.person.public(),
        **participant.media_state(),
        "joined_at": iso(participant.joined_at),
    }


class MeetingTable:
    """The meetings in progress, by id and by participant (a user is in at most one)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Meeting] = {}
        self._by_user: dict[str, Meeting] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, meeting_id: str) -> Meeting | None:
        """The meeting in progress with this id."""
        return self._by_id.get(meeting_id)

    def of_user(self, username: str) -> Meeting | None:
        """The meeting ``username`` is a participant of."""
        return self._by_user.get(username)

    def invitations_of(self, username: str) -> list[Meeting]:
        """The meetings in progress that ``username`` is invited to."""
        return [m for m in self._by_id.values() if username in m.invited]

    def add(self, meeting: Meeting) -> None:
        """Start tracking a new meeting and its creator."""
        if meeting.meeting_id in self._by_id:
            raise bad_message("'meeting_id' is already in use")
        for username in meeting.participants:
            self.joined(meeting, username)
        self._by_id[meeting.meeting_id] = meeting

    def joined(self, meeting: Meeting, username: str) -> None:
        """``username`` is now a participant of ``meeting``."""
        other = self._by_user.get(username)
        if other is not None and other is not meeting:
            raise ProtocolError(ErrorCode.BUSY, "you are in another meeting")
        self._by_user[username] = meeting

    def left(self, meeting: Meeting, username: str) -> None:
        """``username`` is no longer a participant of ``meeting``."""
        if self._by_user.get(username) is meeting:
            del self._by_user[username]

    def remove(self, meeting: Meeting) -> None:
        """Forget a meeting (it ended, or its creation was not committed)."""
        self._by_id.pop(meeting.meeting_id, None)
        for username in [u for u, m in self._by_user.items() if m is meeting]:
            del self._by_user[username]

    def all(self) -> list[Meeting]:
        """Every meeting in progress."""
        return list(self._by_id.values())
