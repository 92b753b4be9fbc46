"""The video receiver's repair of lost packets: the pure decisions, then aiortc's own jitter
buffer and NACK generator driven packet by packet through the hook (no sockets)."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.codecs import depayload
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from gui.core.receive_repair import (
    LossRepair,
    ReceiveRepair,
    is_keyframe,
    repair_counts,
    repair_receivers,
)

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
KEY = b"\x00\x00\x00\x9d\x01\x2a" + (640).to_bytes(2, "little") + (480).to_bytes(2, "little")
DELTA = b"\x01\x00\x00"


def test_a_missing_packet_is_asked_for_again_every_round_trip_up_to_a_limit() -> None:
    plan = LossRepair()
    plan.rtt_s = 0.1
    plan.asked([7, 8], now=0.0)  # aiortc's own NACK
    assert plan.due(0.1) == []  # not a round trip (and a quarter) yet
    assert plan.due(0.13) == [7, 8]
    plan.arrived(8)
    assert plan.due(0.2) == []
    asks = [t for t in range(1, 100) if plan.due(0.13 + t * 0.13) == [7]]
    assert len(asks) == LossRepair.MAX_NACKS - 2  # aiortc's first and the one above
    plan.rtt_s = 0.001
    assert plan.interval == LossRepair.MIN_INTERVAL  # never faster than the sender takes


def test_the_deadline_follows_the_round_trip_within_bounds() -> None:
    plan = LossRepair()
    plan.rtt_s = 0.005
    assert plan.deadline == LossRepair.DEADLINE_MIN
    plan.rtt_s = 0.2
    assert plan.deadline == 0.2 * LossRepair.DEADLINE_RTTS + LossRepair.DEADLINE_SLACK
    plan.rtt_s = 3.0
    assert plan.deadline == LossRepair.DEADLINE_MAX
    plan.rtt_s = 0.05
    plan.asked([65535], now=1.0)
    assert not plan.expired(65535, now=1.0 + plan.deadline)  # asked for once only
    plan.asked([65535], now=1.1)
    plan.asked([65535], now=1.0 + plan.deadline - 0.01)
    assert not plan.expired(65535, now=1.0 + plan.deadline)  # the last ask just went out
    assert plan.expired(65535, now=1.0 + plan.deadline + plan.interval)
    assert not plan.expired(3, now=5.0)  # unknown until now: its deadline starts now
    assert plan.forget_before(2) == [65535]  # across the wrap of sequence numbers
    assert list(plan.holes) == [3]


def test_key_frames_are_asked_for_at_most_every_gap() -> None:
    plan = LossRepair()
    assert plan.keyframe(10.0)
    assert not plan.keyframe(10.0 + LossRepair.KEYFRAME_GAP / 2)
    assert plan.keyframe(10.0 + LossRepair.KEYFRAME_GAP)


def test_key_frames_are_recognised() -> None:
    assert is_keyframe("VP8", KEY + b"\x00" * 20)
    assert is_keyframe("VP8", DELTA) is False
    assert is_keyframe("H264", b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x01\x65\x88")
    assert is_keyframe("H264", b"\x00\x00\x00\x01\x41\x9a") is False
    assert is_keyframe("opus", b"") is None


class Receiver:
    """The parts of aiortc's RTCRtpReceiver the repair uses, with aiortc's own jitter buffer
    and NACK generator; :meth:`rtp` does what ``_handle_rtp_packet`` does with a packet."""

    def __init__(self) -> None:
        self._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=512, is_video=True)
        self._RTCRtpReceiver__nack_generator = NackGenerator()
        self._RTCRtpReceiver__codecs = {96: VP8}
        self.nacks: list[list[int]] = []
        self.plis = 0
        self.frames: list[bytes] = []

    async def _send_rtcp_nack(self, media_ssrc: int, lost: list[int]) -> None:
        self.nacks.append(lost)

    def rtp(self, seq: int, frame: int, first: bool, key: bool) -> None:
        data = (KEY if key else DELTA) if first else b"\x00" * 8
        payload = (b"\x10" if first else b"\x00") + data
        packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=frame * 3000)
        packet.ssrc, packet.payload = 1234, payload
        if self._RTCRtpReceiver__nack_generator.add(packet):
            self.nacks.append(sorted(self._RTCRtpReceiver__nack_generator.missing))
        packet._data = depayload(VP8, payload)  # type: ignore[attr-defined]
        pli, got = self._RTCRtpReceiver__jitter_buffer.add(packet)
        self.plis += pli
        if got is not None:
            self.frames.append(got.data)


class Call:
    """Frames of two packets every 1/30 s into one receiver, on a clock of our own."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.now = 0.0
        self.frame = 0

    def send(self, frames: int, lose: frozenset[int] = frozenset(), key: int | None = None) -> None:
        for _ in range(frames):
            for part in range(2):
                seq = (2 * self.frame + part) % 65536
                if seq not in lose:
                    self.receiver.rtp(seq, self.frame, part == 0, self.frame in (0, key))
                self.now += 1 / 60
            self.frame += 1


def repaired_call(rtt_s: float | None) -> tuple[Receiver, Call, ReceiveRepair]:
    """A receiver with its repair (told the round trip, if given), 10 frames in."""
    receiver = Receiver()
    call = Call(receiver)
    repair = ReceiveRepair(receiver, clock=lambda: call.now)
    if rtt_s is not None:
        repair.plan.rtt_s = rtt_s
    call.send(10)
    return receiver, call, repair


async def test_without_the_repair_one_lost_packet_holds_every_frame_back() -> None:
    """What aiortc 1.16 does alone: the jitter buffer waits for the packet (the freeze)."""
    receiver = Receiver()
    call = Call(receiver)
    call.send(100, lose=frozenset({21}))
    assert len(receiver.frames) == 10  # frames 0 to 9; frame 10 lost its second packet
    assert receiver.nacks == [[21]] and receiver.plis == 0  # asked once, never again


async def test_a_lost_retransmission_is_asked_for_again_and_frames_flow_in_order() -> None:
    receiver, call, repair = repaired_call(rtt_s=0.03)
    call.send(6, lose=frozenset({21}))  # frame 10's second packet, and its first retransmission
    await asyncio.sleep(0)
    assert receiver.nacks[0] == [21] and [21] in receiver.nacks[1:]
    assert len(receiver.frames) == 10
    receiver.rtp(21, 10, True, False)  # the second retransmission comes
    call.send(2)
    assert len(receiver.frames) >= 14 and receiver.plis == 0 and repair.given_up == 0


async def test_a_packet_that_never_comes_is_given_up_and_video_resumes_at_a_key_frame() -> None:
    receiver, call, repair = repaired_call(rtt_s=0.03)
    start = call.now
    call.send(12, lose=frozenset({21}))  # 0.4 s: past the deadline (0.3 s at this round trip)
    assert repair.given_up == 1 and receiver.plis == 1
    await asyncio.sleep(0)
    assert len([n for n in receiver.nacks if 21 in n]) >= 4  # asked for again meanwhile
    held = len(receiver.frames)
    assert held == 10  # frames after the loss refer to what was lost: none decoded
    call.send(3)
    assert len(receiver.frames) == held  # still waiting for a key frame
    call.send(5, key=call.frame)  # the key frame asked for
    assert receiver.frames[held].startswith(KEY)
    assert len(receiver.frames) == held + 4  # the key frame and what follows it
    assert call.now - start < 1.0
    assert 21 not in receiver._RTCRtpReceiver__nack_generator.missing  # no longer asked for


async def test_giving_up_goes_straight_to_a_key_frame_already_there() -> None:
    receiver, call, repair = repaired_call(rtt_s=0.03)
    call.send(14, lose=frozenset({21}), key=14)  # a key frame 4 frames after the loss
    assert repair.given_up == 1
    assert receiver.frames[10].startswith(KEY) and len(receiver.frames) >= 15


async def test_a_key_frame_that_does_not_come_is_asked_for_again_then_decoding_resumes() -> None:
    receiver, call, repair = repaired_call(rtt_s=None)
    call.send(45, lose=frozenset({21}))  # 1.5 s: given up, then no key frame
    assert repair.given_up == 1 and receiver.plis >= 2
    frames = len(receiver.frames)
    call.send(int(30 * LossRepair.KEYFRAME_WAIT))
    assert len(receiver.frames) > frames + 10  # decoded anyway after KEYFRAME_WAIT


async def test_a_fault_of_the_repair_leaves_aiortc_alone_and_frames_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver, call, repair = repaired_call(rtt_s=0.03)

    def broken(now: float) -> list[int]:
        raise RuntimeError("a fault of the repair")

    repair.plan.due = broken  # type: ignore[method-assign]
    call.send(10)
    assert repair.broken and "repair failed" in caplog.text
    assert len(receiver.frames) == 19  # every frame but the newest, which waits for the next


async def test_observing_only_changes_nothing() -> None:
    receiver = Receiver()
    call = Call(receiver)
    ReceiveRepair(receiver, act=False, clock=lambda: call.now)
    call.send(100, lose=frozenset({21}))
    assert len(receiver.frames) == 10 and receiver.nacks == [[21]] and receiver.plis == 0


async def test_repairs_are_made_once_per_video_receiver_and_follow_the_round_trip() -> None:
    class Transceiver:
        def __init__(self, kind: str) -> None:
            self.kind, self.receiver = kind, Receiver()

    video, audio = Transceiver("video"), Transceiver("audio")
    first = repair_receivers([video, audio], 0.08)
    again = repair_receivers([video, audio], None)
    assert len(first) == 1 and first == again and first[0].plan.rtt_s == 0.08
    counts = repair_counts([video, audio])
    assert counts is not None and counts["faults"] == 0 and counts["renacks"] == 0
    assert repair_counts([audio]) is None
