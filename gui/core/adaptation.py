"""The sender's adaptation to the network: bitrate first, then resolution, then frame rate.

aiortc has one congestion signal of its own: the receiver's REMB (a delay-based
estimate), which it writes straight into the encoder's target bitrate. Nothing
reacts to loss, and nothing ever changes the size or the rate of what is sent.
This module adds both, for each video sender of a peer connection:

- :class:`SendController` is pure (no clock, no aiortc): fed once a second with
  what the peer reported (its loss over the last second, from RTCP receiver
  reports), the peer's REMB and what this end sent, it keeps a target bitrate
  the way the loss-based half of Google Congestion Control does (more than 10%
  lost: down by half the loss; under 2%: up 8% a second; in between: held),
  never above the REMB nor far above what the encoder actually produced, and
  picks from it a scale of the picture and a frame rate, with hysteresis, so
  that resolution goes only when bitrate is not enough, and frame rate after it.
- :class:`GovernedEncoder` stands in for aiortc's encoder of a sender: the REMB
  aiortc writes is recorded, and the encoder gets the lower of it and the
  controller's target.
- :class:`SenderAdaptation` ties one sender, its :class:`~gui.media.scaler.ScaledVideoTrack`
  and a controller together, from the stats report a link reads every second.

Audio is left alone (Opus at aiortc's fixed rate is a small share): video makes
room for it. Recovery from loss is aiortc's: NACK retransmissions and key frames
on PLI.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gui.media.scaler import ScaledVideoTrack

log = logging.getLogger("parley.adaptation")

#: Bits per pixel per frame that VP8 needs for a fair picture (measured on the test
#: pattern and on camera-like content; below it, a smaller picture looks better).
BITS_PER_PIXEL = 0.04
#: The ladder of picture scales, largest first, and of frame rates for the smallest scale.
SCALES = (1.0, 0.75, 0.5, 0.375)
LOW_FPS = 15.0
#: aiortc's VP8 encoder keeps its target within these (bits per second).
MIN_BITRATE = 150_000
MAX_BITRATE = 1_500_000
START_BITRATE = 500_000
#: Seconds a higher rung must be affordable before climbing to it.
CLIMB_AFTER = 3


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
        self.remb_bps: int | None = None
        self.rung = 0  # index into SCALES; one past the end: smallest scale at LOW_FPS
        self._affordable_for = 0
        self.source(width, height, fps)

    def source(self, width: int, height: int, fps: float) -> None:
        """What the source sends at full size."""
        self.width, self.height, self.fps = width, height, max(1.0, fps)

    def needed_bps(self, rung: int) -> float:
        """Bits a second a rung of the ladder needs for a fair picture."""
        scale = SCALES[min(rung, len(SCALES) - 1)]
        fps = LOW_FPS if rung >= len(SCALES) else self.fps
        return self.width * self.height * scale * scale * min(fps, self.fps) * BITS_PER_PIXEL

    @property
    def plan(self) -> SendPlan:
        """What to apply now."""
        low = self.rung >= len(SCALES)
        return SendPlan(
            self.target_bps,
            SCALES[min(self.rung, len(SCALES) - 1)],
            LOW_FPS if low and self.fps > LOW_FPS else None,
        )

    def remb(self, bps: int) -> None:
        """The peer's receiver estimated this maximum (REMB)."""
        self.remb_bps = bps

    def update(self, loss: float | None, sent_bps: float | None) -> SendPlan:
        """One second: the fraction the peer lost (0 to 1; ``None``: no report), what was sent."""
        target = float(self.target_bps)
        if loss is not None and loss > 0.10:
            # Lost more than a tenth: down from what was really sent, by half the loss.
            base = min(target, sent_bps) if sent_bps else target
            target = base * (1 - 0.5 * loss)
        elif loss is not None and loss < 0.02:
            target *= 1.08
            if sent_bps:  # an encoder that undershoots does not pull the target up forever
                target = min(target, max(sent_bps * 1.5, START_BITRATE))
        if self.remb_bps is not None:
            target = min(target, self.remb_bps)
        self.target_bps = int(max(MIN_BITRATE, min(MAX_BITRATE, target)))
        self._ladder()
        return self.plan

    def _ladder(self) -> None:
        """Down a rung when the target cannot feed this one; up after it could feed the next."""
        last = len(SCALES)
        if self.rung < last and self.target_bps < 0.8 * self.needed_bps(self.rung):
            self.rung += 1
            self._affordable_for = 0
        elif self.rung > 0 and self.target_bps > 1.1 * self.needed_bps(self.rung - 1):
            self._affordable_for += 1
            if self._affordable_for >= CLIMB_AFTER:
                self.rung -= 1
                self._affordable_for = 0
        else:
            self._affordable_for = 0


class GovernedEncoder:
    """aiortc's encoder of one sender, whose target bitrate is the lower of REMB and ours."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.remb_bps: int | None = None
        self.cap_bps: int | None = None

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
        """aiortc writes the REMB here: recorded, and applied under our cap."""
        self.remb_bps = int(bps)
        self._apply()

    def cap(self, bps: int) -> None:
        """The controller's target."""
        self.cap_bps = bps
        self._apply()

    def _apply(self) -> None:
        values = [v for v in (self.remb_bps, self.cap_bps) if v is not None]
        if values:
            self.inner.target_bitrate = min(values)


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
        self.encoder: GovernedEncoder | None = None
        self.loss: float | None = None
        self.sent_bps: float | None = None
        self._previous: _Counts | None = None
        self._report_at: object = None

    def tick(self, report: Mapping[str, Any], now: float) -> SendPlan | None:
        """Fold this second's stats in and apply the plan; None while nothing is sent."""
        ssrc = getattr(self.sender, "_ssrc", None)
        outbound = _find(report, "outbound-rtp", ssrc)
        if outbound is None:
            return None
        remote = _find(report, "remote-inbound-rtp", ssrc)
        frames = self.track.frames_sent if self.track is not None else 0
        counts = _Counts(outbound.bytesSent or 0, frames, now)
        previous, self._previous = self._previous, counts
        # The peer's receiver report since the last one (about one a second): a report that
        # did not change says nothing, and the target is held.
        self.loss = None
        if remote is not None and remote.timestamp != self._report_at:
            self._report_at = remote.timestamp
            self.loss = (remote.fractionLost or 0) / 256
        self.encoder = govern(self.sender) or self.encoder
        if self.encoder is not None and self.encoder.remb_bps is not None:
            self.controller.remb(self.encoder.remb_bps)
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
        plan = self.controller.update(self.loss, self.sent_bps)
        if self.encoder is not None:
            self.encoder.cap(plan.target_bps)
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


def _find(report: Mapping[str, Any], kind: str, ssrc: int | None) -> Any:
    for stats in report.values():
        if getattr(stats, "type", None) == kind and getattr(stats, "ssrc", None) == ssrc:
            return stats
    return None
