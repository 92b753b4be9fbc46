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
    """Create an offer and set it as the local description; report it with ``local_description``."""


@dataclass(frozen=True, slots=True)
class MakeAnswer:
    """Create an answer, set it as the local description, report it with ``local_description``."""


@dataclass(frozen=True, slots=True)
class ApplyRemoteDescription:
    """Set the peer's offer or answer."""

    description: Json


@dataclass(frozen=True, slots=True)
class AddCandidate:
    """Add a trickled ICE candidate from the peer."""

    candidate: Json


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
            self._end(str(message.get("reason", "hangup")))
        elif kind == "rtc.signal":
            self._signal(message)

    def _signal(self, message: Json) -> None:
        if not self.in_progress:
            log.info("rtc.signal ignored in state %s", self.state)
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
        elif state == "disconnected" and self.state is CallState.CONNECTED:
            self._enter(CallState.RECONNECTING)
        elif state == "failed" and self.in_progress:
            self._end(FAILED, request="call.hangup")
        elif state == "closed" and self.in_progress:
            # The peer closed its connection: it hung up, even if the server's word is late.
            self._end("hangup", request="call.hangup")

    def media_silent(self) -> None:
        """Nothing came from the peer for too long while connected: it is gone."""
        if self.in_progress:
            self._end("lost", request="call.hangup")

    def media_resumed(self) -> None:
        """Packets flow again after a silence that did not last."""
        if self.state is CallState.RECONNECTING:
            self._enter(CallState.CONNECTED)
