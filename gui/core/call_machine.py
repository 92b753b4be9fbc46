"""One call, seen from one end: a pure state machine, no sockets, no timers, no aiortc.

Inputs are what happens (the user presses a button, the server sends an
event, the peer connection changes state, a request fails); outputs are
:class:`Action` values the I/O layer (``call_session.py``) carries out:
send a request, make an offer or answer, apply a remote description, add a
candidate, close the peer connection. Feed inputs, then ``take_actions()``,
as websockets' protocol objects take ``receive_data()`` and give
``data_to_send()``.

States::

    outgoing_ringing ──accepted──▶ connecting ──media up──▶ connected ◀──▶ reconnecting
    incoming_ringing ──accept────▶ connecting
    any state ──────────────────────────────────────────────────────────▶ ended(reason)

Recovery (protocol v1.1, ``restart`` on ``rtc.signal``): aiortc cannot restart ICE on
a connection, so a path that dies (nothing heard for a few seconds, or the connection
failing: ``path_lost``) is replaced by a *candidate* link, a fresh peer connection
negotiated inside the same call, its offer and answer flagged with a token. The old
link stays open meanwhile: if it comes back by itself (a black hole that ends while
the NATs still hold their mappings) the call is connected again at once and a candidate
the peer has not answered yet is dropped (an answered one goes on: the peer may have moved
onto it already); if the candidate connects first it is promoted and the old link closed,
and the end that sees its old link closed by the peer waits for the candidate. Either
end may offer a restart; when both do at once, the caller's wins (the callee answers it
and drops its own). A candidate that has not connected in the I/O
layer's time (``candidate_timed_out``) is replaced while the call is reconnecting, and
a call that stays reconnecting too long ends as ``lost`` (``reconnect_deadline_passed``).
A peer that knows nothing of restarts ignores the second offer (as before) and the call
ends as it did before recovery existed.

The caller makes its offer while the callee's device rings and sends it the
moment the server says ``call.accepted``; the callee answers the offer.
Candidates that arrive before the remote description are held until it is
applied.

Whatever the peer sends, the call ends cleanly: something it cannot use (a
description of the wrong type, too many candidates, or, as the I/O layer finds
when it checks or applies them, an unusable SDP or candidate: ``remote_unusable``)
ends it at once as ``failed``, and so does a call that has not connected by its
deadline (the I/O layer's timer: ``connect_deadline_passed``). ``detail`` then
holds a sentence for the window, ``problem`` the technical reason for the logs.
The peer is told with ``call.hangup`` with reason ``failed``, so it ends as
``failed`` too (a call still ringing is cancelled or declined instead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("parley.call")

Json = dict[str, Any]


class CallState(StrEnum):
    """Where a call stands, as the window shows it."""

    OUTGOING_RINGING = "outgoing_ringing"
    INCOMING_RINGING = "incoming_ringing"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


class Role(StrEnum):
    """Which end of the call this is."""

    CALLER = "caller"
    CALLEE = "callee"


#: Reasons this end decides by itself (the server's are in ``CallReason``).
FAILED = "failed"  # media never connected or broke for good
ERROR = "error"  # a request was refused in a way the call cannot survive

#: The server's reason when a party turned the call into a meeting (v1.1).
MOVED_TO_MEETING = "moved_to_meeting"

#: What the window says (``detail``) when the peer sent something unusable.
UNUSABLE_DETAIL = "The other side's app sent something Parley cannot use."
#: ... and when the call did not connect in time.
NO_CONNECTION_DETAIL = "The call could not connect: no network path to the other side was found."
#: Trickled candidates one call takes at most (a real ICE agent sends a dozen or so).
MAX_TRICKLED_CANDIDATES = 64


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send a signaling request."""

    kind: str
    fields: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MakeOffer:
    """Create an offer and set it as the local description; report it with ``local_description``.

    ``link`` names a candidate link (a restart's token); ``None`` is the call's own link.
    """

    link: str | None = None


@dataclass(frozen=True, slots=True)
class MakeAnswer:
    """Create an answer, set it as the local description, report it with ``local_description``."""

    link: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyRemoteDescription:
    """Set the peer's offer or answer."""

    description: Json
    link: str | None = None


@dataclass(frozen=True, slots=True)
class AddCandidate:
    """Add a trickled ICE candidate from the peer."""

    candidate: Json
    link: str | None = None


@dataclass(frozen=True, slots=True)
class OpenCandidate:
    """Build a fresh peer connection beside the current one, to replace a dead path.

    ``offerer``: this end offers on it (sections first) rather than answering the peer's offer.
    """

    link: str
    offerer: bool


@dataclass(frozen=True, slots=True)
class CloseCandidate:
    """Close a candidate link that is no longer wanted."""

    link: str


@dataclass(frozen=True, slots=True)
class PromoteCandidate:
    """The candidate link connected: it carries the call from now on; close the old one."""

    link: str


@dataclass(frozen=True, slots=True)
class ClosePeer:
    """The call is over: close the peer connection and stop every track."""


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Tell the owner (window, CLI) the new state."""

    state: CallState
    reason: str | None = None


Action = (
    SendRequest
    | MakeOffer
    | MakeAnswer
    | ApplyRemoteDescription
    | AddCandidate
    | OpenCandidate
    | CloseCandidate
    | PromoteCandidate
    | ClosePeer
    | StateChanged
)


class CallMachine:
    """The life of one call at one end."""

    def __init__(self, role: Role, call_id: str, peer: str, media: Json) -> None:
        self.role = role
        self.call_id = call_id
        self.peer = peer
        self.media = media
        self.state = (
            CallState.OUTGOING_RINGING if role is Role.CALLER else CallState.INCOMING_RINGING
        )
        self.reason: str | None = None
        #: The Meeting (protocol object) this call moved into, once it has.
        self.moved_to: Json | None = None
        #: Why the call failed, in a sentence for the user (None unless it did, and said why).
        self.detail: str | None = None
        #: The technical reason behind ``detail``, for logs and parley-cli.
        self.problem: str | None = None
        self.ringing = False  # the server confirmed the callee's device rings
        self._actions: list[Action] = []
        self._remote_set = False
        self._held_candidates: list[Json] = []
        self._offer: Json | None = None
        self._candidates = 0
        #: The candidate link under way (a restart's token), and whether this end offered it.
        self.restart_link: str | None = None
        self._restart_mine = False
        self._restart_answered = False
        #: A candidate promoted that the I/O layer has not moved the call onto yet
        #: (``PromoteCandidate`` queued; ``moved`` when done): the old link may close meanwhile.
        self.moving_to: str | None = None
        #: Restarts tried so far (tokens are numbered by them) and candidates promoted.
        self.restarts = 0
        self.recoveries = 0
        #: Candidates promoted that this end offered to renew a working path (``renew_path``).
        self.renewals = 0
        self._renewing = False
        if role is Role.CALLEE:
            self._do(StateChanged(self.state))

    # Output -----------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        """What to do now, in order; the list is emptied."""
        actions, self._actions = self._actions, []
        return actions

    def _do(self, *actions: Action) -> None:
        self._actions.extend(actions)

    def _enter(self, state: CallState) -> None:
        if state is not self.state:
            self.state = state
            self._do(StateChanged(state))

    def _end(self, reason: str, *, request: str | None = None) -> None:
        if self.state is CallState.ENDED:
            return
        if request is not None:
            fields = {"call_id": self.call_id}
            if request == "call.hangup" and reason == FAILED:
                fields["reason"] = FAILED  # the other side learns it failed, not a hang-up
            self._do(SendRequest(request, fields))
        self.state = CallState.ENDED
        self.reason = reason
        self._do(StateChanged(CallState.ENDED, reason), ClosePeer())

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self.state is CallState.ENDED

    @property
    def in_progress(self) -> bool:
        """Whether the call was answered and has not ended."""
        return self.state in (CallState.CONNECTING, CallState.CONNECTED, CallState.RECONNECTING)

    # The user ---------------------------------------------------------------

    def place(self) -> None:
        """The caller rings the callee."""
        assert self.role is Role.CALLER and self.state is CallState.OUTGOING_RINGING
        # The offer is made while the callee's device rings, and sent the moment they answer.
        self._do(
            SendRequest(
                "call.invite", {"to": self.peer, "call_id": self.call_id, "media": self.media}
            ),
            StateChanged(self.state),
            MakeOffer(),
        )

    def accept(self) -> None:
        """The callee answers; the offer follows from the caller."""
        if self.state is not CallState.INCOMING_RINGING:
            log.info("accept ignored in state %s", self.state)
            return
        self._do(SendRequest("call.accept", {"call_id": self.call_id}))
        self._enter(CallState.CONNECTING)

    def decline(self) -> None:
        """The callee says no."""
        if self.state is CallState.INCOMING_RINGING:
            self._end("declined", request="call.decline")

    def hang_up(self) -> None:
        """End the call from this side, whatever its phase."""
        if self.state is CallState.OUTGOING_RINGING:
            self._end("cancelled", request="call.cancel")
        elif self.state is CallState.INCOMING_RINGING:
            self._end("declined", request="call.decline")
        elif self.in_progress:
            self._end("hangup", request="call.hangup")

    # The server -------------------------------------------------------------

    def server_event(self, message: Json) -> None:
        """An event about this call from the signaling server."""
        kind = message.get("type")
        if kind == "call.ringing":
            self.ringing = True
        elif kind == "call.accepted":
            if self.role is Role.CALLER and self.state is CallState.OUTGOING_RINGING:
                self._enter(CallState.CONNECTING)
                if self._offer is not None:
                    self._send_description(self._offer)
            # Otherwise a replay after a reconnection: the call goes on as it is.
        elif kind == "call.ended":
            if message.get("reason") == MOVED_TO_MEETING and self.in_progress:
                self._moved(message)
            else:
                self._end(str(message.get("reason", "hangup")))
        elif kind == "rtc.signal":
            self._signal(message)

    def _signal(self, message: Json) -> None:
        if not self.in_progress:
            log.info("rtc.signal ignored in state %s", self.state)
            return
        restart = message.get("restart")
        if restart is not None:
            self._restart_signal(restart, message)
            return
        description = message.get("description")
        if description is not None:
            self._description(description)
        candidate = message.get("candidate")
        if candidate is None or self.ended:
            return
        self._candidates += 1
        if not isinstance(candidate, dict):
            self.remote_unusable("a candidate that is not an object")
        elif self._candidates > MAX_TRICKLED_CANDIDATES:
            self.remote_unusable(f"more than {MAX_TRICKLED_CANDIDATES} trickled candidates")
        elif self._remote_set:
            self._do(AddCandidate(candidate))
        else:
            self._held_candidates.append(candidate)

    def _description(self, description: object) -> None:
        kind = description.get("type") if isinstance(description, dict) else None
        expected = "offer" if self.role is Role.CALLEE else "answer"
        if not isinstance(description, dict) or kind != expected:
            shown = repr(kind)[:40]
            self.remote_unusable(f"a description of type {shown} where an {expected} belongs")
            return
        if self._remote_set:
            log.warning("a second %s from the peer; ignored", kind)
            return
        self._remote_set = True
        self._do(ApplyRemoteDescription(description))
        if kind == "offer":
            self._do(MakeAnswer())
        held, self._held_candidates = self._held_candidates, []
        self._do(*(AddCandidate(c) for c in held))

    def remote_unusable(self, problem: str) -> None:
        """The peer sent something this end cannot use: the call fails, and the peer is told."""
        self._fail(problem, UNUSABLE_DETAIL)

    def connect_deadline_passed(self) -> None:
        """The I/O layer's timer: the answered call has not connected in the time allowed."""
        if self.state is CallState.CONNECTING:
            self._fail("no connection before the deadline", NO_CONNECTION_DETAIL)

    def _fail(self, problem: str, detail: str) -> None:
        if self.ended:
            return
        self.problem, self.detail = problem, detail
        request = {
            CallState.OUTGOING_RINGING: "call.cancel",
            CallState.INCOMING_RINGING: "call.decline",
        }.get(self.state, "call.hangup")
        self._end(FAILED, request=request)

    # Into a meeting (protocol v1.1) -----------------------------------------------

    def move_to_meeting(
        self, meeting_id: str, media: Json, invite: list[str], title: str | None = None
    ) -> None:
        """Turn the call into a meeting hosted here, inviting ``invite``; both parties stay.

        The call goes on untouched until the server says it moved (``call.ended`` with reason
        ``moved_to_meeting``); a refusal (``unsupported``: the other side's app has no
        meetings; ``forbidden``...) changes nothing.
        """
        if not self.in_progress:
            log.info("move to a meeting ignored in state %s", self.state)
            return
        fields: Json = {
            "meeting_id": meeting_id,
            "media": media,
            "invite": [u.lower() for u in invite],
            "from_call": self.call_id,
        }
        if title:
            fields["title"] = title
        self._do(SendRequest("meeting.create", fields))

    def _moved(self, message: Json) -> None:
        """The call became a meeting: it ends here, and its peer connection is handed over
        (no ``ClosePeer``: ``moved_to`` holds the Meeting for the meeting's session)."""
        meeting = message.get("meeting")
        if not isinstance(meeting, dict) or not isinstance(meeting.get("meeting_id"), str):
            self._end(ERROR, request="call.hangup")
            return
        self.moved_to = meeting
        self.state = CallState.ENDED
        self.reason = MOVED_TO_MEETING
        self._do(StateChanged(CallState.ENDED, MOVED_TO_MEETING))

    def request_failed(self, kind: str, code: str) -> None:
        """A request this machine asked for was refused or could not be sent."""
        if self.state is CallState.ENDED:
            return
        if kind == "call.invite":
            # busy, forbidden, not_found...: the call never started.
            self._end(code)
        elif kind in ("call.accept", "call.decline", "call.cancel", "call.hangup"):
            # The call is gone on the server (ended meanwhile) or cannot be reached.
            self._end(ERROR if kind == "call.accept" else self.reason or "hangup")
        # A refused rtc.signal is not fatal: ICE may still connect with what went through.

    # The peer connection -----------------------------------------------------

    def local_description(self, description: Json) -> None:
        """The offer or answer this end made is ready to send (an early offer waits)."""
        if self.state is CallState.OUTGOING_RINGING:
            self._offer = description
        elif self.in_progress:
            self._send_description(description)

    def _send_description(self, description: Json) -> None:
        self._do(SendRequest("rtc.signal", {"call_id": self.call_id, "description": description}))

    def media_state(self, state: str) -> None:
        """The peer connection's ``connectionState`` changed."""
        if state == "connected" and self.state in (CallState.CONNECTING, CallState.RECONNECTING):
            self._enter(CallState.CONNECTED)
        elif state in ("disconnected", "failed") and self.state in (
            CallState.CONNECTED,
            CallState.RECONNECTING,
        ):
            self.path_lost()  # it worked once: the path broke, and a new one is sought
        elif state == "failed" and self.in_progress:
            self._end(FAILED, request="call.hangup")
        elif state == "closed" and self.moving_to is not None:
            pass  # the link the call is moving off: the peer closed it, having moved too
        elif state == "closed" and self.in_progress and self.restart_link is not None:
            # The peer moved onto the candidate under way and closed the old link: ours will
            # connect too (or time out, and this end offers again).
            self.path_lost()
        elif state == "closed" and self.in_progress:
            # The peer closed its connection: it hung up, even if the server's word is late.
            self._end("hangup", request="call.hangup")

    def media_silent(self) -> None:
        """Nothing came from the peer for too long while connected: it is gone."""
        if self.in_progress:
            self._end("lost", request="call.hangup")

    def media_resumed(self) -> None:
        """Packets flow again on the call's link after a silence that did not last.

        A candidate this end offered and the peer has not answered is dropped (the old path
        came back first). Once answered it stays until it connects or times out, as one this
        end answered does: the peer may already carry the call on it and have closed the old
        link, and dropping it then would leave each end on a link the other closed.
        """
        if self.state is CallState.RECONNECTING:
            self._enter(CallState.CONNECTED)
            if self.restart_link is not None and self._restart_mine and not self._restart_answered:
                self._drop_candidate()

    # Recovery --------------------------------------------------------------------

    def path_lost(self) -> None:
        """The call's link went quiet or failed while connected: reconnect, offering a restart.

        Nothing is offered while a candidate link is under way (its timeout replaces it).
        """
        if self.state not in (CallState.CONNECTED, CallState.RECONNECTING):
            return
        self._enter(CallState.RECONNECTING)
        if self.restart_link is None:
            self._offer_restart()

    def renew_path(self) -> None:
        """Move the call onto a fresh link while its path still works (the TURN credentials of
        its relay are about to expire): a restart offered without leaving ``connected``. The
        candidate is promoted when it connects; one that does not is dropped and the call goes
        on as it was."""
        if self.state is CallState.CONNECTED and self.restart_link is None:
            log.info("call %s: renewing the path", self.call_id)
            self._offer_restart(renewal=True)

    def _offer_restart(self, renewal: bool = False) -> None:
        self._renewing = renewal
        self.restarts += 1
        token = f"{self.role.value}-{self.restarts}"
        self.restart_link, self._restart_mine, self._restart_answered = token, True, False
        self._do(OpenCandidate(token, offerer=True), MakeOffer(token))

    def _drop_candidate(self) -> None:
        if self.restart_link is not None:
            self._do(CloseCandidate(self.restart_link))
            self.restart_link = None

    def _restart_signal(self, token: object, message: Json) -> None:
        """An ``rtc.signal`` of a candidate link (``restart`` holds its token)."""
        if not isinstance(token, str) or not 1 <= len(token) <= 32:
            log.info("a restart signal with an unusable token; ignored")
            return
        description = message.get("description")
        if not isinstance(description, dict):
            description = None
        kind = description.get("type") if description is not None else None
        if description is not None and kind == "offer":
            if self.restart_link is not None and self._restart_mine and self.role is Role.CALLER:
                log.info("the peer's restart %s crossed ours; the peer answers ours", token)
                return
            if token == self.restart_link:
                log.info("restart %s offered twice; ignored", token)
                return
            self._drop_candidate()
            self.restart_link, self._restart_mine, self._restart_answered = token, False, True
            self._do(
                OpenCandidate(token, offerer=False),
                ApplyRemoteDescription(description, token),
                MakeAnswer(token),
            )
        elif description is not None and kind == "answer":
            if token != self.restart_link or not self._restart_mine or self._restart_answered:
                log.info("an answer for restart %s, which is not under way; ignored", token)
                return
            self._restart_answered = True
            self._do(ApplyRemoteDescription(description, token))
        elif description is not None:
            log.info("a restart description of type %r; ignored", str(kind)[:20])
        candidate = message.get("candidate")
        if isinstance(candidate, dict) and token == self.restart_link and self._restart_answered:
            self._do(AddCandidate(candidate, token))

    def candidate_description(self, token: str, description: Json) -> None:
        """The candidate link's offer or answer is ready: send it, flagged with its token."""
        if token == self.restart_link and self.in_progress:
            fields = {"call_id": self.call_id, "description": description, "restart": token}
            self._do(SendRequest("rtc.signal", fields))

    def candidate_state(self, token: str, state: str) -> None:
        """The candidate link's ``connectionState`` changed."""
        if token != self.restart_link or not self.in_progress:
            return
        if state == "connected":
            self.restart_link = None
            if self._renewing and self._restart_mine:
                self.renewals += 1
            else:
                self.recoveries += 1
            self._candidates = 0
            self.moving_to = token
            self._do(PromoteCandidate(token))
            self._enter(CallState.CONNECTED)
        elif state in ("failed", "closed"):
            self.candidate_timed_out(token)

    def moved(self, token: str) -> None:
        """The I/O layer moved the call onto candidate ``token`` (``PromoteCandidate`` done):
        from now on ``media_state`` speaks of that link."""
        if token == self.moving_to:
            self.moving_to = None

    def candidate_unusable(self, token: str, problem: str) -> None:
        """What the peer sent for a candidate link cannot be used: drop that link only."""
        log.warning("restart %s: %s", token, problem[:200])
        if token == self.restart_link:
            self._drop_candidate()

    def candidate_timed_out(self, token: str) -> None:
        """The I/O layer's timer: candidate ``token`` has not connected in time (or failed).

        While the call is reconnecting this end offers a new one (its own, or in place of the
        peer's, which the peer will also have given up on).
        """
        if token != self.restart_link:
            return
        self._drop_candidate()
        if self.state is CallState.RECONNECTING:
            self._offer_restart()

    def taken_over(self) -> None:
        """This end takes over a call that another process of the same user carried until it
        died with its media (the Echo Test of a service's coordinator: the next coordinator's
        bot takes its calls): there is no path, so the call is reconnecting at once and this
        end offers a restart; the peer answers it, or its own restart crosses it (the
        caller's wins) and this end answers that one."""
        if self.state not in (CallState.INCOMING_RINGING, CallState.OUTGOING_RINGING):
            return
        self._enter(CallState.RECONNECTING)
        self._offer_restart()

    def signaling_reconnected(self) -> None:
        """This end's signaling connection came back: what it sent on the old one may be lost,
        so a call still reconnecting offers a new restart."""
        if self.state is CallState.RECONNECTING:
            self._drop_candidate()
            self._offer_restart()

    def reconnect_deadline_passed(self) -> None:
        """The I/O layer's timer: the call has been reconnecting for too long; it is lost."""
        if self.state is CallState.RECONNECTING:
            self._drop_candidate()
            self._end("lost", request="call.hangup")
