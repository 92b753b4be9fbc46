"""Screen sharing towards WebRTC peers that are not Parley: bare aiortc, and Chromium.

The peer answers Parley's offer (two video sections, audio and a data channel,
BUNDLE) the way a standards-following endpoint does: it keeps its library's
default bundle policy (aiortc's is "balanced", like browsers'), adds the tracks it
has, and answers ``recvonly`` every section it added no track to. Parley must
still share its screen into the second video section, and the peer must decode it
there, beside the camera.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from gui.core.call_machine import CallState
from gui.core.call_session import CallSession, ScreenShareUnavailable
from gui.media.analysis import VideoReceiver
from gui.media.pattern import PatternVideoTrack
from gui.media.tone import ToneAudioTrack
from tests.chromium import BrowserPeer, Decoded, browser_peer, chromium_missing
from tests.core.test_call_session import friends, media, until


class AiortcPeer:
    """A bare aiortc peer connection with aiortc's defaults, answering by hand."""

    def __init__(self, video_tracks: int, refuse_screen: bool = False) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video_tracks = video_tracks
        self.refuse_screen = refuse_screen
        self.tracks: list[Any] = []
        self.receivers: dict[str, VideoReceiver] = {}
        self.pc.on("track", self._on_track)

    def _on_track(self, track) -> None:
        if track.kind == "video":
            mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
            self.receivers[mid] = VideoReceiver(track, decode_numbers=False)
            self.receivers[mid].start()

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self.tracks = [ToneAudioTrack(500)] + [
            PatternVideoTrack(320, 240, fps=15) for _ in range(self.video_tracks)
        ]
        for track in self.tracks:
            self.pc.addTrack(track)
        if self.refuse_screen:
            [t for t in self.pc.getTransceivers() if t.kind == "video"][1].direction = "inactive"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def add_candidate(self, candidate: dict) -> None:
        parsed = candidate_from_sdp(candidate["candidate"].removeprefix("candidate:"))
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(parsed)

    async def video_mids(self) -> list[str]:
        return [t.mid for t in self.pc.getTransceivers() if t.kind == "video"]

    async def received(self) -> dict[str, Decoded]:
        return {
            mid: Decoded(r.frames, r.width or 0, r.height or 0) for mid, r in self.receivers.items()
        }

    async def close(self) -> None:
        for receiver in self.receivers.values():
            await receiver.stop()
        await self.pc.close()
        for track in self.tracks:
            track.stop()


class Answering:
    """Connects a hand-driven peer to the signaling server as ``alice``: accept, then answer."""

    def __init__(self, client, peer: AiortcPeer | BrowserPeer) -> None:
        self.client = client
        self.peer = peer
        self.answer_sdp: str | None = None
        self.answered = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._unsubscribe = client.on_event(self._on_event)

    def _on_event(self, message: dict) -> None:
        if message["type"] == "call.incoming":
            self._spawn(self.client.request("call.accept", call_id=message["call_id"]))
        elif message["type"] == "rtc.signal" and "description" in message:
            self._spawn(self._answer(message["call_id"], message["description"]["sdp"]))
        elif message["type"] == "rtc.signal" and (message.get("candidate") or {}).get("candidate"):
            self._spawn(self.peer.add_candidate(message["candidate"]))

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, call_id: str, offer_sdp: str) -> None:
        self.answer_sdp = await self.peer.answer(offer_sdp)
        await self.client.request(
            "rtc.signal", call_id=call_id, description={"type": "answer", "sdp": self.answer_sdp}
        )
        self.answered.set()

    def direction_of(self, mid: str) -> str:
        """The direction the peer answered for section ``mid``."""
        assert self.answer_sdp is not None
        section = self.answer_sdp.split(f"a=mid:{mid}\r\n")[0].rsplit("m=", 1)[1]
        section += self.answer_sdp.split(f"a=mid:{mid}\r\n")[1].split("m=", 1)[0]
        for direction in ("sendrecv", "sendonly", "recvonly", "inactive"):
            if f"a={direction}" in section:
                return direction
        return "sendrecv"

    async def close(self) -> None:
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@contextlib.asynccontextmanager
async def call_to(server, peer) -> AsyncIterator[tuple[CallSession, Answering]]:
    """Parley (bob) calls the hand-driven peer (alice); hangs up and cleans up after."""
    plain_client, parley_client = await friends(server)
    answering = Answering(plain_client, peer)
    caller = CallSession.outgoing(parley_client, "alice", media(440))
    try:
        await asyncio.wait_for(answering.answered.wait(), 15)
        await until(lambda: caller.state is CallState.CONNECTED, 15)
        yield caller, answering
    finally:
        caller.hang_up()
        await asyncio.wait_for(caller.wait_ended(), 10)
        await answering.close()
        await peer.close()
        await plain_client.close()
        await parley_client.close()


async def share_and_see_it(caller: CallSession, answering: Answering) -> None:
    """Share a 640x360 pattern; the peer must decode it on the second video section."""
    camera_mid, screen_mid = (await answering.peer.video_mids())[:2]
    assert caller.screen_available, "a peer that can receive the screen was refused"
    caller.start_screen(PatternVideoTrack(640, 360, fps=10))
    async with asyncio.timeout(15):
        while True:
            got = await answering.peer.received()
            screen, camera = got.get(screen_mid), got.get(camera_mid)
            if screen and screen.frames > 5 and camera and camera.frames > 5:
                break
            await asyncio.sleep(0.2)
    assert (screen.width, screen.height) == (640, 360)
    assert (camera.width, camera.height) == (320, 240), "the share displaced the camera"


@pytest.mark.parametrize(
    ("video_tracks", "answered"), [(1, "recvonly"), (2, "sendrecv")], ids=["one-camera", "two"]
)
async def test_a_plain_aiortc_peer_receives_the_shared_screen(
    server, video_tracks, answered
) -> None:
    async with call_to(server, AiortcPeer(video_tracks)) as (caller, answering):
        screen_mid = (await answering.peer.video_mids())[1]
        assert answering.direction_of(screen_mid) == answered
        await share_and_see_it(caller, answering)


async def test_a_peer_that_cannot_receive_a_screen_is_refused_in_words(server) -> None:
    """The screen section answered ``inactive``: sharing is refused with a reason, not sent."""
    async with call_to(server, AiortcPeer(1, refuse_screen=True)) as (caller, _):
        assert not caller.screen_available
        share = PatternVideoTrack(640, 360, fps=10)
        with pytest.raises(ScreenShareUnavailable, match="cannot receive a shared screen"):
            caller.start_screen(share)
        share.stop()


@pytest.mark.slow
async def test_chromium_receives_the_shared_screen_beside_the_camera(server) -> None:
    missing = chromium_missing()
    if missing:
        pytest.fail(missing)
    async with browser_peer() as peer:
        await peer.start(video_tracks=1)
        async with call_to(server, peer) as (caller, answering):
            screen_mid = (await peer.video_mids())[1]
            assert answering.direction_of(screen_mid) == "recvonly"
            await share_and_see_it(caller, answering)
            assert caller.receivers["camera"].frames > 0, "the browser's camera did not arrive"
