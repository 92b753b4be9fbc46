"""The sender's adaptation: the pure controller, the scaler track, the repair governor."""

from __future__ import annotations

import asyncio
import fractions
import itertools

import av

from gui.core.adaptation import (
    MAX_BITRATE,
    MIN_BITRATE,
    START_BITRATE,
    RepairGovernor,
    SendController,
)
from gui.media.scaler import ScaledVideoTrack, scaled_size


def run(controller: SendController, seconds: int, loss: float | None, sent: float | None,
        rtt: float | None = 20.0) -> None:  # fmt: skip
    for _ in range(seconds):
        controller.update(loss, sent, rtt)


def test_no_loss_climbs_8_percent_a_second_up_to_what_the_encoder_can_use() -> None:
    c = SendController(640, 480, 30)
    c.update(0.0, 2_000_000, 20.0)
    assert c.target_bps == int(START_BITRATE * 1.08)
    run(c, 30, 0.0, 2_000_000)
    assert c.target_bps == MAX_BITRATE
    # An encoder that spends 300 kb/s holds the target near 1.5 times that.
    c = SendController(640, 480, 30)
    run(c, 30, 0.0, 300_000)
    assert c.target_bps == START_BITRATE


def test_heavy_loss_comes_down_from_what_was_sent_and_moderate_loss_holds() -> None:
    c = SendController(640, 480, 30)
    run(c, 20, 0.0, 2_000_000)
    c.update(0.30, 1_000_000, 20.0)
    assert c.target_bps == int(1_000_000 * 0.85)
    held = c.target_bps
    run(c, 5, 0.05, held)  # 5% random loss: neither up nor down
    assert c.target_bps == held
    run(c, 30, 0.5, 100_000)
    assert c.target_bps == MIN_BITRATE


def test_a_growing_queue_brings_the_target_under_what_was_sent_then_holds() -> None:
    c = SendController(640, 480, 30)
    run(c, 20, 0.0, 1_500_000, rtt=20.0)
    top = c.target_bps
    c.update(0.0, 1_200_000, 150.0)  # 130 ms queued on the path
    assert c.target_bps == int(min(top, 1_200_000) * 0.85)
    after = c.target_bps
    c.update(0.0, after, 150.0)  # holding while the queue drains
    assert c.target_bps == after
    run(c, 3, 0.0, after, rtt=20.0)
    assert c.target_bps > after


def test_resolution_goes_only_when_bitrate_is_not_enough_and_comes_back() -> None:
    c = SendController(1280, 720, 30)
    run(c, 20, 0.0, 2_000_000)
    assert c.plan.scale == 1.0 and c.plan.max_fps is None
    # The path shrinks: the encoder spends all it is given, and it is too little for 720p.
    for _ in range(40):
        c.update(0.25, c.target_bps, 20.0)
    assert c.target_bps == MIN_BITRATE
    assert (c.plan.scale, c.plan.max_fps) == (0.5, 15.0)  # 720p: half size at 15 frames/s
    # An encoder left unspent does not climb back during the cooldown; after it, it does.
    c.update(0.0, 10_000, 20.0)
    assert c.plan.max_fps == 15.0
    run(c, 40, 0.0, 2_000_000)
    assert c.plan.scale == 1.0 and c.plan.max_fps is None


def test_scaled_sizes_are_even_and_not_too_small() -> None:
    assert scaled_size(640, 480, 1.0) == (640, 480)
    assert scaled_size(640, 480, 0.75) == (480, 360)
    assert scaled_size(1280, 720, 0.5) == (640, 360)
    assert scaled_size(160, 120, 0.25) == (120, 90)


class Frames:
    """A source of numbered 640x480 frames, 30 a second by their timestamps."""

    kind = "video"

    def __init__(self) -> None:
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        frame = av.VideoFrame(640, 480, "yuv420p")
        frame.pts, frame.time_base = self.n * 3000, fractions.Fraction(1, 90000)
        self.n += 1
        return frame


async def test_the_scaler_track_shrinks_and_drops_frames_by_their_timestamps() -> None:
    track = ScaledVideoTrack(Frames())  # type: ignore[arg-type]
    frame = await track.recv()
    assert (frame.width, frame.height) == (640, 480)
    track.scale, track.max_fps = 0.5, 15.0
    stamps = [(await track.recv()).pts for _ in range(10)]
    assert track.sent_size == (320, 240)
    assert all(b - a == 6000 for a, b in itertools.pairwise(stamps))


class Sender:
    """What RepairGovernor wraps: aiortc's two methods, counting calls."""

    def __init__(self) -> None:
        self.resent: list[int] = []
        self.keyframes = 0
        self.rtcp: list[object] = []

    async def _handle_rtcp_packet(self, packet: object) -> None:
        self.rtcp.append(packet)

    async def _retransmit(self, seq: int) -> None:
        self.resent.append(seq)

    def _send_keyframe(self) -> None:
        self.keyframes += 1


async def test_the_repair_governor_bounds_retransmissions_and_key_frames() -> None:
    sender = Sender()
    governor = RepairGovernor(sender)
    governor.rtt_s = 0.2
    governor.budget_bps = 100_000  # about 10 packets a second
    # One NACK listing the same packets again and again resends each once per round trip.
    for _ in range(5):
        for seq in range(4):
            await sender._retransmit(seq)  # type: ignore[attr-defined]
    assert sender.resent == [0, 1, 2, 3]
    # A flood of distinct packets stops at the budget's burst.
    for seq in range(100, 200):
        await sender._retransmit(seq)  # type: ignore[attr-defined]
    assert len(sender.resent) < 20
    # Key frames: the first at once, a burst of PLIs makes one more, later.
    for _ in range(10):
        sender._send_keyframe()  # type: ignore[attr-defined]
    assert sender.keyframes == 1
    await asyncio.sleep(RepairGovernor.KEYFRAME_GAP + 0.1)
    assert sender.keyframes == 2
    governor.stop()


class Encoder:
    target_bitrate = 500_000


def test_the_encoder_is_rebuilt_seldom_on_the_way_up_and_at_once_on_the_way_down() -> None:
    from gui.core.adaptation import GovernedEncoder

    inner = Encoder()
    encoder = GovernedEncoder(inner)
    encoder.target_bitrate = 300_000  # a REMB: only recorded
    assert inner.target_bitrate == 500_000 and encoder.remb_bps == 300_000
    encoder.cap(540_000, now=0.0)  # +8%: not worth a key frame
    assert inner.target_bitrate == 500_000
    encoder.cap(640_000, now=1.0)  # +28%
    assert inner.target_bitrate == 640_000
    encoder.cap(900_000, now=3.0)  # too soon after the last change
    assert inner.target_bitrate == 640_000
    encoder.cap(900_000, now=6.5)
    assert inner.target_bitrate == 900_000
    encoder.cap(700_000, now=6.6)  # down: at once
    assert inner.target_bitrate == 700_000


async def test_packets_far_behind_the_newest_are_not_resent() -> None:
    """aiortc's receiver empties its jitter buffer for a packet 100 behind: never sent."""

    class Packet:
        def __init__(self, seq: int) -> None:
            self.sequence_number, self.timestamp = seq, seq * 3000

    sender = Sender()
    sender._RTCRtpSender__rtp_history = {s % 128: Packet(s) for s in range(1000, 1128)}  # type: ignore[attr-defined]
    RepairGovernor(sender)
    await sender._retransmit(1127 - 100)  # type: ignore[attr-defined]
    await sender._retransmit(1127 - 10)  # type: ignore[attr-defined]
    assert sender.resent == [1117]


async def test_a_nack_of_an_outage_becomes_a_key_frame() -> None:
    from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

    sender = Sender()
    governor = RepairGovernor(sender)
    scattered = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=2, lost=[5, 9])
    outage = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=2, lost=list(range(100)))
    await sender._handle_rtcp_packet(scattered)  # type: ignore[attr-defined]
    await sender._handle_rtcp_packet(outage)  # type: ignore[attr-defined]
    assert sender.rtcp == [scattered] and sender.keyframes == 1 and governor.outages == 1
    governor.stop()
