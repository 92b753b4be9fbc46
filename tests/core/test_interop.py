"""A standards-following WebRTC peer that is not Parley: one audio and one video section, no data
channel, candidates trickled in ``rtc.signal`` instead of inside the SDP.

The plain peer is a bare aiortc ``RTCPeerConnection`` driven by hand over the
signaling protocol; Parley's call engine answers it.
"""

from __future__ import annotations

import asyncio
import re

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from gui.core.call_machine import CallState
from gui.core.peer_channel import ChatUnavailable
from gui.media.analysis import VideoReceiver
from gui.media.pattern import PatternVideoTrack
from gui.media.tone import ToneAudioTrack
from tests.core.test_call_session import answer_next_call, friends, media, until
from tests.wire import new_call_id

CANDIDATE_LINE = re.compile(r"^a=candidate:(.*)$", re.MULTILINE)


def split_candidates(sdp: str) -> tuple[str, list[dict]]:
    """Take the candidates out of an SDP, as a trickling endpoint would send them."""
    candidates: list[dict] = []
    mline = -1
    mid = None
    kept = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            mline += 1
        if line.startswith("a=mid:"):
            mid = line.split(":", 1)[1]
        match = CANDIDATE_LINE.match(line)
        if match:
            candidates.append(
                {"candidate": "candidate:" + match.group(1), "sdpMid": mid, "sdpMLineIndex": mline}
            )
            continue
        if line == "a=end-of-candidates":
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


async def test_a_plain_peer_with_two_sections_and_trickled_candidates(server) -> None:
    plain_client, parley_client = await friends(server)  # alice is the plain peer
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tone, pattern = ToneAudioTrack(500), PatternVideoTrack(320, 240, fps=15)
    pc.addTrack(tone)
    pc.addTrack(pattern)
    received: list[VideoReceiver] = []

    @pc.on("track")
    def on_track(track) -> None:
        if track.kind == "video":
            receiver = VideoReceiver(track)
            receiver.start()
            received.append(receiver)

    answers: asyncio.Queue = asyncio.Queue()
    plain_client.on_event(lambda m: m["type"] == "rtc.signal" and answers.put_nowait(m))
    accepted = asyncio.Event()
    plain_client.on_event(lambda m: m["type"] == "call.accepted" and accepted.set())

    answering = asyncio.create_task(answer_next_call(parley_client, media(440)))
    call_id = new_call_id()
    await plain_client.request(
        "call.invite", to="bob", call_id=call_id, media={"audio": True, "video": True}
    )
    session = await answering
    await asyncio.wait_for(accepted.wait(), 5)

    await pc.setLocalDescription(await pc.createOffer())
    sdp, candidates = split_candidates(pc.localDescription.sdp)
    assert candidates, "aiortc gathered no candidate on loopback"
    assert "m=application" not in sdp and sdp.count("m=video") == 1
    await plain_client.request(
        "rtc.signal", call_id=call_id, description={"type": "offer", "sdp": sdp}
    )
    for candidate in candidates:
        await plain_client.request("rtc.signal", call_id=call_id, candidate=candidate)
    await plain_client.request(
        "rtc.signal",
        call_id=call_id,
        candidate={"candidate": "", "sdpMid": None, "sdpMLineIndex": None},
    )
    answer = await asyncio.wait_for(answers.get(), 10)
    await pc.setRemoteDescription(RTCSessionDescription(**answer["description"]))

    await until(lambda: session.state is CallState.CONNECTED)
    await until(lambda: "camera" in session.receivers and session.receivers["camera"].numbered > 10)
    await until(lambda: received and received[0].numbered > 10)
    assert not session.chat_available and not session.screen_available
    try:
        session.send_chat("hello?")
        raise AssertionError("chat should be unavailable without a data channel")
    except ChatUnavailable:
        pass
    assert session.receivers["camera"].width == 320

    await plain_client.request("call.hangup", call_id=call_id)
    await asyncio.wait_for(session.wait_ended(), 10)
    assert session.machine.reason == "hangup"
    for receiver in received:
        await receiver.stop()
    await pc.close()
    tone.stop()
    pattern.stop()
    await plain_client.close()
    await parley_client.close()
