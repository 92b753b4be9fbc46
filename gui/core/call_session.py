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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from pyee.asyncio import AsyncIOEventEmitter

from gui.core.call_machine import (
    AddCandidate,
    ApplyRemoteDescription,
    CallMachine,
    CallState,
    ClosePeer,
    MakeAnswer,
    MakeOffer,
    Role,
    SendRequest,
    StateChanged,
)
from gui.core.peer_channel import ChatMessage, PeerChannel, PeerMediaState
from gui.core.quality import QualityMeter
from gui.core.remote_sdp import check_candidate, check_description, mids_in_sdp
from gui.core.signaling_client import NotConnected, RequestError
from gui.core.verification import fingerprints_in_sdp, verification_words
from gui.media import decode_guard
from gui.media.analysis import AudioReceiver, VideoReceiver
from gui.media.slot import SlotTrack

log = logging.getLogger("parley.call")

Json = dict[str, Any]


class SignalingLink(Protocol):
    """What a call needs of the signaling connection (the client, or the server's own bots)."""

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request; return the ``ok`` reply or raise."""

    def on_event(self, callback: Callable[[Json], None]) -> Callable[[], None]:
        """Subscribe to server events; returns the unsubscribe function."""


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server (TURN with credentials)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How calls connect. No ICE servers by default: nothing reaches out to a public STUN server."""

    ice_servers: list[IceServer] = field(default_factory=list)
    #: Nothing from the peer (no packet, no heartbeat) for this long while connected: it is gone.
    media_timeout_s: float = 10.0
    #: An answered call that has not connected this long after the answer fails (ICE checks
    #: still running count as not connected).
    connect_timeout_s: float = 30.0
    stats_interval_s: float = 1.0
    heartbeat_interval_s: float = 2.0

    def rtc_configuration(self) -> RTCConfiguration:
        """The explicit configuration every peer connection gets.

        Max-bundle: every section rides on the first one's transport. With aiortc's default
        (balanced), the second video transceiver (the screen slot) is bundled at creation
        onto the camera's own transport, which the remote BUNDLE group then discards: the
        screen slot's sender and receiver never start.
        """
        return RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                for s in self.ice_servers
            ],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )


@dataclass(slots=True)
class LocalMedia:
    """The tracks this end sends; ``None`` sends nothing on that slot."""

    audio: MediaStreamTrack | None = None
    camera: MediaStreamTrack | None = None
    screen: MediaStreamTrack | None = None

    def stop(self) -> None:
        """Stop every track (devices and generator threads with them)."""
        for track in (self.audio, self.camera, self.screen):
            if track is not None:
                track.stop()


#: Slot names of the transceivers, in negotiation order.
AUDIO, CAMERA, SCREEN = "audio", "camera", "screen"


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
        decode_guard.install()  # what a lying video sender can make the decoder do is bounded
        self.link = link
        self.machine = machine
        self.media = media
        self.options = options or CallOptions()
        self.pc = RTCPeerConnection(self.options.rtc_configuration())
        self.channel = PeerChannel(
            on_chat=self._chat, on_delivered=self._delivered, on_peer_state=self._peer_media
        )
        self.peer_media = PeerMediaState(audio=True, video=True, screen=False)
        self.receivers: dict[str, VideoReceiver | AudioReceiver] = {}
        self.quality = QualityMeter()
        self.sas: list[str] | None = None
        self.audio_enabled = media.audio is not None
        self.video_enabled = media.camera is not None
        self.screen_available = False
        self.created_at = time.monotonic()
        #: When the callee answered (accept sent, or ``call.accepted`` received), monotonic.
        self.answered_at: float | None = None
        self.connected_at: float | None = None
        self._slots: dict[str, RTCRtpTransceiver] = {}
        self._retired: list[VideoReceiver | AudioReceiver] = []
        self._slot_tracks: dict[str, SlotTrack] = {}
        self._actions: asyncio.Queue[Any] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._candidates_ended = False
        self._unsubscribe = link.on_event(self._on_server_event)
        self._closed = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self.channel.attach)

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

    def _prepare_caller(self) -> None:
        """Offer camera, audio, screen and the data channel, in that order.

        The camera comes first so that its section heads the BUNDLE group. A peer on
        aiortc's default bundle policy ("balanced") puts its second video receiver on the
        transport of its first video section when it applies the offer, and moves only the
        other sections onto the transport of the group's first mid: with audio first, that
        video transport is discarded and the screen's packets reach no receiver. With the
        camera first, both video sections already sit on the transport the bundle keeps.
        Standards-following peers (browsers) do not care about the order.
        """
        for slot, kind in ((CAMERA, "video"), (AUDIO, "audio"), (SCREEN, "video")):
            self._slots[slot] = self.pc.addTransceiver(kind, direction="sendrecv")
        self.channel.attach(self.pc.createDataChannel("parley", ordered=True))
        self._attach_tracks()
        self.screen_available = True

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
        if not self.screen_available or SCREEN not in self._slots:
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
        transceiver = self._slots.get(slot)
        if transceiver is None:
            return
        if track is None:
            transceiver.sender.replaceTrack(None)
            return
        holder = self._slot_tracks.get(slot)
        if holder is None:
            holder = self._slot_tracks[slot] = SlotTrack(track.kind)
        holder.set_source(track)
        if transceiver.sender.track is not holder:
            transceiver.sender.replaceTrack(holder)

    def _announce(self) -> None:
        state = PeerMediaState(
            self.audio_enabled, self.video_enabled, self.media.screen is not None
        )
        self.channel.send_state(state)
        self.emit("local_media", state)

    async def wait_ended(self) -> None:
        """Until the call has ended and everything it started has stopped."""
        await self._closed.wait()

    # Inputs ---------------------------------------------------------------------

    def _on_server_event(self, message: Json) -> None:
        if message.get("call_id") == self.call_id:
            self.machine.server_event(message)
            self._pump()

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("call %s media %s", self.call_id, state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self._start_monitor()
        self.machine.media_state(state)
        self._pump()

    def _on_track(self, track: MediaStreamTrack) -> None:
        slot = self._slot_of(track)
        receiver: VideoReceiver | AudioReceiver
        receiver = AudioReceiver(track) if track.kind == "audio" else VideoReceiver(track)
        previous = self.receivers.get(slot)
        if previous is not None:
            self._retired.append(previous)
        self.receivers[slot] = receiver
        receiver.start()
        self.emit("remote_track", slot, receiver)

    def _slot_of(self, track: MediaStreamTrack) -> str:
        videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        for index, transceiver in enumerate(videos):
            if transceiver.receiver.track is track:
                return CAMERA if index == 0 else SCREEN
        return AUDIO if track.kind == "audio" else CAMERA

    def _chat(self, message: ChatMessage) -> None:
        self.emit("chat", message)

    def _delivered(self, message_id: str) -> None:
        self.emit("delivered", message_id)

    def _peer_media(self, state: PeerMediaState) -> None:
        self.peer_media = state
        self.emit("peer_media", state)

    # Actions --------------------------------------------------------------------

    def _pump(self) -> None:
        for action in self.machine.take_actions():
            self._actions.put_nowait(action)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while True:
            action = await self._actions.get()
            try:
                await self._perform(action)
            except Exception as exc:
                if isinstance(action, MakeAnswer | ApplyRemoteDescription | AddCandidate):
                    # What the peer sent got past the checks and aiortc still refused it.
                    self._unusable(f"{type(action).__name__}: {type(exc).__name__}: {exc}")
                else:
                    log.exception("call %s: %s failed", self.call_id, type(action).__name__)
                    if isinstance(action, MakeOffer):
                        self.machine.media_state("failed")
            self._pump()
            if isinstance(action, ClosePeer):
                return

    def _unusable(self, problem: str) -> None:
        """End the call over something the peer sent: one log line, no traceback."""
        if not self.machine.ended:
            log.warning("call %s: cannot use what the peer sent: %s", self.call_id, problem[:300])
        self.machine.remote_unusable(problem[:300])

    async def _perform(self, action: Any) -> None:
        if self.machine.ended and isinstance(
            action, MakeOffer | MakeAnswer | ApplyRemoteDescription | AddCandidate
        ):
            return  # the call ended while this waited: nothing more is negotiated
        if isinstance(action, SendRequest):
            if action.kind == "rtc.signal" and self.machine.ended:
                return
            await self._request(action)
        elif isinstance(action, StateChanged):
            if action.state is CallState.CONNECTING and self.answered_at is None:
                self.answered_at = time.monotonic()
                self._deadline = asyncio.get_running_loop().call_later(
                    self.options.connect_timeout_s, self._connect_deadline
                )
            self.emit("state", action.state, action.reason)
        elif isinstance(action, MakeOffer | MakeAnswer):
            description = await (
                self.pc.createOffer() if isinstance(action, MakeOffer) else self.pc.createAnswer()
            )
            await self.pc.setLocalDescription(description)
            if isinstance(action, MakeAnswer):
                self.screen_available = self._may_send(SCREEN)
            local = self.pc.localDescription
            self.machine.local_description({"type": local.type, "sdp": local.sdp})
            self._verification()
        elif isinstance(action, ApplyRemoteDescription):
            await self._apply_remote(action.description)
        elif isinstance(action, AddCandidate):
            await self._add_candidate(action.candidate)
        elif isinstance(action, ClosePeer):
            await self._close()

    async def _request(self, action: SendRequest) -> None:
        try:
            await self.link.request(action.kind, **action.fields)
        except RequestError as exc:
            log.info("call %s: %s refused: %s", self.call_id, action.kind, exc)
            self.machine.request_failed(action.kind, exc.code)
        except (NotConnected, TimeoutError) as exc:
            log.info("call %s: %s not sent: %s", self.call_id, action.kind, exc)
            self.machine.request_failed(action.kind, "unreachable")

    async def _apply_remote(self, description: Json) -> None:
        local = self.pc.localDescription
        problem = check_description(
            description,
            "offer" if self.machine.role is Role.CALLEE else "answer",
            local.sdp if local is not None else None,
        )
        if problem is not None:
            self._unusable(problem)
            return
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=description["sdp"], type=description["type"])
        )
        if self.machine.role is Role.CALLEE:
            self._adopt_offered_transceivers()
        else:
            self._check_answered_slots()
        self._verification()

    def _adopt_offered_transceivers(self) -> None:
        """Map the offer's sections to slots: first audio; first video camera, second screen."""
        audio = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
        video = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        if audio:
            self._slots[AUDIO] = audio[0]
        if video:
            self._slots[CAMERA] = video[0]
        if len(video) > 1:
            self._slots[SCREEN] = video[1]
        self.screen_available = SCREEN in self._slots
        for transceiver in self._slots.values():
            transceiver.direction = "sendrecv"
        self._attach_tracks()
        if not self.screen_available:
            log.info(
                "call %s: the peer offered no screen slot; screen sharing is off", self.call_id
            )

    def _check_answered_slots(self) -> None:
        self.screen_available = self._may_send(SCREEN)

    def _may_send(self, slot: str) -> bool:
        """Whether the negotiated direction of ``slot`` lets this end send on it.

        ``currentDirection`` is this end's view (RFC 8829 4.2.5): a peer that answers a
        section ``recvonly`` makes it ``sendonly`` here, which is all a share needs.
        """
        transceiver = self._slots.get(slot)
        return transceiver is not None and transceiver.currentDirection in (
            "sendrecv",
            "sendonly",
        )

    async def _add_candidate(self, candidate: Json) -> None:
        remote = self.pc.remoteDescription
        problem = check_candidate(candidate, mids_in_sdp(remote.sdp) if remote else [])
        if problem is not None:
            self._unusable(problem)
            return
        text = candidate.get("candidate") or ""
        if self._candidates_ended:
            log.info("call %s: a candidate after the end of candidates; ignored", self.call_id)
            return
        if not text:
            self._candidates_ended = True
            return
        parsed = candidate_from_sdp(text.removeprefix("candidate:"))
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(parsed)

    def _verification(self) -> None:
        local, remote = self.pc.localDescription, self.pc.remoteDescription
        if self.sas is not None or local is None or remote is None:
            return
        mine = sorted(f for f in fingerprints_in_sdp(local.sdp) if f.startswith("sha-256"))
        theirs = sorted(f for f in fingerprints_in_sdp(remote.sdp) if f.startswith("sha-256"))
        if mine and theirs:
            self.sas = verification_words(mine[0], theirs[0])
            self.emit("sas", self.sas)

    # Monitoring -----------------------------------------------------------------

    def _start_monitor(self) -> None:
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Stats every second, heartbeats, and noticing a peer that vanished."""
        packets_seen = -1
        quiet_since = time.monotonic()
        next_ping = 0.0
        while not self.machine.ended:
            await asyncio.sleep(self.options.stats_interval_s)
            now = time.monotonic()
            if now >= next_ping:
                self.channel.send_ping()
                next_ping = now + self.options.heartbeat_interval_s
            try:
                report = await self.pc.getStats()
            except Exception:
                log.debug("getStats failed", exc_info=True)
                continue
            videos = [
                (slot, r.frames, r.width or 0, r.height or 0)
                for slot, r in self.receivers.items()
                if isinstance(r, VideoReceiver) and r.frames
            ]
            try:
                sample = self.quality.sample(report, now, videos)
            except Exception:
                log.exception("call %s: cannot read the stats report", self.call_id)
                continue
            self.emit("stats", sample)
            packets = sum(
                (s.packetsReceived or 0) for s in report.values() if s.type == "inbound-rtp"
            )
            if packets != packets_seen or self.channel.last_heard > quiet_since:
                packets_seen = packets
                quiet_since = now
                self.machine.media_resumed()
            elif now - quiet_since > self.options.media_timeout_s:
                log.info(
                    "call %s: nothing from the peer for %.0f s", self.call_id, now - quiet_since
                )
                self.machine.media_silent()
            self._pump()

    def _connect_deadline(self) -> None:
        self._deadline = None
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

    async def _close(self) -> None:
        self._unsubscribe()
        if self._deadline is not None:
            self._deadline.cancel()
        if self._monitor is not None and self._monitor is not asyncio.current_task():
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor
        for receiver in [*self.receivers.values(), *self._retired]:
            await receiver.stop()
        try:
            await self.pc.close()
        except Exception as exc:  # a connection left half-built by what the peer sent
            log.warning("call %s: closing the connection failed: %r", self.call_id, exc)
        for holder in self._slot_tracks.values():
            holder.stop()
        self.media.stop()
        self._closed.set()
        self.emit("ended", self.machine.reason)
