"""Real calls: two call sessions, each with its own signaling client, through a real server.

aiortc peer connections on loopback carry the encoded test pattern (VP8) and
tone (Opus) both ways; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from gui.core.call_machine import CallState
from gui.core.call_session import CallSession, LocalMedia
from gui.core.signaling_client import SignalingClient
from gui.media.pattern import PatternVideoTrack
from gui.media.tone import ToneAudioTrack
from tests.waiting import settled


async def client_for(server, name: str) -> SignalingClient:
    client = SignalingClient(server.url)
    await client.connect()
    await client.register(name, "correct horse")
    return client


async def friends(server) -> tuple[SignalingClient, SignalingClient]:
    alice = await client_for(server, "alice")
    bob = await client_for(server, "bob")
    await alice.request("contacts.request", username="bob")
    await bob.request("contacts.accept", username="alice")
    return alice, bob


def media(hz: float) -> LocalMedia:
    return LocalMedia(audio=ToneAudioTrack(hz), camera=PatternVideoTrack(320, 240, fps=15))


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def answer_next_call(client: SignalingClient, local: LocalMedia) -> CallSession:
    incoming: asyncio.Future = asyncio.get_running_loop().create_future()
    unsubscribe = client.on_event(
        lambda m: m["type"] == "call.incoming" and not incoming.done() and incoming.set_result(m)
    )
    event = await asyncio.wait_for(incoming, 10)
    unsubscribe()
    session = CallSession.incoming(client, event, local)
    session.accept()
    return session


@pytest.mark.slow
async def test_a_real_call_both_ways_with_chat_and_matching_words(server) -> None:
    threads_before = set(threading.enumerate())
    alice, bob = await friends(server)
    answering = asyncio.create_task(answer_next_call(bob, media(880)))
    caller = CallSession.outgoing(alice, "bob", media(440))
    states: list[CallState] = []
    caller.on("state", lambda state, reason: states.append(state))
    callee = await answering
    chats: list = []
    callee.on("chat", chats.append)

    await until(lambda: caller.state is CallState.CONNECTED and callee.state is CallState.CONNECTED)
    await until(
        lambda: all(
            s.receivers.get("camera") and s.receivers["camera"].frames > 20
            for s in (caller, callee)
        )
    )
    await asyncio.sleep(1.5)
    for session, heard in ((caller, 880), (callee, 440)):
        video = session.receivers["camera"]
        assert (video.width, video.height) == (320, 240)
        assert video.decreases == 0 and video.decode_rate > 0.9
        audio = session.receivers["audio"]
        assert audio.received_ms > 1000
        assert abs(audio.peak_hz() - heard) < 5
    assert caller.sas is not None and caller.sas == callee.sas
    assert caller.chat_available and caller.screen_available and callee.screen_available

    sent = caller.send_chat("hello Bob")
    await until(lambda: chats and not caller.channel.undelivered)
    assert chats[0].text == "hello Bob" and chats[0].id == sent.id

    caller.hang_up()
    await asyncio.wait_for(caller.wait_ended(), 10)
    await asyncio.wait_for(callee.wait_ended(), 10)
    assert caller.machine.reason == callee.machine.reason == "hangup"
    assert states[0] is CallState.OUTGOING_RINGING and states[-1] is CallState.ENDED
    await alice.close()
    await bob.close()
    await asyncio.sleep(0.2)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []
    # Only pool threads remain: the loop's default executor (aiortc encodes there; it is shut
    # down with the loop) and the server's store and hashing pools (closed by server.stop()).
    extra = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert not [t for t in extra if not t.name.startswith(("parley-", "asyncio_"))]


async def test_mute_and_camera_off_reach_the_peer(server) -> None:
    alice, bob = await friends(server)
    answering = asyncio.create_task(answer_next_call(bob, media(440)))
    caller = CallSession.outgoing(alice, "bob", media(440))
    callee = await answering
    await until(
        lambda: (
            caller.state is CallState.CONNECTED and caller.chat_available and caller.channel.is_open
        )
    )
    seen: list = []
    callee.on("peer_media", seen.append)
    caller.set_audio_enabled(False)
    caller.set_video_enabled(False)
    await until(lambda: len(seen) >= 2)
    assert (seen[-1].audio, seen[-1].video) == (False, False)
    # The notice (over the data channel) can overtake pictures taken before it, which threads
    # encode and decode (on a loaded machine, late): once those are in, nothing more comes.
    camera = callee.receivers["camera"]
    frames = await settled(lambda: camera.frames, what="the pictures taken before")
    await asyncio.sleep(0.6)
    assert callee.receivers["camera"].frames <= frames + 2  # nothing more on the camera slot
    caller.set_video_enabled(True)
    await until(lambda: callee.receivers["camera"].frames > frames + 5)
    callee.hang_up()
    await asyncio.wait_for(caller.wait_ended(), 10)
    await asyncio.wait_for(callee.wait_ended(), 10)
    await alice.close()
    await bob.close()


async def test_decline_and_busy_end_the_session(server) -> None:
    alice, bob = await friends(server)
    incoming: asyncio.Queue = asyncio.Queue()
    bob.on_event(lambda m: m["type"] == "call.incoming" and incoming.put_nowait(m))
    caller = CallSession.outgoing(alice, "bob", media(440))
    callee = CallSession.incoming(bob, await asyncio.wait_for(incoming.get(), 5), media(440))
    callee.decline()
    await asyncio.wait_for(caller.wait_ended(), 10)
    assert caller.machine.reason == "declined"
    await asyncio.wait_for(callee.wait_ended(), 10)
    refused = CallSession.outgoing(alice, "nobody", media(440))
    await asyncio.wait_for(refused.wait_ended(), 10)
    assert refused.machine.reason == "not_found"
    await alice.close()
    await bob.close()


async def test_echo_answers_and_sends_the_call_back(server) -> None:
    client = await client_for(server, "erin")
    chats: list = []
    session = CallSession.outgoing(client, "echo", media(660))
    session.on("chat", chats.append)
    await until(lambda: session.state is CallState.CONNECTED and session.channel.is_open)
    session.send_chat("testing")
    await until(lambda: "camera" in session.receivers)
    video = session.receivers["camera"]
    await until(lambda: video.numbered > 30)
    assert (video.width, video.height) == (320, 240) and video.decreases == 0
    audio = session.receivers["audio"]
    # Silence first (the echo's 1.5 s delay), then the tone; 15 s is a hang bound.
    await until(lambda: audio.onset_at is not None, timeout=15)
    await asyncio.sleep(1.0)
    assert abs(audio.peak_hz() - 660) < 5
    assert audio.onset_at - session.connected_at > 1.2  # delayed by about 1.5 s
    await until(lambda: chats)
    assert chats[0].text == "testing"
    session.hang_up()
    await asyncio.wait_for(session.wait_ended(), 10)
    await client.close()


async def test_switching_the_camera_mid_call_keeps_video_flowing(server) -> None:
    """A camera stopped while the sender waits on it must not end the sender (aiortc)."""
    alice, bob = await friends(server)
    answering = asyncio.create_task(answer_next_call(bob, media(440)))
    slow = LocalMedia(audio=ToneAudioTrack(440), camera=PatternVideoTrack(320, 240, fps=4))
    caller = CallSession.outgoing(alice, "bob", slow)
    callee = await answering
    await until(lambda: "camera" in callee.receivers and callee.receivers["camera"].frames > 2)
    for _ in range(3):  # each switch lands while the sender waits ~250 ms for the slow camera
        caller.replace_camera(PatternVideoTrack(320, 240, fps=4))
        before = callee.receivers["camera"].frames
        await until(lambda before=before: callee.receivers["camera"].frames > before + 2)
    caller.replace_camera(None)  # the camera was unplugged: camera off, the call goes on
    assert not caller.video_enabled and caller.state is CallState.CONNECTED
    caller.replace_camera(PatternVideoTrack(320, 240, fps=15))
    caller.set_video_enabled(True)
    before = callee.receivers["camera"].frames
    await until(lambda: callee.receivers["camera"].frames > before + 10)
    caller.hang_up()
    await asyncio.wait_for(callee.wait_ended(), 10)
    await alice.close()
    await bob.close()
