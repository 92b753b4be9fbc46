"""One call carried out: the :class:`CallMachine`'s decisions applied to an aiortc peer connection.

``CallSession`` listens to the signaling link for events of its call, feeds
them to the machine, and performs the machine's actions one at a time, in
order, on a single worker task (making an offer is asynchronous, and a
candidate must not overtake the description it belongs to).

At set-up it negotiates everything the call may ever need: one audio and two
video transceivers (camera, then screen) and a data channel, so that muting,
turning the camera off and sharing the screen later are ``replaceTrack``
calls and never a renegotiation. A peer that offers less (one audio, one
video, no data channel: any plain WebRTC endpoint) still gets a working
call; ``chat_available`` and ``screen_available`` then say what is missing.

Screen sharing: :meth:`CallSession.start_screen` puts a track (a
``gui.devices.screen.ScreenTrack``) on the screen slot and
:meth:`CallSession.stop_screen` takes it off; the camera keeps running, and the
peer learns of it through ``PeerMediaState(screen=...)`` on the data channel.

Events (pyee): ``state`` (CallState, reason), ``sas`` (words), ``chat``
(ChatMessage), ``delivered`` (id), ``peer_media`` (PeerMediaState), ``local_media``
(PeerMediaState: what this end sends, after a mute, a lost camera, or a share
started or stopped),
``stats`` (QualitySample), ``remote_track`` (slot, receiver), ``ended``.

What the peer sends is checked (``remote_sdp.py``) before aiortc sees it, and what
aiortc still refuses ends the call as ``failed`` with one log line, never a
traceback; so does a call that has not connected ``connect_timeout_s`` after the
answer. ``failure_detail`` then says why, in a sentence for the user.

The peer connection itself (sections, checks, receivers, data channel, stats) is a
:class:`~gui.core.peer_link.PeerLink`, the piece a call shares with every link of a
meeting; this module adds the call's machine, its signaling and its slot tracks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from pyee.asyncio import AsyncIOEventEmitter

from gui.core import ice
from gui.core.call_machine import (
    MOVED_TO_MEETING,
    AddCandidate,
    ApplyRemoteDescription,
    CallMachine,
    CallState,
    CloseCandidate,
    ClosePeer,
    MakeAnswer,
    MakeOffer,
    OpenCandidate,
    PromoteCandidate,
    Role,
    SendRequest,
    StateChanged,
)
from gui.core.escalation import HeldEvents
from gui.core.ice import ServerIce
from gui.core.peer_channel import ChatMessage, PeerChannel, PeerMediaState
from gui.core.peer_link import (
    AUDIO,
    CAMERA,
    SCREEN,
    CallOptions,
    IceServer,
    LocalMedia,
    PeerLink,
    Receiver,
    RemoteUnusable,
    SignalingLink,
)
from gui.core.quality import QualityMeter
from gui.core.runner import ActionRunner, send_request
from gui.media.slot import SlotTrack

log = logging.getLogger("parley.call")

Json = dict[str, Any]

__all__ = [
    "AUDIO",
    "CAMERA",
    "SCREEN",
    "CallOptions",
    "CallSession",
    "IceServer",
    "Json",
    "LocalMedia",
    "ScreenShareUnavailable",
    "SignalingLink",
]


class ScreenShareUnavailable(RuntimeError):
    """Sharing cannot start in this call; the message says why, in words for the user."""


class CallSession(AsyncIOEventEmitter):
    """Drives one call from ringing to its end."""

    def __init__(
        self,
        link: SignalingLink,
        machine: CallMachine,
        media: LocalMedia,
        options: CallOptions | None = None,
    ) -> None:
        super().__init__()
        self.link = link
        self.machine = machine
        self.media = media
        #: The options without the server's ICE servers, which each new link takes afresh.
        self._own_options = options or CallOptions()
        self.options = self._own_options.with_server_ice(link)
        #: The link that carries the call now (replaced when a restart's candidate connects).
        self.peer = PeerLink(self.options, f"call {machine.call_id}")
        #: Candidate links of restarts under way, by token, and their timers.
        self._candidates: dict[str, PeerLink] = {}
        self._candidate_timers: dict[str, asyncio.TimerHandle] = {}
        self._reconnect_timer: asyncio.TimerHandle | None = None
        self._checks: set[asyncio.Task[Any]] = set()
        self.audio_enabled = media.audio is not None
        self.video_enabled = media.camera is not None
        self.created_at = time.monotonic()
        #: When the callee answered (accept sent, or ``call.accepted`` received), monotonic.
        self.answered_at: float | None = None
        self._slot_tracks: dict[str, SlotTrack] = {}
        self._runner = ActionRunner(
            machine.take_actions, self._perform, self._failed, self._last_action
        )
        self._unsubscribe = link.on_event(self._on_server_event)
        given = getattr(link, "ice", None)
        self._unwatch_ice = (
            given.on_renewed(self._ice_renewed) if isinstance(given, ServerIce) else None
        )
        #: A meeting's events held from the moment the call moved into it (see ``move_to_meeting``).
        self.held: HeldEvents | None = None
        self._closed = asyncio.Event()
        self._bind(self.peer)
        self._attach_tracks()

    def _bind(self, link: PeerLink) -> None:
        """Forward ``link``'s events while it carries the call (a candidate's wait)."""
        for event in ("sas", "chat", "delivered", "peer_media", "stats", "remote_track"):
            link.on(event, self._forward(event, link))
        link.on("connection", lambda state: self._on_connection_state(link, state))
        link.on("quiet", lambda: self._path_quiet(link))
        link.on("resumed", lambda: self._media_heard(link))

    @property
    def pc(self) -> RTCPeerConnection:
        """The peer connection that carries the call now."""
        return self.peer.pc

    @property
    def channel(self) -> PeerChannel:
        """The data channel of the link that carries the call now."""
        return self.peer.channel

    @property
    def receivers(self) -> dict[str, Receiver]:
        """The newest receiver of each slot, on the link that carries the call now."""
        return self.peer.receivers

    @property
    def quality(self) -> QualityMeter:
        """The current link's quality meter."""
        return self.peer.quality

    # Construction ---------------------------------------------------------------

    @classmethod
    def outgoing(
        cls,
        link: SignalingLink,
        peer: str,
        media: LocalMedia,
        options: CallOptions | None = None,
        call_id: str | None = None,
    ) -> CallSession:
        """Ring ``peer``; the session negotiates once the callee accepts."""
        wants = {"audio": media.audio is not None, "video": media.camera is not None}
        machine = CallMachine(Role.CALLER, call_id or str(uuid.uuid4()), peer, wants)
        session = cls(link, machine, media, options)
        session._prepare_caller()
        machine.place()
        session._pump()
        return session

    @classmethod
    def incoming(
        cls,
        link: SignalingLink,
        event: Json,
        media: LocalMedia,
        options: CallOptions | None = None,
    ) -> CallSession:
        """A ``call.incoming`` event; answer with :meth:`accept` or :meth:`decline`."""
        caller = event.get("from", {}).get("username", "?")
        machine = CallMachine(Role.CALLEE, event["call_id"], caller, event.get("media", {}))
        session = cls(link, machine, media, options)
        session._pump()
        return session

    @classmethod
    def taken_over(
        cls,
        link: SignalingLink,
        event: Json,
        media: LocalMedia,
        options: CallOptions | None = None,
    ) -> CallSession:
        """A ``call.accepted`` for a call this process never had (``role`` and ``peer`` say
        which end it is): it is carried on by a restart (``CallMachine.taken_over``)."""
        role = Role(event["role"])
        machine = CallMachine(role, event["call_id"], str(event["peer"]), {})
        session = cls(link, machine, media, options)
        machine.taken_over()
        session._pump()
        return session

    def _prepare_caller(self) -> None:
        """Offer camera, audio, screen and the data channel (``PeerLink.offer_sections``)."""
        self.peer.offer_sections()

    def _attach_tracks(self) -> None:
        for slot, track in (
            (AUDIO, self.media.audio),
            (CAMERA, self.media.camera),
            (SCREEN, self.media.screen),
        ):
            if track is not None:
                self._set_slot(slot, track)

    # Public controls ------------------------------------------------------------

    @property
    def call_id(self) -> str:
        """The call's UUID."""
        return self.machine.call_id

    @property
    def state(self) -> CallState:
        """The machine's state."""
        return self.machine.state

    @property
    def failure_detail(self) -> str | None:
        """Why the call failed, in a sentence for the user, when the engine knows."""
        return self.machine.detail

    @property
    def chat_available(self) -> bool:
        """Whether the peer negotiated the data channel."""
        return self.channel.negotiated

    @property
    def screen_available(self) -> bool:
        """Whether this end may share its screen in this call (the peer negotiated the slot)."""
        return self.peer.screen_available

    @property
    def sas(self) -> list[str] | None:
        """The verification words, once both descriptions are known."""
        return self.peer.sas

    @property
    def peer_media(self) -> PeerMediaState:
        """What the peer says it sends."""
        return self.peer.peer_media

    @property
    def connected_at(self) -> float | None:
        """When media first connected, monotonic."""
        return self.peer.connected_at

    def use_media(self, media: LocalMedia) -> None:
        """Send ``media``'s microphone and camera from now on (an incoming call answered with
        the devices chosen at that moment): the slots are filled, nothing is renegotiated."""
        self.media.audio, self.media.camera = media.audio, media.camera
        self.audio_enabled = media.audio is not None
        self.video_enabled = media.camera is not None
        self._attach_tracks()

    def accept(self) -> None:
        """Answer an incoming call."""
        self.machine.accept()
        self._pump()

    def decline(self) -> None:
        """Refuse an incoming call."""
        self.machine.decline()
        self._pump()

    def hang_up(self) -> None:
        """End the call (cancel while ringing)."""
        self.machine.hang_up()
        self._pump()

    def send_chat(self, text: str) -> ChatMessage:
        """Send a chat message over the data channel."""
        return self.channel.send_chat(text)

    def set_audio_enabled(self, enabled: bool) -> None:
        """Mute or unmute: the sender's track is swapped, nothing is renegotiated."""
        self._set_slot(AUDIO, self.media.audio if enabled else None)
        self.audio_enabled = enabled and self.media.audio is not None
        self._announce()

    def set_video_enabled(self, enabled: bool) -> None:
        """Camera on or off, the same way."""
        self._set_slot(CAMERA, self.media.camera if enabled else None)
        self.video_enabled = enabled and self.media.camera is not None
        self._announce()

    def replace_camera(self, track: MediaStreamTrack | None) -> None:
        """Switch to another camera (or lose it: ``None`` means camera off)."""
        old, self.media.camera = self.media.camera, track
        if self.video_enabled or track is None:
            self._set_slot(CAMERA, track)
        if old is not None and old is not track:
            old.stop()
        if track is None:
            self.video_enabled = False
        self._announce()

    def replace_microphone(self, track: MediaStreamTrack | None) -> None:
        """Switch to another microphone."""
        old, self.media.audio = self.media.audio, track
        if self.audio_enabled or track is None:
            self._set_slot(AUDIO, track)
        if old is not None and old is not track:
            old.stop()
        if track is None:
            self.audio_enabled = False
        self._announce()

    @property
    def sharing_screen(self) -> bool:
        """Whether this end is sharing its screen now."""
        return self.media.screen is not None

    def start_screen(self, track: MediaStreamTrack) -> None:
        """Share ``track`` on the screen slot negotiated at set-up (``replaceTrack``).

        Nothing is renegotiated and the camera slot is untouched. A track shared already is
        replaced and stopped (switching screens is one call). The peer is told
        (``PeerMediaState(screen=True)``) and ``local_media`` is emitted. From then on the
        session owns the track: :meth:`stop_screen` or the end of the call stops it.

        Raises :class:`ScreenShareUnavailable`, leaving the track to the caller, when the
        peer negotiated no screen slot (``screen_available`` is False: a plain WebRTC peer,
        or a callee that has not applied the offer yet) or the call has ended.
        """
        if self.machine.ended:
            raise ScreenShareUnavailable("The call has ended.")
        if not self.screen_available or not self.peer.has_slot(SCREEN):
            raise ScreenShareUnavailable(
                "The other side's app cannot receive a shared screen in this call."
            )
        old, self.media.screen = self.media.screen, track
        self._set_slot(SCREEN, track)
        if old is not None and old is not track:
            old.stop()
        self._announce()

    def stop_screen(self) -> None:
        """Stop sharing (does nothing when not sharing).

        Nothing more is sent on the screen slot, the track is stopped (its capture released),
        the peer is told and ``local_media`` is emitted.
        """
        old, self.media.screen = self.media.screen, None
        if old is None:
            return
        self._set_slot(SCREEN, None)
        old.stop()
        if not self.machine.ended:
            self._announce()

    def _set_slot(self, slot: str, track: MediaStreamTrack | None) -> None:
        """Send ``track`` on ``slot`` (``None``: send nothing, as when muted).

        The sender always reads the slot's :class:`SlotTrack`, never a device track
        directly: a device track stopped while the sender waits in its ``recv()`` would end
        the sender for the rest of the call (aiortc), so switching or losing a camera
        would silence the slot.
        """
        if track is None:
            self.peer.send(slot, None)
            return
        holder = self._slot_tracks.get(slot)
        if holder is None:
            holder = self._slot_tracks[slot] = SlotTrack(track.kind)
        holder.set_source(track)
        self.peer.send(slot, holder)

    def _announce(self) -> None:
        state = PeerMediaState(
            self.audio_enabled, self.video_enabled, self.media.screen is not None
        )
        self.channel.send_state(state)
        self.emit("local_media", state)

    async def wait_ended(self) -> None:
        """Until the call has ended and everything it started has stopped."""
        await self._closed.wait()

    # Into a meeting (protocol v1.1) -------------------------------------------------

    def move_to_meeting(self, invite: list[str], title: str | None = None) -> str:
        """Turn the call into a meeting hosted here, inviting ``invite``; returns its id.

        Nothing changes until the server agrees: then the call ends ``moved_to_meeting``
        with ``machine.moved_to`` set, and :func:`gui.core.escalation.continue_in_meeting`
        carries its connection on in a :class:`~gui.core.meeting_session.MeetingSession`
        (the other party's end does the same). A refusal is emitted as ``request_failed``
        (kind ``meeting.create``, code, message) and the call goes on.
        """
        meeting_id = str(uuid.uuid4())
        media = {"audio": self.audio_enabled, "video": self.video_enabled}
        self.machine.move_to_meeting(meeting_id, media, invite, title)
        self._pump()
        return meeting_id

    def _refused(self, kind: str, code: str, message: str) -> None:
        self.machine.request_failed(kind, code)
        self.emit("request_failed", kind, code, message)

    def slot_tracks(self) -> dict[str, SlotTrack]:
        """The slot tracks this call's senders read (what a meeting it moves into keeps)."""
        return dict(self._slot_tracks)

    def _last_action(self, action: Any) -> bool:
        """The worker stops after closing, or once the call moved into a meeting."""
        return isinstance(action, ClosePeer) or (
            isinstance(action, StateChanged)
            and action.state is CallState.ENDED
            and self.machine.moved_to is not None
        )

    def _hand_over(self) -> None:
        """The call moved into a meeting: its connection, slots and tracks are left running
        for the meeting's session; this session stops listening to them and is over."""
        self._unsubscribe()
        self._stop_watching_ice()
        self.peer.remove_all_listeners()
        self.peer.cancel_deadline()
        self._follow_reconnection(CallState.ENDED)
        loop = asyncio.get_running_loop()
        for token in list(self._candidates):  # a restart under way is not the meeting's
            task = loop.create_task(self._close_candidate(token))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
        self._closed.set()
        asyncio.get_running_loop().call_soon(self.emit, "ended", self.machine.reason)

    # Inputs ---------------------------------------------------------------------

    def _on_server_event(self, message: Json) -> None:
        if message.get("type") == "client.reconnected":
            self.machine.signaling_reconnected()
            self._pump()
            return
        if message.get("call_id") == self.call_id:
            if message.get("reason") == MOVED_TO_MEETING and self.held is None:
                # From now on, what the meeting's newcomers send waits for the meeting's session.
                self.held = HeldEvents(self.link, str(message.get("meeting_id", "")))
            self.machine.server_event(message)
            self._pump()

    def _on_connection_state(self, link: PeerLink, state: str) -> None:
        if link is self.peer:
            self.machine.media_state(state)
        else:
            token = self._token_of(link)
            if token is not None:
                self.machine.candidate_state(token, state)
        self._pump()

    def _token_of(self, link: PeerLink) -> str | None:
        return next((t for t, c in self._candidates.items() if c is link), None)

    def _path_quiet(self, link: PeerLink) -> None:
        """Nothing came on the call's link for ``path_quiet_s``: the path is lost."""
        if link is self.peer:
            log.info("call %s: nothing heard for %.0f s", self.call_id, self.options.path_quiet_s)
            self.machine.path_lost()
            self._pump()
            check = getattr(self.link, "check_alive", None)
            if check is not None:  # the signaling may be as dead as the path (a new address)
                task = asyncio.get_running_loop().create_task(check())
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)

    def _media_heard(self, link: PeerLink) -> None:
        """The link's monitor: packets or heartbeats came (again)."""
        if link is self.peer:
            self.machine.media_resumed()
            self._pump()

    def _forward(self, event: str, link: PeerLink) -> Any:
        """Re-emit ``link``'s ``event`` as this session's, while ``link`` carries the call."""

        def forward(*args: Any) -> None:
            if link is self.peer:
                self.emit(event, *args)

        return forward

    # Actions --------------------------------------------------------------------

    def _pump(self) -> None:
        self._runner.pump()

    def _failed(self, action: Any, exc: Exception) -> None:
        """What performing ``action`` raised."""
        token = getattr(action, "link", None)
        if token is not None:  # a candidate link: only the restart fails
            self.machine.candidate_unusable(token, f"{type(action).__name__}: {exc!r}")
        elif isinstance(exc, RemoteUnusable):
            self._unusable(str(exc))
        elif isinstance(action, MakeAnswer | ApplyRemoteDescription | AddCandidate):
            # What the peer sent got past the checks and aiortc still refused it.
            self._unusable(f"{type(action).__name__}: {type(exc).__name__}: {exc}")
        else:
            log.error("call %s: %s failed", self.call_id, type(action).__name__, exc_info=exc)
            if isinstance(action, MakeOffer):
                self.machine.media_state("failed")

    def _unusable(self, problem: str) -> None:
        """End the call over something the peer sent: one log line, no traceback."""
        if not self.machine.ended:
            log.warning("call %s: cannot use what the peer sent: %s", self.call_id, problem[:300])
        self.machine.remote_unusable(problem[:300])

    async def _perform(self, action: Any) -> None:
        if self.machine.ended and isinstance(
            action,
            MakeOffer | MakeAnswer | ApplyRemoteDescription | AddCandidate | OpenCandidate,
        ):
            return  # the call ended while this waited: nothing more is negotiated
        if getattr(action, "link", None) is not None:
            await self._perform_restart(action)
            return
        if isinstance(action, SendRequest):
            if action.kind == "rtc.signal" and self.machine.ended:
                return
            await send_request(
                self.link,
                action,
                f"call {self.call_id}",
                log,
                self._refused,
            )
        elif isinstance(action, StateChanged):
            if action.state is CallState.ENDED and self.machine.moved_to is not None:
                self._hand_over()
            if action.state is CallState.CONNECTING and self.answered_at is None:
                self.answered_at = time.monotonic()
                self.peer.start_deadline(self._connect_deadline)
            self._follow_reconnection(action.state)
            self.emit("state", action.state, action.reason)
        elif isinstance(action, MakeOffer):
            self.machine.local_description(await self.peer.make_offer())
        elif isinstance(action, MakeAnswer):
            self.machine.local_description(await self.peer.make_answer())
        elif isinstance(action, ApplyRemoteDescription):
            expected = "offer" if self.machine.role is Role.CALLEE else "answer"
            await self.peer.apply_remote(action.description, expected)
        elif isinstance(action, AddCandidate):
            await self.peer.add_candidate(action.candidate)
        elif isinstance(action, ClosePeer):
            await self._close()

    # Recovery -------------------------------------------------------------------

    async def _perform_restart(self, action: Any) -> None:
        """Carry out an action on a candidate link (``action.link`` names it)."""
        token: str = action.link
        if isinstance(action, OpenCandidate):
            self._open_candidate(token, action.offerer)
            return
        if isinstance(action, PromoteCandidate):
            await self._promote(token)
            return
        if isinstance(action, CloseCandidate):
            await self._close_candidate(token)
            return
        link = self._candidates.get(token)
        if link is None:
            return  # dropped meanwhile
        if isinstance(action, MakeOffer):
            self.machine.candidate_description(token, await link.make_offer())
        elif isinstance(action, MakeAnswer):
            self.machine.candidate_description(token, await link.make_answer())
        elif isinstance(action, ApplyRemoteDescription):
            expected = "answer" if token.startswith(self.machine.role.value) else "offer"
            await link.apply_remote(action.description, expected)
        elif isinstance(action, AddCandidate):
            await link.add_candidate(action.candidate)

    def _ice_renewed(self) -> None:
        """The server handed out fresh TURN credentials: a call relayed through this end's own
        TURN allocation moves onto a fresh one before the old credentials expire (coturn
        refuses to refresh an allocation once its username has expired, and the relay then
        dies at aioice's next refresh)."""
        path = ice.selected_path(self.peer.pc) if not self.peer.closed else None
        if path is not None and path.local == "relay":
            self.machine.renew_path()
            self._pump()

    def _open_candidate(self, token: str, offerer: bool) -> None:
        log.info("call %s: restart %s (%s)", self.call_id, token, "offer" if offerer else "answer")
        # The ICE servers the signaling server hands out now: the credentials the call began
        # with may have expired.
        self.options = self._own_options.with_server_ice(self.link)
        link = PeerLink(self.options, f"call {self.call_id} restart {token}")
        self._candidates[token] = link
        self._bind(link)
        if offerer:
            link.offer_sections()
        self._candidate_timers[token] = asyncio.get_running_loop().call_later(
            self.options.restart_timeout_s, self._candidate_timeout, token
        )

    def _candidate_timeout(self, token: str) -> None:
        self._candidate_timers.pop(token, None)
        if token in self._candidates:
            log.info("call %s: restart %s did not connect in time", self.call_id, token)
        self.machine.candidate_timed_out(token)
        self._pump()

    async def _close_candidate(self, token: str) -> None:
        timer = self._candidate_timers.pop(token, None)
        if timer is not None:
            timer.cancel()
        link = self._candidates.pop(token, None)
        if link is not None:
            await link.close()

    async def _promote(self, token: str) -> None:
        """The candidate carries the call: the slots move onto it and the old link closes."""
        timer = self._candidate_timers.pop(token, None)
        if timer is not None:
            timer.cancel()
        link = self._candidates.pop(token, None)
        self.machine.moved(token)  # the swap below comes before any await
        if link is None:
            return
        old, self.peer = self.peer, link
        log.info("call %s: restart %s connected; the call moves onto it", self.call_id, token)
        for slot, track in old.tracks().items():
            link.send(slot, track)
            old.send(slot, None)
        await old.close()
        self._announce()
        for slot, receiver in link.receivers.items():
            self.emit("remote_track", slot, receiver)
        if link.sas is not None:
            self.emit("sas", link.sas)
        self.emit("restarted", token)

    def _follow_reconnection(self, state: CallState) -> None:
        """Start the reconnection budget on entering ``reconnecting``; stop it on leaving."""
        if state is CallState.RECONNECTING:
            if self._reconnect_timer is None:
                self._reconnect_timer = asyncio.get_running_loop().call_later(
                    self.options.reconnect_timeout_s, self._reconnect_deadline
                )
        elif self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None

    def _reconnect_deadline(self) -> None:
        self._reconnect_timer = None
        log.warning(
            "call %s: not reconnected within %.0f s", self.call_id, self.options.reconnect_timeout_s
        )
        self.machine.reconnect_deadline_passed()
        self._pump()

    # Timers ---------------------------------------------------------------------

    def _connect_deadline(self) -> None:
        if self.machine.state is CallState.CONNECTING:
            log.warning(
                "call %s: not connected %.0f s after the answer (ICE %s)",
                self.call_id,
                self.options.connect_timeout_s,
                self.pc.iceConnectionState,
            )
        self.machine.connect_deadline_passed()
        self._pump()

    # The end --------------------------------------------------------------------

    def _stop_watching_ice(self) -> None:
        if self._unwatch_ice is not None:
            self._unwatch_ice()
            self._unwatch_ice = None

    async def _close(self) -> None:
        self._unsubscribe()
        self._stop_watching_ice()
        self._follow_reconnection(CallState.ENDED)
        for token in list(self._candidates):
            await self._close_candidate(token)
        await self.peer.close()
        for holder in self._slot_tracks.values():
            holder.stop()
        self.media.stop()
        self._closed.set()
        self.emit("ended", self.machine.reason)
