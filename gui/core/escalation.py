"""A 1:1 call that becomes a meeting ("Add person"; protocol v1.1, ``meeting.create`` with
``from_call``), at one end.

Either party asks (:meth:`CallSession.move_to_meeting`); the server makes both parties the
meeting's first participants and ends the call with reason ``moved_to_meeting``, telling both
the Meeting. Each end then carries its call on in a :class:`MeetingSession`
(:func:`continue_in_meeting`): the call's peer connection becomes the meeting's link to the
other party as it is, without a new offer, and its senders move from the call's slots onto
the meeting's shared media built on those same slots (so the frames keep their clock and the
other side's decoder sees nothing change). Only the newcomers' links are new: they offer to
both parties as to anyone present.

When the meeting goes through a media server (``"sfu"``), the call's connection cannot become
one of its links: it is kept beside the media server's connections until those carry the
media, then closed (:class:`~gui.core.sfu_handover.CallBridge`: make before break).

Between the call's end and the meeting session's start, a newcomer may already offer:
:class:`HeldEvents` keeps the meeting's events from the moment the call's end arrives and the
meeting session handles them first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from gui.core.meeting_machine import MeetingMachine
from gui.core.meeting_session import MeetingSession, SharedMedia
from gui.core.peer_link import AUDIO, CAMERA, SignalingLink
from gui.core.sfu_handover import CallBridge
from signaling.protocol.constants import ECHO_USERNAME
from signaling.protocol.guests import is_guest_username

if TYPE_CHECKING:
    from gui.core.call_session import CallSession

Json = dict[str, Any]


def why_not_movable(peer: str, server_features: Collection[str]) -> str | None:
    """Why a call with ``peer`` cannot become a meeting ("Add person"), or ``None`` if it can.

    The server must have meetings; the Echo Test joins none; a browser guest's page cannot
    carry its call into a meeting (the server refuses it as ``unsupported``), so the host is
    told to send a meeting link instead of pressing a button that can only fail."""
    if "meetings" not in server_features:
        return "This server does not hold meetings"
    if peer == ECHO_USERNAME:
        return "The Echo Test cannot join a meeting"
    if is_guest_username(peer):
        return "A guest from a browser cannot be moved into a meeting: send a meeting link instead"
    return None


class HeldEvents:
    """A meeting's server events (and a reconnection notice), kept until someone takes them."""

    def __init__(self, link: SignalingLink, meeting_id: str) -> None:
        self.meeting_id = meeting_id.lower()
        self.events: list[Json] = []
        self._unsubscribe: Callable[[], None] | None = link.on_event(self._on_event)

    def _on_event(self, message: Json) -> None:
        if message.get("type") == "client.reconnected" or (
            str(message.get("meeting_id", "")).lower() == self.meeting_id
        ):
            self.events.append(message)

    def release(self) -> list[Json]:
        """Stop keeping; what was kept, in order."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        events, self.events = self.events, []
        return events


def continue_in_meeting(call: CallSession) -> MeetingSession:
    """The meeting ``call`` moved into (``call.machine.moved_to``), carried on with the call's
    connection, slots and tracks; the call session must have ended ``moved_to_meeting``."""
    meeting = call.machine.moved_to
    if meeting is None:
        raise ValueError("the call did not move into a meeting")
    peer = call.machine.peer.lower()
    names = [p.get("username") for p in meeting.get("participants") or [] if isinstance(p, dict)]
    me = next((str(n) for n in names if isinstance(n, str) and n != peer), None)
    if me is None:
        raise ValueError("the meeting does not list this end")
    media = {
        "audio": call.audio_enabled,
        "video": call.video_enabled,
        "screen": call.media.screen is not None,
    }
    offerer = call.machine.role.value == "caller"
    machine = MeetingMachine.from_call(me, meeting, peer, offerer, media)
    session = MeetingSession(call.link, machine, call.media, call.options, call.slot_tracks())
    _keep_mutes(session.shared, call)
    held = call.held.release() if call.held is not None else []
    if machine.topology == "sfu":
        CallBridge(session, peer, call.peer).start()
        session.handle_held(held)
    else:
        session.adopt_link(peer, call.peer, held)
    return session


def _keep_mutes(shared: SharedMedia, call: CallSession) -> None:
    """A muted microphone or a camera turned off stays so in the meeting."""
    shared.set_enabled(AUDIO, call.audio_enabled)
    shared.set_enabled(CAMERA, call.video_enabled)
