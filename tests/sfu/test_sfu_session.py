"""Meetings through Janus in one process: meeting sessions on their own signaling clients,
a real server with ``sfu`` settings, the session's real Janus, real aiortc media.

The same helpers as the mesh's in-process tests (``tests/core/test_meeting_session.py``):
only the server differs, and what each end holds (a publisher and subscriptions instead
of links).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gui.core.meeting_machine import MeetingState
from gui.core.meeting_session import MeetingSession
from gui.media.analysis import VideoReceiver
from signaling.server import SignalingServer
from signaling.server.config import SfuSettings
from signaling.server.sfu.pool import SfuAddress
from tests import waiting
from tests.conftest import ServerFactory
from tests.core.test_meeting_session import (
    Meeting,
    befriend,
    everyone_hears_everyone,
    hears_and_sees,
    invitation,
    until,
)
from tests.sfu.conftest import SfuSetup

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(make_server: ServerFactory, sfu: SfuSetup) -> SignalingServer:
    """A server whose meetings go through the session's Janus."""
    settings = SfuSettings((SfuAddress.parse(sfu.janus.address),), sfu.secret)
    return await make_server(echo_bot=False, sfu=settings)


@pytest.fixture
async def meeting(server: SignalingServer) -> AsyncIterator[Meeting]:
    """This test's clients and sessions, closed at the end."""
    meeting = Meeting(server)
    yield meeting
    await meeting.close()


async def test_three_through_janus_see_and_hear_each_other_then_one_leaves(
    meeting: Meeting,
) -> None:
    ada, bob, cyd = [await meeting.client(n) for n in ("ada", "bob", "cyd")]
    await befriend(ada, bob, cyd)
    invitations = {"bob": invitation(bob), "cyd": invitation(cyd)}
    host = meeting.create(["bob", "cyd"])
    sessions = {"ada": host}
    for name in ("bob", "cyd"):
        sessions[name] = await meeting.accept(name, invitations[name])
    await until(everyone_hears_everyone(sessions), 60)
    for me, s in sessions.items():
        assert s.machine.topology == "sfu" and not s.links  # no peer connection to anyone
        assert s.sfu is not None and s.sfu.state == "connected"
        assert set(s.sfu.subscriptions) == set(sessions) - {me}

    assert host.sfu is not None and host.sfu.chooser.shown() == {"bob", "cyd"}  # 2 < 9
    stayed = (host, sessions["bob"])
    sessions["cyd"].leave()
    await asyncio.wait_for(sessions["cyd"].wait_ended(), 10)
    await until(lambda: all("cyd" not in s.sfu.subscriptions for s in stayed if s.sfu))
    assert all(link.closed for link in host.history["cyd"])
    frames = host.receivers("bob")["camera"].frames
    await until(lambda: host.receivers("bob")["camera"].frames > frames + 5)  # still flowing

    host.end()
    for s in (host, sessions["bob"]):
        await asyncio.wait_for(s.wait_ended(), 10)
    assert all(link.closed for s in sessions.values() for ls in s.history.values() for link in ls)
    assert all(s.sfu is not None and s.sfu.publisher is None for s in sessions.values())


async def test_a_participant_whose_signaling_drops_publishes_and_subscribes_again(
    meeting: Meeting,
) -> None:
    async with meeting.signaling_dropped(60) as (host, guest, left):  # bob publishes again
        assert guest.state is MeetingState.JOINED and not left
        assert host.history["bob"][0].closed and guest.history["ada"][0].closed
        host.end()  # while bob's way to the server is still open
        for session in (host, guest):
            await asyncio.wait_for(session.wait_ended(), 20)


async def test_at_most_n_videos_follow_the_most_recent_speaker(meeting: Meeting) -> None:
    ada, bob, cyd = [await meeting.client(n) for n in ("ada", "bob", "cyd")]
    await befriend(ada, bob, cyd)
    invitations = {"bob": invitation(bob), "cyd": invitation(cyd)}
    host = meeting.create(["bob", "cyd"])
    host._media_server().max_videos = 1  # this end receives one video at a time
    bob_session = await meeting.accept("bob", invitations["bob"])
    cyd_session = await meeting.accept("cyd", invitations["cyd"])
    cyd_session.set_audio_enabled(False)  # cyd says nothing yet
    await until(lambda: hears_and_sees(host, "bob"), 60)
    # Bob is heard, so his video comes; cyd's is paused at Janus.
    await until(lambda: host.sfu is not None and "cyd" in host.sfu.subscriptions, 20)
    assert host.sfu is not None
    await until(lambda: not host.sfu.subscriptions["cyd"].video_on, 20)
    await _only_video_from(host, "bob", "cyd")

    # Cyd speaks and bob falls silent: the videos swap.
    bob_session.set_audio_enabled(False)
    cyd_session.set_audio_enabled(True)
    await until(lambda: host.sfu.chooser.shown() == {"cyd"}, 20)
    await until(lambda: host.sfu.subscriptions["cyd"].video_on, 20)
    await _only_video_from(host, "cyd", "bob")


async def _only_video_from(session: MeetingSession, shown: str, paused: str) -> None:
    """``shown``'s video keeps arriving and ``paused``'s, once what was on its way has come
    in (on a loaded machine, for longer than a fixed wait), does not, for two seconds at
    least. A frame rate is no figure of a test: 10 more of ``shown``'s within 20 s."""
    await waiting.settled(lambda: _frames(session, paused), what=f"{paused}'s video to stop")
    before = _frames(session, shown), _frames(session, paused)
    await asyncio.sleep(2.0)
    await waiting.until(
        lambda: _frames(session, shown) - before[0] >= 10, 20, f"{shown}'s video to arrive"
    )
    assert _frames(session, paused) - before[1] <= 2, f"{paused}'s video still arrives"


def _frames(session: MeetingSession, username: str) -> int:
    video = session.receivers(username).get("camera")
    return video.frames if isinstance(video, VideoReceiver) else 0
