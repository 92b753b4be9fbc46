"""One peer connection, negotiated the way every Parley call is: what a call and a meeting share.

A 1:1 call (``call_session.py``) has one of these; a mesh meeting
(``meeting_session.py``) has one per other participant. Each is negotiated the
same way, so that any Parley end (and any plain WebRTC peer) talks to any other:

- sections camera, audio, screen (in that order) and a data channel, all
  offered at set-up, so that muting, switching devices and sharing later are
  ``replaceTrack`` calls and never a renegotiation; max-bundle;
- what the peer sends is checked (``remote_sdp.py``) before aiortc sees it; a
  check that fails raises :class:`RemoteUnusable` for the owner to end the
  call or the link (as it does when aiortc still refuses it);
- remote tracks are drained by receivers (camera, audio, screen), the data
  channel carries chat, media state and heartbeats (``peer_channel.py``),
  stats are read every second, and a peer silent for too long is reported.

The owner decides which track each sender reads (:meth:`PeerLink.send`): a
call hands it a :class:`~gui.media.slot.SlotTrack` per slot, a meeting a
``MediaRelay`` proxy per slot and link.

Events (pyee): ``connection`` (connectionState), ``remote_track`` (slot,
receiver), ``chat`` (ChatMessage), ``delivered`` (id), ``peer_media``
(PeerMediaState), ``sas`` (words), ``stats`` (QualitySample), ``quiet`` (nothing at
all came for ``path_quiet_s``: the path may be lost), ``silent`` and ``resumed``
(nothing came from the peer for ``media_timeout_s``; it came again), ``channel_open``
(the data channel opened) and ``past`` (list of PastChat: a meeting's earlier chat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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

from gui.core import ice, late_chunks, udp_reading
from gui.core.adaptation import SenderAdaptation, route_retransmissions
from gui.core.ice import IceServer
from gui.core.peer_channel import ChatMessage, PeerChannel, PeerMediaState
from gui.core.quality import QualityMeter
from gui.core.receive_repair import repair_receivers, round_trip
from gui.core.remote_sdp import check_candidate, check_description, mids_in_sdp
from gui.core.verification import fingerprints_in_sdp, verification_words
from gui.media import decode_guard, fast_paths
from gui.media.analysis import AudioReceiver, VideoReceiver
from gui.media.scaler import ScaledVideoTrack

log = logging.getLogger("parley.call")

Json = dict[str, Any]
Receiver = VideoReceiver | AudioReceiver

#: Slot names of the transceivers, in negotiation order.
AUDIO, CAMERA, SCREEN = "audio", "camera", "screen"
SLOTS = (CAMERA, AUDIO, SCREEN)


class SignalingLink(Protocol):
    """What a call or a meeting needs of the signaling connection (the client, or a bot's)."""

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request; return the ``ok`` reply or raise."""

    def on_event(self, callback: Callable[[Json], None]) -> Callable[[], None]:
        """Subscribe to server events; returns the unsubscribe function."""


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How calls connect. No ICE servers by default: nothing reaches out to a public STUN server."""

    ice_servers: list[IceServer] = field(default_factory=list)
    #: Nothing from the peer (no packet, no heartbeat) for this long while connected: it is gone.
    media_timeout_s: float = 10.0
    #: Nothing at all from the peer (RTP, RTCP, heartbeats) for this long: the path is lost and a
    #: call starts recovering (``quiet``); heartbeats go every second, so muting is not quiet.
    path_quiet_s: float = 3.0
    #: A restart's candidate link that has not connected this long is replaced.
    restart_timeout_s: float = 6.0
    #: A call that has not recovered this long after its path was lost ends as ``lost``.
    reconnect_timeout_s: float = 15.0
    #: An answered call that has not connected this long after the answer fails (ICE checks
    #: still running count as not connected).
    connect_timeout_s: float = 30.0
    stats_interval_s: float = 1.0
    heartbeat_interval_s: float = 1.0
    #: A meeting through a media server receives at most this many videos at once (None: by
    #: the meeting's size, ``sfu_session.video_limit``); everyone's audio always.
    max_videos: int | None = None

    def with_server_ice(self, link: object) -> CallOptions:
        """These options with the ICE servers ``link``'s server handed out first (protocol
        v1.1; ``gui/core/ice.py``), then these."""
        given = ice.server_ice_of(link)
        if not given:
            return self
        return replace(self, ice_servers=ice.servers_for_call(given, self.ice_servers))

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

    def of(self, slot: str) -> MediaStreamTrack | None:
        """The track for ``slot``."""
        track: MediaStreamTrack | None = getattr(self, slot)
        return track


class RemoteUnusable(Exception):
    """What the peer sent cannot be used; the message is the technical reason."""


class PeerLink(AsyncIOEventEmitter):
    """One ``RTCPeerConnection`` with its slots, receivers, data channel and monitor."""

    def __init__(self, options: CallOptions, label: str) -> None:
        """``label`` names the link in log lines (a call id, a meeting id and a username)."""
        super().__init__()
        decode_guard.install()  # what a lying video sender can make the decoder do is bounded
        fast_paths.install()  # cheaper per-frame paths: audio level, hand-overs, audio on the loop
        ice.install()  # relayed calls that work: every TURN server, no relaying to private peers
        udp_reading.install()  # a busy loop still reads every packet waiting, not one a pass
        late_chunks.install()  # a data-channel chunk the ended path refuses is lost, not raised
        self.options = options
        self.label = label
        self.pc = RTCPeerConnection(options.rtc_configuration())
        self.channel = PeerChannel(
            on_chat=lambda m: self._emit("chat", m),
            on_delivered=lambda i: self._emit("delivered", i),
            on_peer_state=self._peer_media,
            on_past=lambda p: self._emit("past", p),
            on_open=lambda: self._emit("channel_open"),
        )
        self.peer_media = PeerMediaState(audio=True, video=True, screen=False)
        #: The newest receiver of each slot; replaced ones are kept (stopped at the end).
        self.receivers: dict[str, Receiver] = {}
        self.quality = QualityMeter()
        self.sas: list[str] | None = None
        self.screen_available = False
        self.connected_at: float | None = None
        self.closed = False
        self._slots: dict[str, RTCRtpTransceiver] = {}
        self._tracks: dict[str, MediaStreamTrack | None] = {}
        #: The camera goes through a scaler this link's adaptation sizes (one per source).
        self._scalers: dict[str, ScaledVideoTrack] = {}
        self._adaptations: dict[str, SenderAdaptation] = {}
        self._retired: list[Receiver] = []
        self._candidates_ended = False
        self._monitor: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self.channel.attach)

    def _emit(self, event: str, *args: Any) -> None:
        if not self.closed:
            self.emit(event, *args)

    # Negotiation ---------------------------------------------------------------

    def offer_sections(self, direction: str = "sendrecv", data_channel: bool = True) -> None:
        """Offer camera, audio, screen and the data channel, in that order.

        A meeting's publisher to a media server offers them ``sendonly`` and without the
        data channel (``sfu_session.py``).

        The camera comes first so that its section heads the BUNDLE group. A peer on
        aiortc's default bundle policy ("balanced") puts its second video receiver on the
        transport of its first video section when it applies the offer, and moves only the
        other sections onto the transport of the group's first mid: with audio first, that
        video transport is discarded and the screen's packets reach no receiver. With the
        camera first, both video sections already sit on the transport the bundle keeps.
        Standards-following peers (browsers) do not care about the order.
        """
        for slot, kind in ((CAMERA, "video"), (AUDIO, "audio"), (SCREEN, "video")):
            self._slots[slot] = self.pc.addTransceiver(kind, direction=direction)
        if data_channel:
            self.channel.attach(self.pc.createDataChannel("parley", ordered=True))
        self._attach_tracks()
        self.screen_available = True

    async def make_offer(self) -> Json:
        """Create the offer, set it as the local description and return it."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self._local()

    async def make_answer(self) -> Json:
        """Create the answer, set it as the local description and return it."""
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.screen_available = self.may_send(SCREEN)
        return self._local()

    def _local(self) -> Json:
        local = self.pc.localDescription
        self._verification()
        return {"type": local.type, "sdp": local.sdp}

    async def apply_remote(self, description: Json, expected: str) -> None:
        """Check the peer's offer or answer (``expected``), then set it.

        Raises :class:`RemoteUnusable` when the check fails; what aiortc refuses raises
        whatever aiortc raises.
        """
        local = self.pc.localDescription
        problem = check_description(description, expected, local.sdp if local else None)
        if problem is not None:
            raise RemoteUnusable(problem)
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=description["sdp"], type=description["type"])
        )
        if expected == "offer":
            self._adopt_offered_transceivers()
        else:
            self.screen_available = self.may_send(SCREEN)
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
            log.info("%s: the peer offered no screen slot; screen sharing is off", self.label)

    def may_send(self, slot: str) -> bool:
        """Whether the negotiated direction of ``slot`` lets this end send on it.

        ``currentDirection`` is this end's view (RFC 8829 4.2.5): a peer that answers a
        section ``recvonly`` makes it ``sendonly`` here, which is all a share needs.
        """
        transceiver = self._slots.get(slot)
        return transceiver is not None and transceiver.currentDirection in (
            "sendrecv",
            "sendonly",
        )

    def has_slot(self, slot: str) -> bool:
        """Whether ``slot`` was negotiated (or offered, on the offering side)."""
        return slot in self._slots

    async def add_candidate(self, candidate: Json) -> None:
        """Check and add a trickled candidate; raises :class:`RemoteUnusable`."""
        remote = self.pc.remoteDescription
        problem = check_candidate(candidate, mids_in_sdp(remote.sdp) if remote else [])
        if problem is not None:
            raise RemoteUnusable(problem)
        text = candidate.get("candidate") or ""
        if self._candidates_ended:
            log.info("%s: a candidate after the end of candidates; ignored", self.label)
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
            self._emit("sas", self.sas)

    # Sending ---------------------------------------------------------------------

    def send(self, slot: str, track: MediaStreamTrack | None) -> None:
        """Have ``slot``'s sender read ``track`` (``None``: send nothing, as when muted).

        Remembered for a slot not negotiated yet (an answerer before the offer).
        """
        self._tracks[slot] = track
        sent = self._scaled(slot, track)
        transceiver = self._slots.get(slot)
        if transceiver is not None and transceiver.sender.track is not sent:
            transceiver.sender.replaceTrack(sent)

    def _scaled(self, slot: str, track: MediaStreamTrack | None) -> MediaStreamTrack | None:
        """The camera's track behind this link's scaler (made once per source)."""
        if slot != CAMERA or track is None or track.kind != "video":
            return track
        scaler = self._scalers.get(slot)
        if scaler is None or scaler.source is not track:
            if scaler is not None:
                scaler.stop()
            scaler = self._scalers[slot] = ScaledVideoTrack(track)
        return scaler

    def _adapt(self, report: Any, now: float) -> None:
        """Each video sender's adaptation, from this second's stats (``adaptation.py``)."""
        if route_retransmissions(self.pc.getTransceivers()):
            log.info("%s: retransmissions routed to their receivers", self.label)
        repair_receivers(self.pc.getTransceivers(), round_trip(report))
        for slot in (CAMERA, SCREEN):
            transceiver = self._slots.get(slot)
            if transceiver is None or transceiver.sender.track is None:
                continue
            adaptation = self._adaptations.get(slot)
            if adaptation is None or adaptation.sender is not transceiver.sender:
                adaptation = self._adaptations[slot] = SenderAdaptation(transceiver.sender, None)
            adaptation.track = self._scalers.get(slot)
            adaptation.tick(report, now)

    @property
    def send_size(self) -> tuple[int, int] | None:
        """The size of the camera frames this link sends now (after its adaptation)."""
        scaler = self._scalers.get(CAMERA)
        sending = CAMERA in self._slots and self._slots[CAMERA].sender.track is scaler
        return scaler.sent_size if scaler is not None and sending else None

    @property
    def send_target_kbps(self) -> float | None:
        """What the camera's encoder aims at now (kb/s), once it has one."""
        adaptation = self._adaptations.get(CAMERA)
        if adaptation is None or adaptation.encoder is None:
            return None
        return round(adaptation.encoder.target_bitrate / 1000, 1)

    def tracks(self) -> dict[str, MediaStreamTrack | None]:
        """What each slot's sender was told to read (``None``: nothing, as when muted)."""
        return dict(self._tracks)

    def _attach_tracks(self) -> None:
        for slot, track in self._tracks.items():
            if track is not None:
                self.send(slot, track)

    # Receiving -------------------------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("%s media %s", self.label, state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self.cancel_deadline()
            self._start_monitor()
        self._emit("connection", state)

    def _on_track(self, track: MediaStreamTrack) -> None:
        slot = self._slot_of(track)
        receiver: Receiver
        receiver = AudioReceiver(track) if track.kind == "audio" else VideoReceiver(track)
        previous = self.receivers.get(slot)
        if previous is not None:
            self._retired.append(previous)
        self.receivers[slot] = receiver
        receiver.start()
        self._emit("remote_track", slot, receiver)

    def _slot_of(self, track: MediaStreamTrack) -> str:
        videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        for index, transceiver in enumerate(videos):
            if transceiver.receiver.track is track:
                return CAMERA if index == 0 else SCREEN
        return AUDIO if track.kind == "audio" else CAMERA

    def _peer_media(self, state: PeerMediaState) -> None:
        self.peer_media = state
        self._emit("peer_media", state)

    # Timers ----------------------------------------------------------------------

    def start_deadline(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` if not connected within ``connect_timeout_s`` (once)."""
        if self._deadline is None and self.connected_at is None and not self.closed:
            self._deadline = asyncio.get_running_loop().call_later(
                self.options.connect_timeout_s, callback
            )

    def cancel_deadline(self) -> None:
        """Forget the connection deadline."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _start_monitor(self) -> None:
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Stats every second, heartbeats, and noticing a peer that vanished."""
        packets_seen = -1
        bytes_seen = -1
        quiet_since = heard_at = time.monotonic()
        quiet = False
        next_ping = 0.0
        while not self.closed:
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
                self._adapt(report, now)
            except Exception:
                log.exception("%s: the sender's adaptation failed", self.label)
            try:
                sample = self.quality.sample(report, now, videos)
            except Exception:
                log.exception("%s: cannot read the stats report", self.label)
                continue
            size = self.send_size
            sample = replace(
                sample,
                send_width=size[0] if size else None,
                send_height=size[1] if size else None,
                send_target_kbps=self.send_target_kbps,
                path=ice.selected_path(self.pc),
            )
            self._emit("stats", sample)
            packets = sum(
                (s.packetsReceived or 0) for s in report.values() if s.type == "inbound-rtp"
            )
            got = sum(
                (getattr(s, "bytesReceived", 0) or 0)
                for s in report.values()
                if s.type == "transport"
            )
            if got != bytes_seen or self.channel.last_heard > heard_at:
                bytes_seen, heard_at, quiet = got, now, False
            elif not quiet and now - heard_at >= self.options.path_quiet_s:
                quiet = True
                self._emit("quiet")
            if packets != packets_seen or self.channel.last_heard > quiet_since:
                packets_seen = packets
                quiet_since = now
                self._emit("resumed")
            elif now - quiet_since > self.options.media_timeout_s:
                log.info("%s: nothing from the peer for %.0f s", self.label, now - quiet_since)
                self._emit("silent")

    # The end ---------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the monitor and the receivers, close the connection; emits nothing more.

        The tracks handed to :meth:`send` belong to the owner, who stops them.
        """
        if self.closed:
            return
        self.closed = True
        self.cancel_deadline()
        if self._monitor is not None and self._monitor is not asyncio.current_task():
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor
        for receiver in [*self.receivers.values(), *self._retired]:
            await receiver.stop()
        for scaler in self._scalers.values():
            scaler.stop()
        for adaptation in self._adaptations.values():
            adaptation.repair.stop()
        try:
            await self.pc.close()
        except Exception as exc:  # a connection left half-built by what the peer sent
            log.warning("%s: closing the connection failed: %r", self.label, exc)

    def chat(self, text: str, msg_id: str | None = None) -> ChatMessage:
        """Send a chat message over the data channel (raises ``ChatUnavailable``);
        ``msg_id``: its id (a meeting's message has one id on every link)."""
        return self.channel.send_chat(text, msg_id)
