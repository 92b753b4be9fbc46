"""Screen sharing in real calls: two SignalingClient + CallSession ends through a real server.

The sharer captures the Xvfb screen, on which a window shows the test pattern; the other
end's screen-slot receiver must show that pattern at the window's place. Nothing is mocked:
Qt's X11 capture, VP8 both ways, the data channel's media state.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import pytest

from gui.core.call_machine import CallState
from gui.core.call_session import CallSession, ScreenShareUnavailable
from gui.core.peer_channel import PeerMediaState
from gui.devices.screen import ScreenTrack, active_captures
from gui.media.analysis import VideoReceiver
from tests.core.test_call_session import answer_next_call, client_for, friends, media
from tests.screen.helpers import PatternWindow, rss_mb, shows_pattern, thread_count, until
from tests.waiting import settled

pytestmark = pytest.mark.usefixtures("qt_app")


@contextlib.asynccontextmanager
async def connected(server) -> AsyncIterator[tuple[CallSession, CallSession]]:
    """alice calls bob, bob answers; both connected with the data channel open.

    A context manager, not a fixture: pytest-qt runs Qt's event loop between a fixture's
    set-up and the test, outside asyncio, and a live call must not be stepped there.
    """
    alice, bob = await friends(server)
    sessions: list[CallSession] = []
    try:
        answering = asyncio.create_task(answer_next_call(bob, media(880)))
        sessions.append(CallSession.outgoing(alice, "bob", media(440)))
        sessions.append(await answering)
        await until(
            lambda: all(
                s.state is CallState.CONNECTED and s.channel.is_open and "camera" in s.receivers
                for s in sessions
            ),
            15,
            "call connected",
        )
        yield sessions[0], sessions[1]
    finally:
        for session in sessions:
            if not session.machine.ended:
                session.hang_up()
        for session in sessions:
            await asyncio.wait_for(session.wait_ended(), 10)
        await alice.close()
        await bob.close()
        await asyncio.sleep(0.2)  # the server's side of both connections finishes here
    assert active_captures() == []


def screen_of(session: CallSession) -> VideoReceiver:
    receiver = session.receivers["screen"]
    assert isinstance(receiver, VideoReceiver)
    return receiver


def camera_of(session: CallSession) -> VideoReceiver:
    receiver = session.receivers["camera"]
    assert isinstance(receiver, VideoReceiver)
    return receiver


async def test_the_peer_sees_the_window_where_it_is_and_the_camera_keeps_flowing(
    server, pattern: PatternWindow
) -> None:
    async with connected(server) as (caller, callee):
        told: list[PeerMediaState] = []
        callee.on("peer_media", told.append)
        local: list[PeerMediaState] = []
        caller.on("local_media", local.append)
        screen, camera = screen_of(callee), camera_of(callee)
        assert screen.frames == 0  # nothing on the screen slot before the share

        track = ScreenTrack()
        caller.start_screen(track)
        assert caller.sharing_screen and local[-1].screen
        await until(lambda: told and told[-1].screen, 5, "peer told of the share")
        await shows_pattern(screen, pattern)
        assert (screen.width, screen.height) == (1280, 720)

        # Both slots flow (about 15 frames/s each: the rate is a figure of bench/screen.py, and
        # a loaded machine can take seconds for five of them).
        shared, filmed = screen.frames, camera.frames
        await until(lambda: screen.frames - shared >= 5, 20, "five more frames of the screen")
        await until(lambda: camera.frames - filmed >= 5, 20, "the camera never stopped")
        assert told[-1] == PeerMediaState(audio=True, video=True, screen=True)

        caller.stop_screen()
        assert not caller.sharing_screen and not local[-1].screen
        assert track.readyState == "ended" and active_captures() == []
        await until(lambda: not told[-1].screen, 5, "peer told the share ended")
        # The notice (over the data channel) can overtake pictures taken before it, which
        # threads encode and decode (late, on a loaded machine): once those are in, the screen
        # slot stays still while the camera goes on.
        stopped = await settled(lambda: screen.frames, what="the screen's last pictures")
        filmed = camera.frames
        await until(lambda: camera.frames - filmed >= 3, 20, "the camera going on")
        assert screen.frames <= stopped + 1


async def test_ten_shares_in_one_call(server, pattern: PatternWindow) -> None:
    async with connected(server) as (caller, callee):
        screen = screen_of(callee)
        rss: list[float] = []
        threads: list[int] = []
        for round_ in range(10):
            track = ScreenTrack()
            caller.start_screen(track)
            before = screen.frames

            def arrived(before: int = before) -> bool:
                return screen.frames >= before + 4

            await until(arrived, 8, f"share {round_ + 1}")
            caller.stop_screen()
            assert track.readyState == "ended" and not track.capture_active
            assert active_captures() == []
            del track
            gc.collect()
            await asyncio.sleep(0.1)
            gc.collect()
            rss.append(rss_mb())
            threads.append(thread_count())
        print(f"RSS after each share: {[round(r) for r in rss]} MB; threads {threads}")
        assert rss[-1] - rss[0] < 30
        assert threads[-1] <= threads[1]  # no capture thread left behind
        # The screen slot's sender survived every stop: one more share still arrives.
        caller.start_screen(ScreenTrack())
        before = screen.frames
        await until(lambda: screen.frames >= before + 4, 8, "share after ten")
        await shows_pattern(screen, pattern)
        assert caller.state is CallState.CONNECTED and callee.state is CallState.CONNECTED


async def test_sharing_with_the_camera_off(server, pattern: PatternWindow) -> None:
    async with connected(server) as (caller, callee):
        told: list[PeerMediaState] = []
        callee.on("peer_media", told.append)
        caller.set_video_enabled(False)
        caller.start_screen(ScreenTrack())
        await until(lambda: told and told[-1] == PeerMediaState(True, False, True), 5, "state")
        await shows_pattern(screen_of(callee), pattern)
        camera = camera_of(callee)
        # Camera pictures taken before the camera went off may still be on their way (late, on
        # a loaded machine): once those are in, the camera slot stays still while the screen
        # goes on.
        filmed = await settled(lambda: camera.frames, what="the camera's last pictures")
        shared = screen_of(callee).frames
        await until(lambda: screen_of(callee).frames - shared >= 3, 20, "the screen going on")
        assert camera.frames <= filmed + 1


async def test_the_callee_shares(server, pattern: PatternWindow) -> None:
    async with connected(server) as (caller, callee):
        told: list[PeerMediaState] = []
        caller.on("peer_media", told.append)
        callee.start_screen(ScreenTrack())
        await until(lambda: told and told[-1].screen, 5, "caller told of the share")
        await shows_pattern(screen_of(caller), pattern)
        assert screen_of(callee).frames == 0


async def test_the_peer_hangs_up_while_sharing(server, pattern: PatternWindow) -> None:
    async with connected(server) as (caller, callee):
        track = ScreenTrack()
        caller.start_screen(track)
        await shows_pattern(screen_of(callee), pattern)
        callee.hang_up()
        await asyncio.wait_for(caller.wait_ended(), 10)
        assert caller.machine.reason == "hangup"
        assert track.readyState == "ended" and not track.capture_active
        assert active_captures() == []
        spare = ScreenTrack(start=False)
        with pytest.raises(ScreenShareUnavailable, match="ended"):
            caller.start_screen(spare)
        spare.stop()


async def test_sharing_needs_the_screen_slot(server) -> None:
    alice, bob = await friends(server)
    incoming: asyncio.Queue = asyncio.Queue()

    def on_event(message: dict) -> None:
        if message["type"] == "call.incoming":
            incoming.put_nowait(message)

    bob.on_event(on_event)
    caller = CallSession.outgoing(alice, "bob", media(440))
    callee = CallSession.incoming(bob, await asyncio.wait_for(incoming.get(), 5), media(440))
    track = ScreenTrack(start=False)
    assert not callee.screen_available  # no offer applied yet: no slots
    with pytest.raises(ScreenShareUnavailable, match="cannot receive a shared screen"):
        callee.start_screen(track)
    assert track.readyState == "live"  # still the caller's to use or stop
    track.stop()
    callee.decline()
    await asyncio.wait_for(caller.wait_ended(), 10)
    await asyncio.wait_for(callee.wait_ended(), 10)
    await alice.close()
    await bob.close()
    await asyncio.sleep(0.2)


async def test_the_echo_test_returns_the_shared_screen(server, pattern: PatternWindow) -> None:
    client = await client_for(server, "erin")
    session = CallSession.outgoing(client, "echo", media(660))
    await until(
        lambda: session.state is CallState.CONNECTED and session.channel.is_open, 15, "echo"
    )
    session.start_screen(ScreenTrack())
    await until(lambda: "screen" in session.receivers, 5, "screen slot")
    await shows_pattern(screen_of(session), pattern, timeout=10)
    session.hang_up()
    await asyncio.wait_for(session.wait_ended(), 10)
    await client.close()
    await asyncio.sleep(0.2)
    assert active_captures() == []
