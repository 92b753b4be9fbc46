"""One meeting, seen from one participant: a pure state machine, no sockets, no timers, no aiortc.

A meeting (protocol v1.1) is a mesh: this end holds one peer connection, a
*link*, to every other participant. The machine decides which links exist and
who offers on each; ``meeting_session.py`` carries its actions out on aiortc.
Feed inputs, then ``take_actions()``, as with :class:`~gui.core.call_machine.CallMachine`.

States::

    idle ──create / join──▶ joining ──ok──▶ joined ──leave / end / meeting.ended──▶ ended(reason)
    invited ──join──▶ joining            joining ──refused (meeting_full, forbidden...)──▶ ended
    invited ──decline / meeting.ended──▶ ended

The mesh rule of the protocol: whoever joins offers to everyone already present
(in the order of the ``participants`` list of the ``ok`` reply); those present
answer and never offer to a newcomer. So a link is opened as the offerer when
this end's join is acknowledged, and as the answerer when an offer arrives. An
offer from a participant who has a link already means they came back (after a
lost connection, the returning participant offers again to everyone): the old
link is closed and a new one answers. This end does the same when its own
signaling connection comes back: it joins again and offers anew to everyone.

A link that breaks (its media fails, the peer sends something unusable, or it
does not connect in time) is closed and marked ``failed``; the participant
stays listed until the server says they left, and the meeting goes on with the
others. Whatever the peer sends cannot end the meeting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from gui.core.call_machine import MAX_TRICKLED_CANDIDATES, SendRequest

log = logging.getLogger("parley.meeting")

Json = dict[str, Any]

__all__ = [
    "AddCandidate",
    "ApplyRemoteDescription",
    "CloseLink",
    "LinkState",
    "MakeAnswer",
    "MeetingMachine",
    "MeetingState",
    "OpenLink",
    "Participant",
    "ParticipantsChanged",
    "RetryJoin",
    "RetryLink",
    "SendRequest",
    "StateChanged",
]


class MeetingState(StrEnum):
    """Where this end stands in the meeting."""

    IDLE = "idle"
    INVITED = "invited"
    JOINING = "joining"
    JOINED = "joined"
    ENDED = "ended"


class LinkState(StrEnum):
    """This end's peer connection to one participant, as a tile shows it."""

    WAITING = "waiting"  # no link yet: the participant joined and will offer
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


#: Why this end's part in the meeting ended, besides the server's (``ended``, ``empty``) and
#: the codes of a refused create or join (``meeting_full``, ``forbidden``, ``not_found``...).
LEFT = "left"
DECLINED = "declined"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class Participant:
    """Another participant, as the meeting window shows them."""

    username: str
    display_name: str
    audio: bool = False
    video: bool = False
    screen: bool = False
    link: LinkState = LinkState.WAITING
    #: Why the link failed, for the logs (``None`` unless it did).
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class OpenLink:
    """Make a peer connection to ``username``; as the offerer, negotiate every section and
    report the offer with ``local_description``."""

    username: str
    offerer: bool


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close the peer connection to ``username`` and stop what it received."""

    username: str


@dataclass(frozen=True, slots=True)
class ApplyRemoteDescription:
    """Check and set ``username``'s offer or answer on their link."""

    username: str
    description: Json


@dataclass(frozen=True, slots=True)
class MakeAnswer:
    """Answer the offer just applied on ``username``'s link; report it with
    ``local_description``."""

    username: str


@dataclass(frozen=True, slots=True)
class AddCandidate:
    """Add a trickled ICE candidate from ``username``."""

    username: str
    candidate: Json


@dataclass(frozen=True, slots=True)
class ParticipantsChanged:
    """The other participants (in order of joining), the host or the invitations changed."""

    participants: tuple[Participant, ...]
    host: str | None
    invited: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StateChanged:
    """This end's state changed (``reason`` once ended)."""

    state: MeetingState
    reason: str | None = None


#: A link this end offered that fails is offered again, a fresh peer connection for that pair
#: only, after each of these delays in turn (seconds); after the last, the tile stays failed
#: until the other participant offers (coming back) or leaves. A link that connects starts over.
LINK_RETRY_DELAYS_S = (1.0, 3.0, 8.0)
#: Coming back on a new connection (a new address) while the server still holds the old one,
#: which it notices only after up to a minute of silence (``SILENCE_TIMEOUT_S``), the join is
#: refused ``busy``: it is tried again every ``REJOIN_RETRY_S``, this many times (75 s).
REJOIN_RETRY_S = 3.0
REJOIN_ATTEMPTS = 25


@dataclass(frozen=True, slots=True)
class RetryJoin:
    """In ``delay_s`` seconds, call :meth:`MeetingMachine.retry_join`."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class RetryLink:
    """In ``delay_s`` seconds, call :meth:`MeetingMachine.retry_link` for ``username``."""

    username: str
    delay_s: float


Action = (
    SendRequest
    | OpenLink
    | CloseLink
    | ApplyRemoteDescription
    | MakeAnswer
    | AddCandidate
    | ParticipantsChanged
    | StateChanged
    | RetryLink
    | RetryJoin
)


@dataclass(slots=True)
class _Link:
    """What the machine remembers of one open link."""

    offerer: bool
    remote_set: bool = False
    held: list[Json] = field(default_factory=list)
    candidates: int = 0


def _bool(value: object) -> bool:
    return value is True


class MeetingMachine:
    """The life of one meeting at one participant's end."""

    def __init__(self, me: str, meeting_id: str, media: Json) -> None:
        """``media`` is what this end sends: ``{"audio", "video", "screen"}`` booleans."""
        self.me = me.lower()
        self.meeting_id = meeting_id.lower()
        self.media = {k: _bool(media.get(k)) for k in ("audio", "video", "screen")}
        self.state = MeetingState.IDLE
        self.reason: str | None = None
        self.host: str | None = None
        self.title: str | None = None
        #: ``"mesh"`` (links to every participant, made here) or ``"sfu"`` (a media server:
        #: no links; ``sfu_session.py`` publishes and subscribes), from the Meeting object.
        self.topology = "mesh"
        #: This end joined after the meeting moved from end to end (a 1:1 call) to a media
        #: server: the chat from before never went through the server and is not shown here
        #: (the Meeting's ``end_to_end_until``; ``meeting_chat.NOT_SHOWN_END_TO_END``).
        self.end_to_end_before = False
        #: Who invited this end (the ``from`` User of ``meeting.invited``), when invited.
        self.inviter: Json | None = None
        #: The other participants by username, in order of joining.
        self.participants: dict[str, Participant] = {}
        self.invited: list[str] = []
        self._links: dict[str, _Link] = {}
        self._actions: list[Action] = []
        self._rejoining = False
        self._rejoin_attempts = 0
        self._early: list[Json] = []
        #: Retries of a failed link this end offered, by participant, since it last connected.
        self._retries: dict[str, int] = {}

    @classmethod
    def from_invitation(cls, me: str, event: Json, media: Json) -> MeetingMachine:
        """A machine for a ``meeting.invited`` event: join with :meth:`join`, or :meth:`decline`."""
        machine = cls(me, str(event.get("meeting_id", "")), media)
        machine.state = MeetingState.INVITED
        inviter = event.get("from")
        machine.inviter = inviter if isinstance(inviter, dict) else None
        title = event.get("title")
        machine.title = title if isinstance(title, str) else None
        machine._do(StateChanged(MeetingState.INVITED))
        return machine

    @classmethod
    def from_call(
        cls, me: str, meeting: Json, peer: str, offerer: bool, media: Json
    ) -> MeetingMachine:
        """A machine for the meeting this end's 1:1 call just moved into (``call.ended`` with
        reason ``moved_to_meeting``, or the reply to ``meeting.create`` with ``from_call``).

        It is joined already. In a mesh, its link to ``peer`` is the call's peer connection,
        kept as it is (``offerer`` as in the call: the caller offered): nothing is offered to
        anyone, and newcomers offer to both parties as to anyone present. Through a media
        server the machine holds no link: the session keeps the call's connection beside the
        media server's until those carry the media (``sfu_handover.py``). What this end sends
        is told to the server when it differs from what the Meeting says.
        """
        machine = cls(me, str(meeting.get("meeting_id", "")), media)
        machine._read_meeting(meeting)
        machine.state = MeetingState.JOINED
        peer = peer.lower()
        if peer in machine.participants and machine.topology == "mesh":
            machine._links[peer] = _Link(offerer=offerer, remote_set=True)
            machine._set(peer, link=LinkState.CONNECTED)
        machine._do(StateChanged(MeetingState.JOINED))
        machine._changed()
        mine = next(
            (
                p
                for p in meeting.get("participants") or []
                if isinstance(p, dict) and p.get("username") == machine.me
            ),
            None,
        )
        told = {k: _bool(mine.get(k)) for k in machine.media} if mine is not None else None
        if told != machine.media:
            machine._do(
                SendRequest("meeting.media", {"meeting_id": machine.meeting_id, **machine.media})
            )
        return machine

    # Output -----------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        """What to do now, in order; the list is emptied."""
        actions, self._actions = self._actions, []
        return actions

    def _do(self, *actions: Action) -> None:
        self._actions.extend(actions)

    def _enter(self, state: MeetingState) -> None:
        if state is not self.state:
            self.state = state
            self._do(StateChanged(state))

    def _changed(self) -> None:
        self._do(
            ParticipantsChanged(tuple(self.participants.values()), self.host, tuple(self.invited))
        )

    def _end(self, reason: str, *, request: str | None = None) -> None:
        if self.state is MeetingState.ENDED:
            return
        if request is not None:
            self._do(SendRequest(request, {"meeting_id": self.meeting_id}))
        for username in list(self._links):
            self._close(username)
        self.state = MeetingState.ENDED
        self.reason = reason
        self._do(StateChanged(MeetingState.ENDED, reason))

    @property
    def ended(self) -> bool:
        """Whether this end is out of the meeting for good."""
        return self.state is MeetingState.ENDED

    @property
    def joined(self) -> bool:
        """Whether this end is a participant now."""
        return self.state is MeetingState.JOINED

    def link_offerer(self, username: str) -> bool | None:
        """Whether this end offers on its link to ``username`` (``None``: no link)."""
        link = self._links.get(username)
        return None if link is None else link.offerer

    # The user ---------------------------------------------------------------

    def create(self, invite: list[str] | None = None, title: str | None = None) -> None:
        """Start the meeting as its host (and invite ``invite``)."""
        assert self.state is MeetingState.IDLE
        fields: Json = {"meeting_id": self.meeting_id, "media": self._join_media()}
        if invite:
            fields["invite"] = [u.lower() for u in invite]
        if title:
            fields["title"] = title
        self.title = title
        self._do(SendRequest("meeting.create", fields))
        self._enter(MeetingState.JOINING)

    def join(self) -> None:
        """Join (an invitation, or a meeting this end was in before)."""
        if self.state not in (MeetingState.IDLE, MeetingState.INVITED):
            log.info("join ignored in state %s", self.state)
            return
        self._send_join()
        self._enter(MeetingState.JOINING)

    def _send_join(self) -> None:
        self._do(
            SendRequest(
                "meeting.join", {"meeting_id": self.meeting_id, "media": self._join_media()}
            )
        )

    def _join_media(self) -> Json:
        return {"audio": self.media["audio"], "video": self.media["video"]}

    def decline(self) -> None:
        """Refuse the invitation."""
        if self.state is MeetingState.INVITED:
            self._end(DECLINED, request="meeting.decline")

    def leave(self) -> None:
        """Leave (the meeting goes on for the others); while joining, leave once in."""
        if self.state in (MeetingState.JOINED, MeetingState.JOINING):
            self._end(LEFT, request="meeting.leave")
        elif self.state is MeetingState.INVITED:
            self._end(DECLINED, request="meeting.decline")
        elif self.state is MeetingState.IDLE:
            self._end(LEFT)

    def end(self) -> None:
        """End the meeting for everyone (the host only; anyone else just leaves)."""
        if self.state is MeetingState.JOINED and self.host == self.me:
            self._end("ended", request="meeting.end")
        else:
            self.leave()

    def invite(self, usernames: list[str]) -> None:
        """Invite more contacts."""
        if self.joined and usernames:
            self._do(
                SendRequest(
                    "meeting.invite",
                    {"meeting_id": self.meeting_id, "usernames": [u.lower() for u in usernames]},
                )
            )

    def set_media(self, audio: bool, video: bool, screen: bool) -> None:
        """What this end sends now; the others are told through the server."""
        media = {"audio": audio, "video": video, "screen": screen}
        if media == self.media:
            return
        self.media = media
        if self.joined:
            self._do(SendRequest("meeting.media", {"meeting_id": self.meeting_id, **media}))

    # Replies ----------------------------------------------------------------

    def request_succeeded(self, kind: str, reply: Json) -> None:
        """A request of this machine was answered ``ok``."""
        meeting = reply.get("meeting")
        if self.ended or not isinstance(meeting, dict):
            return
        if kind in ("meeting.create", "meeting.join") and self.state is MeetingState.JOINING:
            self._joined(meeting)
        elif kind == "meeting.invite":
            self._read_invited(meeting)
            self._changed()

    def _joined(self, meeting: Json) -> None:
        """In: offer to everyone present before this end, in the reply's order.

        The list is in order of joining and may already hold those who joined just after
        this end (the server builds the reply once the join is stored, and others may join
        meanwhile): they offer to this end, so offering to them too would be glare. After a
        rejoin, this end offers to everyone, wherever they stand.
        """
        earlier = self._read_meeting(meeting)
        if not self._rejoining and isinstance(meeting.get("end_to_end_until"), str):
            self.end_to_end_before = True  # (a return keeps what this end had of the chat)
        for username in list(self._links):
            self._close(username)
        self._enter(MeetingState.JOINED)
        offer_to = self.participants if self._rejoining else earlier
        for username in offer_to if self.topology == "mesh" else ():
            self._open(username, offerer=True)
        self._changed()
        early, self._early = self._early, []
        for message in early:
            self.server_event(message)
        told = _media_of(meeting, self.me)
        if self._rejoining or (told is not None and told != self.media):
            self._rejoining = False
            # What this end sends may have changed while the server could not be told
            # (the connection was down, or this end muted while its join was on the way).
            self._do(SendRequest("meeting.media", {"meeting_id": self.meeting_id, **self.media}))

    def _read_meeting(self, meeting: Json) -> list[str]:
        """Take in a Meeting object; return who joined before this end, in order."""
        host = meeting.get("host")
        self.host = host if isinstance(host, str) else self.host
        title = meeting.get("title")
        self.title = title if isinstance(title, str) else self.title
        self.topology = "sfu" if meeting.get("topology") == "sfu" else "mesh"
        present: dict[str, Participant] = {}
        earlier: list[str] | None = None
        for item in meeting.get("participants") or []:
            participant = _participant(item)
            if participant is None:
                continue
            if participant.username == self.me:
                earlier = list(present)
            else:
                present[participant.username] = participant
        self.participants = present
        self._read_invited(meeting)
        return list(present) if earlier is None else earlier

    def _read_invited(self, meeting: Json) -> None:
        invited = meeting.get("invited")
        if isinstance(invited, list):
            self.invited = [
                str(u["username"])
                for u in invited
                if isinstance(u, dict) and isinstance(u.get("username"), str)
            ]

    def request_failed(self, kind: str, code: str) -> None:
        """A request of this machine was refused (``code``) or could not be sent."""
        if self.ended:
            return
        if kind in ("meeting.create", "meeting.join") and self.state is MeetingState.JOINING:
            if self._rejoining and code == "busy" and self._rejoin_attempts < REJOIN_ATTEMPTS:
                # The server still holds this end's old connection: wait for it to let go.
                self._rejoin_attempts += 1
                self._do(RetryJoin(REJOIN_RETRY_S))
            elif self._rejoining and code == "not_found":
                self._end("ended")  # it ended while this end was away
            else:
                self._end(code)  # meeting_full, forbidden, not_found, busy...
        elif kind in ("meeting.leave", "meeting.end", "meeting.decline"):
            pass  # ended here already; the server has let go or will, by the grace period
        # A refused invite, media change or rtc.signal does not end anything.

    # The server -------------------------------------------------------------

    def server_event(self, message: Json) -> None:
        """An event about this meeting from the signaling server.

        While joining, events wait for the ``ok`` (the I/O layer may see the events that follow
        the reply before the reply itself), except an answer, which belongs to a link of
        before a rejoin and is dropped.
        """
        kind = message.get("type")
        if kind == "meeting.ended":
            self._end(str(message.get("reason") or "ended"))
        elif self.state is MeetingState.JOINING:
            description = message.get("description")
            if not (isinstance(description, dict) and description.get("type") == "answer"):
                self._early.append(message)
        elif self.state is not MeetingState.JOINED:
            if kind == "rtc.signal":
                log.info("rtc.signal ignored in state %s", self.state)
        elif kind == "meeting.joined":
            participant = _participant(message.get("participant"))
            if participant is not None and participant.username != self.me:
                old = self.participants.get(participant.username)
                if old is not None:
                    participant = replace(participant, link=old.link)
                self.participants[participant.username] = participant
                if participant.username in self.invited:
                    self.invited.remove(participant.username)
                self._changed()
        elif kind == "meeting.left":
            username = str(message.get("username", ""))
            self._close(username)
            self.participants.pop(username, None)
            host = message.get("host")
            if isinstance(host, str):
                self.host = host
            self._changed()
        elif kind == "meeting.media":
            self._media(message)
        elif kind == "meeting.declined":
            declined = message.get("username")
            if isinstance(declined, str) and declined in self.invited:
                self.invited.remove(declined)
                self._changed()
        elif kind == "rtc.signal":
            self._signal(message)

    def _media(self, message: Json) -> None:
        username = message.get("username")
        old = self.participants.get(username) if isinstance(username, str) else None
        if old is None:
            return
        self._set(
            old.username,
            audio=_bool(message.get("audio")),
            video=_bool(message.get("video")),
            screen=_bool(message.get("screen")),
        )
        self._changed()

    def _signal(self, message: Json) -> None:
        sender = message.get("from")
        if not isinstance(sender, str) or sender == self.me:
            return
        description = message.get("description")
        if description is not None:
            self._description(sender, description)
        candidate = message.get("candidate")
        link = self._links.get(sender)
        if candidate is None:
            return
        if link is None:
            log.info("a candidate from %s, who has no link; ignored", sender)
            return
        link.candidates += 1
        if not isinstance(candidate, dict):
            self.remote_unusable(sender, "a candidate that is not an object")
        elif link.candidates > MAX_TRICKLED_CANDIDATES:
            self.remote_unusable(sender, f"more than {MAX_TRICKLED_CANDIDATES} trickled candidates")
        elif link.remote_set:
            self._do(AddCandidate(sender, candidate))
        else:
            link.held.append(candidate)

    def _description(self, sender: str, description: object) -> None:
        kind = description.get("type") if isinstance(description, dict) else None
        link = self._links.get(sender)
        if kind == "offer" and isinstance(description, dict):
            # A newcomer offers; or a participant who came back offers again: a fresh link.
            if link is not None:
                self._close(sender)
            if sender not in self.participants:  # its meeting.joined is late
                self.participants[sender] = Participant(sender, sender)
            self._open(sender, offerer=False)
            link = self._links[sender]
            link.remote_set = True
            self._do(ApplyRemoteDescription(sender, description), MakeAnswer(sender))
            self._changed()
            return
        if link is None:
            log.info("a description from %s, who has no link; ignored", sender)
            return
        if not isinstance(description, dict) or kind != "answer" or not link.offerer:
            shown = repr(kind)[:40]
            self.remote_unusable(sender, f"a description of type {shown} that this link cannot use")
            return
        if link.remote_set:
            log.warning("a second answer from %s; ignored", sender)
            return
        link.remote_set = True
        self._do(ApplyRemoteDescription(sender, description))
        held, link.held = link.held, []
        self._do(*(AddCandidate(sender, c) for c in held))

    # The links --------------------------------------------------------------

    def _open(self, username: str, *, offerer: bool) -> None:
        self._links[username] = _Link(offerer=offerer)
        self._set(username, link=LinkState.CONNECTING, problem=None)
        self._do(OpenLink(username, offerer))

    def _close(self, username: str) -> None:
        if self._links.pop(username, None) is not None:
            self._do(CloseLink(username))

    def _set(self, username: str, **changes: Any) -> None:
        old = self.participants.get(username)
        if old is not None:
            self.participants[username] = replace(old, **changes)

    def _fail_link(self, username: str, problem: str) -> None:
        link = self._links.get(username)
        if link is None:
            return
        log.info("meeting %s: the link to %s failed: %s", self.meeting_id, username, problem)
        self._close(username)
        self._set(username, link=LinkState.FAILED, problem=problem)
        # Only the end that offered on the pair offers again (both would be glare): the
        # other answers the new offer, as it does a participant coming back.
        attempt = self._retries.get(username, 0)
        if link.offerer and attempt < len(LINK_RETRY_DELAYS_S):
            self._retries[username] = attempt + 1
            self._do(RetryLink(username, LINK_RETRY_DELAYS_S[attempt]))
        self._changed()

    def renew_link(self, username: str) -> None:
        """Offer ``username`` a fresh link while the connected one still works (it is relayed,
        and the TURN credentials its allocations were made with are about to expire): only
        the end that offered on the pair does, the other answers it as it answers a
        participant coming back. A second or two without their picture, rather than the relay
        dying at its next refresh."""
        link = self._links.get(username)
        participant = self.participants.get(username)
        if (
            self.joined
            and link is not None
            and link.offerer
            and participant is not None
            and participant.link is LinkState.CONNECTED
        ):
            log.info("meeting %s: renewing the link to %s", self.meeting_id, username)
            self._close(username)
            self._open(username, offerer=True)
            self._changed()

    def retry_join(self) -> None:
        """The I/O layer's timer of :class:`RetryJoin`: ask to join again (coming back)."""
        if self.state is MeetingState.JOINING and self._rejoining:
            self._send_join()

    def retry_link(self, username: str) -> None:
        """The I/O layer's timer of :class:`RetryLink`: offer ``username`` a fresh link, if
        they are still here and nothing linked meanwhile (their own offer, coming back)."""
        if self.joined and username in self.participants and username not in self._links:
            log.info("meeting %s: offering %s a new link", self.meeting_id, username)
            self._open(username, offerer=True)
            self._changed()

    def local_description(self, username: str, description: Json) -> None:
        """The offer or answer made on ``username``'s link is ready to send."""
        if self.joined and username in self._links:
            self._do(
                SendRequest(
                    "rtc.signal",
                    {"meeting_id": self.meeting_id, "to": username, "description": description},
                )
            )

    def link_state(self, username: str, state: str) -> None:
        """``connectionState`` of the link to ``username`` changed."""
        old = self.participants.get(username)
        if username not in self._links or old is None:
            return
        new = {
            "connected": LinkState.CONNECTED,
            "disconnected": LinkState.RECONNECTING,
        }.get(state)
        if state == "connected":
            self._retries.pop(username, None)
        if state in ("failed", "closed"):
            self._fail_link(username, f"the connection {state}")
        elif new is not None and new is not old.link:
            self._set(username, link=new)
            self._changed()

    def remote_unusable(self, username: str, problem: str) -> None:
        """``username`` sent something this end cannot use: their link fails, not the meeting."""
        self._fail_link(username, problem)

    def link_silent(self, username: str) -> None:
        """Nothing came from ``username`` for too long while connected."""
        self._fail_link(username, "nothing received for too long")

    def connect_deadline_passed(self, username: str) -> None:
        """The link to ``username`` has not connected in the time allowed."""
        participant = self.participants.get(username)
        if participant is not None and participant.link is LinkState.CONNECTING:
            self._fail_link(username, "no connection before the deadline")

    def signaling_reconnected(self) -> None:
        """The signaling connection came back: join again (within the grace period the server
        binds the new connection), then offer anew to everyone."""
        if self.state is MeetingState.JOINED:
            self._rejoining = True
            self._rejoin_attempts = 0
            self._send_join()
            self._enter(MeetingState.JOINING)


def _media_of(meeting: Json, username: str) -> Json | None:
    """What a Meeting object says ``username`` sends (``None``: not listed)."""
    for item in meeting.get("participants") or []:
        if isinstance(item, dict) and item.get("username") == username:
            return {k: _bool(item.get(k)) for k in ("audio", "video", "screen")}
    return None


def _participant(item: object) -> Participant | None:
    """A Participant object of the protocol, or ``None`` if it is not one."""
    if not isinstance(item, dict) or not isinstance(item.get("username"), str):
        return None
    username = item["username"]
    name = item.get("display_name")
    return Participant(
        username=username,
        display_name=name if isinstance(name, str) else username,
        audio=_bool(item.get("audio")),
        video=_bool(item.get("video")),
        screen=_bool(item.get("screen")),
    )
