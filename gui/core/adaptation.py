"""The sender's adaptation to the network: bitrate first, then resolution, then frame rate.

aiortc has one congestion signal of its own: the receiver's REMB (a delay-based
estimate), which it writes straight into the encoder's target bitrate. Nothing
reacts to loss, and nothing ever changes the size or the rate of what is sent.
Worse, measured in the lab (tests/net) on these 2-core machines, an aiortc
receiver's REMB sat at 250-290 kb/s with no limit on the path at all (bursty
sends and a loaded CPU look like queueing to its arrival-time filter), holding a
720p camera at VP8's floor. So the sender decides by itself, from what the peer's
RTCP reports say, for each video sender of a peer connection:

- :class:`SendController` is pure (no clock, no aiortc): fed once a second with
  the loss the peer reported for the last second, the round-trip time and what
  this end sent, it keeps a target bitrate as Google Congestion Control's
  loss-based half does (more than 10% lost: down by half the loss; under 2%: up
  8% a second; in between: held), plus a delay signal GCC gets from transport-wide
  feedback, which aiortc lacks: a round trip 60 ms above the lowest seen means a
  queue is building on the path, and the target drops to 85% of what was sent
  (then holds for 2 s while the queue drains). The target never runs far above
  what the encoder really produced. From the target it picks a scale of the
  picture and a frame rate, with hysteresis, so that resolution goes only when
  bitrate is not enough, and frame rate after it.
- :class:`GovernedEncoder` stands in for aiortc's encoder of a sender: the REMB
  aiortc writes is recorded (for the figures), and the encoder gets the
  controller's target.
- :class:`SenderAdaptation` ties one sender, its :class:`~gui.media.scaler.ScaledVideoTrack`
  and a controller together, from the stats report a link reads every second.

- :class:`RepairGovernor` bounds what the peer's NACKs and PLIs make a sender do.
  aiortc retransmits every sequence number each NACK lists, and an aiortc receiver
  lists every packet still missing in each NACK it sends: under a cap, measured in
  the lab, 30% loss turned a 350 kb/s video into 4 Mb/s of retransmissions and not
  one frame got through for 17 s. Here a packet is resent at most once per round
  trip, retransmissions get at most a third of the target bitrate, and key frames
  asked for by PLI come at most every 300 ms (a refused one is sent when allowed).

Audio is left alone (Opus at aiortc's fixed rate is a small share): video makes
room for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from gui.media.scaler import ScaledVideoTrack

log = logging.getLogger("parley.adaptation")

#: Bits per pixel per frame below which a smaller picture looks better than a starved one
#: (the low end of the usual 0.04 to 0.1 for VP8; not tuned on real cameras here).
BITS_PER_PIXEL = 0.04
LOW_FPS = 15.0
#: The ladder, best first: (linear scale of the picture, frame rate limit or None).
RUNGS: tuple[tuple[float, float | None], ...] = (
    (1.0, None),
    (0.75, None),
    (0.5, None),
    (0.5, LOW_FPS),
    (0.375, LOW_FPS),
)
SCALES = tuple(dict.fromkeys(scale for scale, _ in RUNGS))
#: The target's range (bits per second); aiortc's VP8 encoder itself spends 250 kb/s at least.
MIN_BITRATE = 150_000
MAX_BITRATE = 1_500_000
START_BITRATE = 500_000
#: Seconds a higher rung must be affordable before climbing to it.
CLIMB_AFTER = 3
#: Seconds after a step down during which easy content alone does not climb back.
RUNG_COOLDOWN = 10
#: Queueing delay (round trip above the lowest seen, ms) that means the path is full.
QUEUE_MS = 60.0
#: aiortc's smoothing of the round-trip time (``rtcrtpsender.RTT_ALPHA``).
RTT_ALPHA = 0.85
#: Seconds the target holds after a delay-based decrease (the queue drains meanwhile).
HOLD_AFTER_DECREASE = 2


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What the sender does now."""

    target_bps: int
    scale: float
    max_fps: float | None


class SendController:
    """The target bitrate and the picture's scale and rate for one video sender (pure)."""

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        self.target_bps = START_BITRATE
        self.rung = 0  # index into RUNGS
        self._affordable_for = 0
        self._quiet_rungs = 0
        self._sent: list[float] = []
        self.min_rtt_ms: float | None = None
        self._hold = 0
        self.source(width, height, fps)

    def source(self, width: int, height: int, fps: float) -> None:
        """What the source sends at full size."""
        self.width, self.height, self.fps = width, height, max(1.0, fps)

    def needed_bps(self, rung: int) -> float:
        """Bits a second a rung of the ladder needs for a fair picture."""
        scale, limit = RUNGS[rung]
        fps = min(limit, self.fps) if limit else self.fps
        return self.width * self.height * scale * scale * min(fps, self.fps) * BITS_PER_PIXEL

    @property
    def plan(self) -> SendPlan:
        """What to apply now."""
        scale, limit = RUNGS[self.rung]
        return SendPlan(
            self.target_bps,
            scale,
            limit if limit and self.fps > limit else None,
        )

    def update(
        self, loss: float | None, sent_bps: float | None, rtt_ms: float | None = None
    ) -> SendPlan:
        """One second: the fraction the peer lost (0 to 1; ``None``: no new report), what was
        sent (bits a second) and the round trip the peer's last report gave (ms)."""
        target = float(self.target_bps)
        base = min(target, sent_bps) if sent_bps else target
        # What the encoder produced lately (one second alone swings with key frames).
        self._sent = [*self._sent[-2:], sent_bps or 0.0]
        recent = max(self._sent)
        queued = False
        if rtt_ms is not None:
            self.min_rtt_ms = rtt_ms if self.min_rtt_ms is None else min(self.min_rtt_ms, rtt_ms)
            queued = rtt_ms - self.min_rtt_ms > QUEUE_MS
        self._hold = max(0, self._hold - 1)
        if loss is not None and loss > 0.10:
            # Lost more than a tenth: down from what was really sent, by half the loss.
            target = base * (1 - 0.5 * loss)
        elif queued and not self._hold:
            target = base * 0.85
            self._hold = HOLD_AFTER_DECREASE
        elif loss is not None and loss < 0.02 and not queued and not self._hold:
            target *= 1.08
            if recent:  # an encoder that undershoots does not pull the target up forever
                target = min(target, max(recent * 1.5, START_BITRATE))
        self.target_bps = int(max(MIN_BITRATE, min(MAX_BITRATE, target)))
        self._ladder(sent_bps)
        return self.plan

    def _ladder(self, sent_bps: float | None) -> None:
        """Down a rung when the encoder spends its whole target and the target cannot feed
        this rung; up after the target could feed the next one for a while, or after the
        encoder has left much of its target unspent for longer (easy content)."""
        last = len(RUNGS) - 1
        sent = sent_bps or 0.0
        saturated = sent >= 0.85 * self.target_bps
        self._quiet_rungs = max(0, self._quiet_rungs - 1)
        if self.rung < last and saturated and self.target_bps < 0.8 * self.needed_bps(self.rung):
            self.rung += 1
            self._affordable_for = 0
            self._quiet_rungs = RUNG_COOLDOWN
            return
        affordable = self.rung > 0 and self.target_bps > 1.1 * self.needed_bps(self.rung - 1)
        easy = self.rung > 0 and sent < 0.6 * self.target_bps and not self._quiet_rungs
        if affordable or easy:
            self._affordable_for += 1
            if self._affordable_for >= CLIMB_AFTER:
                self.rung -= 1
                self._affordable_for = 0
        else:
            self._affordable_for = 0


class GovernedEncoder:
    """aiortc's encoder of one sender, whose target bitrate is ours (REMB only recorded)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.remb_bps: int | None = None
        self.cap_bps: int | None = None
        self._changed_at = float("-inf")

    def encode(self, frame: Any, force_keyframe: bool = False) -> Any:
        """Encode as aiortc's encoder does."""
        return self.inner.encode(frame, force_keyframe)

    def pack(self, packet: Any) -> Any:
        """Packetise pre-encoded data as aiortc's encoder does."""
        return self.inner.pack(packet)

    @property
    def target_bitrate(self) -> int:
        """What the encoder aims at now (bits per second)."""
        return int(self.inner.target_bitrate)

    @target_bitrate.setter
    def target_bitrate(self, bps: int) -> None:
        """aiortc writes the REMB here: recorded only (see the module's note)."""
        self.remb_bps = int(bps)

    def cap(self, bps: int, now: float) -> None:
        """The controller's target, as of ``now`` (seconds).

        aiortc rebuilds its VP8 encoder, which starts with a key frame, for every change of
        more than 10%: a target climbing 8% a second would cost a key frame every other
        second, and key frames are what loss hurts most. So a decrease goes through at
        once, an increase only when it is 25% or more and 5 s after the last change.
        """
        self.cap_bps = bps
        current = int(self.inner.target_bitrate)
        if bps < current or (bps >= 1.25 * current and now - self._changed_at >= 5.0):
            self.inner.target_bitrate = bps
            self._changed_at = now


class RepairGovernor:
    """Rate limits on one sender's retransmissions (NACK) and key frames (PLI)."""

    #: Bytes one retransmitted packet is counted as (a full video packet).
    PACKET_BYTES = 1200
    #: Key frames asked for by the peer come at most this often (seconds).
    KEYFRAME_GAP = 0.3
    #: Packets further behind the newest sent are not resent: aiortc's receiver takes a packet
    #: 100 or more behind its jitter buffer for a new stream and empties the buffer (then asks
    #: for a key frame), which after a black hole of a few seconds it did again and again.
    MAX_BEHIND = 96
    #: A NACK listing more packets than this reports an outage, not scattered loss: a key frame
    #: repairs it at once, where resending them would come late.
    OUTAGE_PACKETS = 32

    def __init__(self, sender: Any) -> None:
        self._sender = sender
        self._resend = sender._retransmit
        self._keyframe = sender._send_keyframe
        self._rtcp = sender._handle_rtcp_packet
        sender._handle_rtcp_packet = self.rtcp
        sender._retransmit = self.retransmit
        sender._send_keyframe = self.keyframe
        self.budget_bps = 0.33 * START_BITRATE
        self.rtt_s = 0.1
        self._tokens = 8.0 * self.PACKET_BYTES
        self._refilled: float | None = None
        self._sent_at: dict[int, float] = {}
        self._keyframe_at = float("-inf")
        self._keyframe_pending: asyncio.TimerHandle | None = None
        self.resent = 0
        self.refused = 0
        self.keyframes = 0
        self.outages = 0

    async def retransmit(self, sequence_number: int) -> None:
        """What aiortc calls for each sequence number a NACK lists."""
        now = asyncio.get_running_loop().time()
        if self._refilled is not None:
            burst = max(8.0 * self.PACKET_BYTES, self.budget_bps / 8 * 0.25)
            self._tokens = min(burst, self._tokens + (now - self._refilled) * self.budget_bps / 8)
        self._refilled = now
        last = self._sent_at.get(sequence_number)
        if (
            (last is not None and now - last < max(0.05, self.rtt_s))
            or self._tokens < self.PACKET_BYTES
            or self._behind(sequence_number) >= self.MAX_BEHIND
        ):
            self.refused += 1
            return
        self._tokens -= self.PACKET_BYTES
        self._sent_at[sequence_number] = now
        if len(self._sent_at) > 1024:
            for seq in sorted(self._sent_at, key=self._sent_at.__getitem__)[:512]:
                del self._sent_at[seq]
        self.resent += 1
        await self._resend(sequence_number)

    async def rtcp(self, packet: Any) -> None:
        """What aiortc calls with each RTCP packet for the sender: an outage's NACK becomes a
        key frame; everything else goes on to aiortc."""
        nack = isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK
        if nack and len(packet.lost) > self.OUTAGE_PACKETS:
            self.outages += 1
            self.keyframe()
            return
        await self._rtcp(packet)

    def _behind(self, sequence_number: int) -> int:
        """How many packets ``sequence_number`` is behind the newest in the sender's history."""
        history = getattr(self._sender, "_RTCRtpSender__rtp_history", None)
        if not history:
            return 0
        newest = max(history.values(), key=lambda packet: packet.timestamp)
        return int((newest.sequence_number - sequence_number) % 65536)

    def keyframe(self) -> None:
        """What aiortc calls on a PLI or FIR."""
        loop = asyncio.get_running_loop()
        wait = self._keyframe_at + self.KEYFRAME_GAP - loop.time()
        if wait <= 0:
            self._send_keyframe()
        elif self._keyframe_pending is None:
            self._keyframe_pending = loop.call_later(wait, self._send_keyframe)

    def _send_keyframe(self) -> None:
        self._keyframe_pending = None
        self._keyframe_at = asyncio.get_running_loop().time()
        self.keyframes += 1
        self._keyframe()

    def stop(self) -> None:
        """No key frame is sent after this."""
        if self._keyframe_pending is not None:
            self._keyframe_pending.cancel()
            self._keyframe_pending = None


def route_retransmissions(transceivers: Any) -> int:
    """Make retransmissions reach their receiver; returns how many RTX streams were routed.

    aiortc registers a receiver on the bundled transport's router under its media SSRC only,
    not under the retransmission (RTX) SSRC the peer declared; it then routes an RTX packet by
    payload type alone, which works only while one video receiver shares the transport. A
    Parley link has two (camera and screen), so every retransmission was dropped: measured
    with 5% loss, the camera froze for 10 s at a time (9 frames/s) where one video
    transceiver alone got 29. Each receiver's RTX SSRCs are added to the router's table.
    """
    routed = 0
    for transceiver in transceivers:
        receiver = transceiver.receiver
        rtx = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", None)
        transport = receiver.transport
        router = getattr(transport, "_rtp_router", None) if transport is not None else None
        if not rtx or router is None:
            continue
        for ssrc in rtx:
            if router.ssrc_table.get(ssrc) is not receiver:
                router.ssrc_table[ssrc] = receiver
                routed += 1
    return routed


_ENCODER = "_RTCRtpSender__encoder"  # aiortc makes it at the first frame; no public hook


def govern(sender: Any) -> GovernedEncoder | None:
    """The sender's encoder, wrapped once to follow our target (None before it exists)."""
    encoder = getattr(sender, _ENCODER, None)
    if encoder is None or not hasattr(encoder, "target_bitrate"):
        return None
    if not isinstance(encoder, GovernedEncoder):
        encoder = GovernedEncoder(encoder)
        setattr(sender, _ENCODER, encoder)
    return encoder


@dataclass(slots=True)
class _Counts:
    bytes_sent: int
    frames: int
    at: float


class SenderAdaptation:
    """One video sender of a link: reads its stats, runs its controller, applies the plan."""

    def __init__(self, sender: Any, track: ScaledVideoTrack | None) -> None:
        self.sender = sender
        self.track = track
        self.controller = SendController()
        self.repair = RepairGovernor(sender)
        self.encoder: GovernedEncoder | None = None
        self.loss: float | None = None
        self.rtt_ms: float | None = None
        self.sent_bps: float | None = None
        self._previous: _Counts | None = None
        self._report_at: object = None
        self._smoothed_rtt: float | None = None

    def tick(self, report: Mapping[str, Any], now: float) -> SendPlan | None:
        """Fold this second's stats in and apply the plan; None while nothing is sent."""
        # aiortc names a sender's entries after the sender (the remote-inbound entry carries
        # the reporting receiver's SSRC, not the sender's).
        outbound = report.get(f"outbound-rtp_{id(self.sender)}")
        if outbound is None:
            return None
        remote = report.get(f"remote-inbound-rtp_{id(self.sender)}")
        frames = self.track.frames_sent if self.track is not None else 0
        counts = _Counts(outbound.bytesSent or 0, frames, now)
        previous, self._previous = self._previous, counts
        # The peer's receiver report since the last one (about one a second): a report that
        # did not change says nothing, and the target is held.
        self.loss = self.rtt_ms = None
        if remote is not None and remote.timestamp != self._report_at:
            self._report_at = remote.timestamp
            self.loss = (remote.fractionLost or 0) / 256
            smoothed = remote.roundTripTime
            if smoothed is not None:
                # aiortc smooths the round trip (new = 0.85 old + 0.15 sample): the sample is
                # taken back out, so that a queue is seen in a second rather than in five, and
                # averaged with the smoothed value, so that one odd sample does not decide.
                old, self._smoothed_rtt = self._smoothed_rtt, smoothed
                sample = smoothed if old is None else (smoothed - RTT_ALPHA * old) / (1 - RTT_ALPHA)
                self.rtt_ms = max(0.0, (sample + smoothed) / 2) * 1000
                self.repair.rtt_s = smoothed
        self.encoder = govern(self.sender) or self.encoder
        if previous is None or now <= previous.at:
            return None
        span = now - previous.at
        self.sent_bps = (counts.bytes_sent - previous.bytes_sent) * 8 / span
        track = self.track
        if track is not None and track.sent_size is not None and track.scale >= 1.0:
            # At full size, what is sent is the source: its size, and its rate when unlimited.
            fps = self.controller.fps
            if track.max_fps is None and counts.frames > previous.frames:
                fps = 0.7 * fps + 0.3 * max(5.0, (counts.frames - previous.frames) / span)
            self.controller.source(*track.sent_size, fps)
        before = self.controller.plan
        plan = self.controller.update(self.loss, self.sent_bps, self.rtt_ms)
        if self.encoder is not None:
            self.encoder.cap(plan.target_bps, now)
        self.repair.budget_bps = plan.target_bps / 3
        if self.track is not None:
            self.track.scale, self.track.max_fps = plan.scale, plan.max_fps
        if (plan.scale, plan.max_fps) != (before.scale, before.max_fps):
            log.info(
                "send plan: %d kb/s, scale %.3g, %s fps (loss %.1f%%, sent %.0f kb/s)",
                plan.target_bps // 1000,
                plan.scale,
                plan.max_fps or "all",
                100 * (self.loss or 0.0),
                self.sent_bps / 1000,
            )
        return plan
