"""A 1:1 call that became a meeting through a media server: make before break.

The two parties of the call already have a peer connection. The meeting's media go through
the media server (Janus): each publishes there and subscribes to the other, which are new
peer connections to another endpoint, with another DTLS certificate, so the call's own
connection cannot be renegotiated into them (an offer/answer exchange changes what one
connection carries, not whom it connects to); it must be replaced. It is replaced the way
Jitsi Meet leaves its peer-to-peer mode for the bridge when a third person arrives: the new
connections are set up beside the old one, which keeps carrying the media until the new ones
do, and is closed only then (make before break).

:class:`CallBridge` keeps the call's :class:`~gui.core.peer_link.PeerLink` beside the
meeting's :class:`~gui.core.sfu_session.SfuMedia`: it goes on sending (fed by the meeting's
shared media, so the frames keep their clock) and what it receives stays what the window
shows of the other party. The media server's tracks of that party are held back until their
subscription carries media (a frame of every kind the other party sends); then they are
shown instead (``remote_track``; what the window had hooked to the call's receivers, its
tile and the audio mixer's input, is unhooked, so nothing is shown or played twice), and this
end tells the other one over the call's data channel (``{"t": "switched"}``).
:class:`Handover` decides when the call's connection closes: once both ends get each other
through the media server (each has switched and has heard that the other has), or
:data:`HANDOVER_TIMEOUT_S` after this end switched without word from the other (an app that
does not say it). It closes at once if it fails or falls silent, if the other party leaves,
or when this end's part in the meeting ends.

Events, through the meeting session: ``handover`` (username, ``"switched"`` or
``"closed"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiortc.mediastreams import MediaStreamTrack

from gui.core.meeting_machine import MeetingState
from gui.core.peer_link import AUDIO, CAMERA, PeerLink

if TYPE_CHECKING:
    from gui.core.meeting_session import MeetingSession

log = logging.getLogger("parley.meeting")

#: After this end gets the other through the media server, how long the call's connection
#: waits for the other end to say the same before it closes anyway.
HANDOVER_TIMEOUT_S = 10.0
#: Between two looks at what the media server's subscription has received.
CHECK_S = 0.05


@dataclass
class Handover:
    """When the call's connection may close (pure: told what happened, and when)."""

    timeout_s: float = HANDOVER_TIMEOUT_S
    #: When this end began to get the other party through the media server (``None``: not yet).
    switched_at: float | None = None
    #: The other end said it gets this one through the media server.
    peer_switched: bool = False

    def switched(self, now: float) -> bool:
        """This end gets the other through the media server; whether this is news (tell
        the other end, show the media server's tracks)."""
        if self.switched_at is not None:
            return False
        self.switched_at = now
        return True

    def peer_said(self) -> None:
        """The other end gets this one through the media server."""
        self.peer_switched = True

    def may_close(self, now: float) -> bool:
        """Whether the call's connection carries nothing either end still needs."""
        if self.switched_at is None:
            return False
        return self.peer_switched or now - self.switched_at >= self.timeout_s


class CallBridge:
    """The call's connection to ``username``, kept until the media server carries them."""

    def __init__(self, session: MeetingSession, username: str, peer: PeerLink) -> None:
        self.session = session
        self.username = username
        self.peer: PeerLink | None = peer
        self.handover = Handover()
        self._held: dict[str, tuple[Any, ...]] = {}
        self._proxies: dict[str, MediaStreamTrack] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def showing_call(self) -> bool:
        """Whether the call's connection is what shows the other party now."""
        return self.handover.switched_at is None and self.peer is not None

    def start(self) -> None:
        """Take the call's connection over: its senders onto the meeting's shared media, its
        events to this bridge; the media server's tracks of the other party held back."""
        assert self.peer is not None
        peer, session, username = self.peer, self.session, self.username
        peer.remove_all_listeners()
        session.history.setdefault(username, []).append(peer)
        self._proxies = session.shared.subscribe()
        for slot, proxy in self._proxies.items():
            peer.send(slot, proxy)
        peer.on("stats", self._stats)
        peer.on("connection", self._connection)
        peer.on("silent", lambda: self._drop("it fell silent"))
        peer.channel.on_switched = self._peer_switched
        session.sfu_emit = self._sfu_event
        session.on("participant_left", self._left)
        session.on("state", self._state)
        session.closers.append(self.close)
        receivers = list(peer.receivers.items())
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: [session.emit("remote_track", username, s, r) for s, r in receivers])
        self._task = loop.create_task(self._watch())

    # What happens --------------------------------------------------------------------

    def _sfu_event(self, event: str, *args: Any) -> None:
        """The media server's events: the other party's tracks and figures wait until its
        subscription carries media; everything else goes on at once."""
        if self.showing_call and args and args[0] == self.username:
            if event == "remote_track":
                self._held[args[1]] = args
            return  # its figures too: the call's connection's are the ones shown
        self.session.emit(event, *args)

    def _stats(self, sample: Any) -> None:
        if self.showing_call:
            self.session.emit("link_stats", self.username, sample)

    def _connection(self, state: str) -> None:
        if state in ("failed", "closed"):
            self._drop(f"the connection {state}")

    def _peer_switched(self) -> None:
        log.info("meeting %s: %s gets this end through the media server", self._id, self.username)
        self.handover.peer_said()

    def _left(self, username: object, reason: object) -> None:
        if username == self.username:
            self._drop("they left")

    def _state(self, state: MeetingState, reason: str | None) -> None:
        if state is MeetingState.ENDED:
            self._drop("the meeting ended here")

    @property
    def _id(self) -> str:
        return self.session.meeting_id[:8]

    def _receives_through_server(self) -> bool:
        """Whether the subscription to the other party has media: connected, and a frame of
        every kind they say they send (nothing more when they send nothing)."""
        sfu = self.session.sfu
        subscription = sfu.subscriptions.get(self.username) if sfu is not None else None
        if subscription is None or subscription.peer.connected_at is None:
            return False
        other = self.session.machine.participants.get(self.username)
        wanted = [
            slot
            for slot, sends in ((CAMERA, other.video if other else True),
                                (AUDIO, other.audio if other else True))
            if sends
        ]  # fmt: skip
        receivers = subscription.peer.receivers
        return all(getattr(receivers.get(slot), "frames", 0) > 0 for slot in wanted)

    async def _watch(self) -> None:
        while self.peer is not None:
            await asyncio.sleep(CHECK_S)
            now = time.monotonic()
            if self.showing_call and self._receives_through_server():
                self._switch(now)
            if self.handover.may_close(now):
                self._drop("both ends get each other through the media server")
                return

    def _switch(self, now: float) -> None:
        """Show the media server's tracks of the other party, and tell the other end."""
        if not self.handover.switched(now):
            return
        log.info("meeting %s: %s now through the media server", self._id, self.username)
        if self.peer is not None:
            self.peer.channel.send_switched()
            for receiver in self.peer.receivers.values():
                receiver.listeners.clear()  # no longer shown nor played: only counted
        self._show_held()
        self.session.emit("handover", self.username, "switched")

    def _show_held(self) -> None:
        held, self._held = self._held, {}
        for args in held.values():
            self.session.emit("remote_track", *args)

    def _drop(self, why: str) -> None:
        """Close the call's connection now (once; it carries nothing anyone needs)."""
        peer, self.peer = self.peer, None
        if peer is not None:
            self._closing = asyncio.get_running_loop().create_task(self._close_peer(peer, why))

    async def _close_peer(self, peer: PeerLink, why: str) -> None:
        log.info("meeting %s: the call's connection to %s closes: %s", self._id, self.username, why)
        if self.handover.switched_at is None:
            self.handover.switched_at = time.monotonic()
            self._show_held()  # nothing better to show now
        self.session.sfu_emit = self.session.emit
        peer.remove_all_listeners()
        for proxy in self._proxies.values():
            proxy.stop()
        self._proxies = {}
        await peer.close()
        self.session.emit("handover", self.username, "closed")

    async def close(self) -> None:
        """Close the call's connection (this end's part in the meeting is over)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._drop("the meeting is over here")
        if self._closing is not None:
            await self._closing


__all__ = ["CHECK_S", "HANDOVER_TIMEOUT_S", "CallBridge", "Handover"]
