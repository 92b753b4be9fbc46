"""A peer that lies in its video: garbage payloads, key frames claiming 16383x16383, a new size
on every key frame. Parley's engine answers its call over a real server; memory, CPU and the
log stay bounded and the call goes on.

The liar is a bare aiortc connection whose track hands the sender ready-made "encoded" VP8
frames (``av.Packet``), so aiortc sends them as they are. Before the guard
(``gui/media/decode_guard.py``) the huge key frames alone took 885 MB and a whole core.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import os
import resource
import struct
import time

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from gui.core.call_machine import CallState
from gui.core.call_session import LocalMedia
from gui.media import decode_guard
from signaling.server import SignalingServer
from tests.core.test_call_session import answer_next_call, friends
from tests.waiting import until
from tests.wire import new_call_id

pytestmark = pytest.mark.slow

#: What the lies may add to the process's peak resident size (885 MB without the guard).
PEAK_GROWTH_BYTES = 200 * 1024 * 1024
#: aiortc's "failed to decode" lines for about 200 bad frames: 1st, 10th and 100th only.
DECODE_WARNINGS = 3


def vp8_key_frame(width: int, height: int) -> bytes:
    """A VP8 key frame header (RFC 6386 9.1) announcing ``width`` x ``height``, then noise."""
    body = os.urandom(200)
    tag = (1 << 4) | (len(body) << 5)  # key frame, version 0, shown, first partition size
    return struct.pack("<I", tag)[:3] + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + body


class LyingTrack(MediaStreamTrack):
    """60 "encoded" frames a second: a third noise, a third huge, a third in ever new sizes."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def recv(self) -> av.Packet:
        await asyncio.sleep(1 / 60)
        self.count += 1
        lie = self.count % 3
        if lie == 0:
            data = os.urandom(1 + self.count % 1200)
        elif lie == 1:
            data = vp8_key_frame(16383, 16383)
        else:
            data = vp8_key_frame(16 + 2 * (self.count % 500), 16 + 2 * (self.count % 300))
        packet = av.Packet(data)
        packet.pts = self.count * 1500
        packet.time_base = fractions.Fraction(1, 90000)
        return packet


async def test_a_peer_lying_in_its_video_costs_little(
    server: SignalingServer, caplog: pytest.LogCaptureFixture
) -> None:
    liar_client, parley_client = await friends(server)  # alice lies
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = LyingTrack()
    pc.addTransceiver(track, direction="sendonly")
    answers: asyncio.Queue = asyncio.Queue()
    liar_client.on_event(lambda m: answers.put_nowait(m) if m["type"] == "rtc.signal" else None)
    answering = asyncio.create_task(answer_next_call(parley_client, LocalMedia()))
    call_id = new_call_id()
    await liar_client.request(
        "call.invite", to="bob", call_id=call_id, media={"audio": False, "video": True}
    )
    victim = await answering
    await until(lambda: victim.state is CallState.CONNECTING, 10, "the call answered")
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"type": "offer", "sdp": pc.localDescription.sdp}
    await liar_client.request("rtc.signal", call_id=call_id, description=offer)
    answer = await asyncio.wait_for(answers.get(), 10)
    await pc.setRemoteDescription(RTCSessionDescription(**answer["description"]))

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    dropped_before = decode_guard.dropped.copy()
    cpu_before, began = time.process_time(), time.monotonic()
    with caplog.at_level(logging.WARNING, logger="aiortc.rtcrtpreceiver"):
        await until(lambda: victim.state is CallState.CONNECTED, 10, "connected")
        sent = track.count
        await until(lambda: track.count > sent + 200, 20, "200 lies sent")
        await asyncio.sleep(0.5)  # the last ones decoded (or refused)
    cpu = (time.process_time() - cpu_before) / (time.monotonic() - began)
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    dropped = decode_guard.dropped - dropped_before
    failures = [r for r in caplog.records if "failed to decode" in r.getMessage()]

    assert dropped["too_large"] >= 50 and dropped["size_churn"] >= 50, dropped
    assert peak_growth < PEAK_GROWTH_BYTES, peak_growth
    assert cpu < 1.0, cpu  # both ends together, on a shared machine: well below the 2 cores
    assert len(failures) <= DECODE_WARNINGS, len(failures)
    receiver = victim.receivers["camera"]
    assert receiver.running and receiver.error is None
    assert victim.state is CallState.CONNECTED

    await liar_client.request("call.hangup", call_id=call_id)
    await asyncio.wait_for(victim.wait_ended(), 10)
    assert victim.machine.reason == "hangup"
    await pc.close()
    await liar_client.close()
    await parley_client.close()


def test_the_size_guard_alone() -> None:
    now = [0.0]
    guard = decode_guard.SizeGuard(clock=lambda: now[0])
    assert decode_guard.vp8_key_frame_size(vp8_key_frame(640, 480)) == (640, 480)
    assert decode_guard.vp8_key_frame_size(b"\x01" + bytes(20)) is None  # a delta frame
    assert guard.admit((640, 480)) and guard.admit(None) and guard.admit((640, 480))
    assert not guard.admit((16383, 16383)) and not guard.admit((3842, 2160))
    assert guard.admit((3840, 2160))
    sizes = [(16 + 2 * i, 16) for i in range(decode_guard.SIZE_CHANGES)]
    assert [guard.admit(size) for size in sizes] == [True] * (decode_guard.SIZE_CHANGES - 1) + [
        False
    ]
    now[0] += decode_guard.SIZE_WINDOW_S + 0.1  # the window has passed
    assert guard.admit((320, 240)) and guard.size == (320, 240)
