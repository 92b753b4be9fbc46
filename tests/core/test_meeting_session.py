"""Real mesh meetings in one process: meeting sessions, each with its own signaling client,
through a real server, over real aiortc peer connections on loopback (VP8 and Opus)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from gui.core.backoff import Backoff
from gui.core.meeting_machine import LinkState, MeetingState
from gui.core.meeting_session import MeetingSession
from gui.core.peer_link import LocalMedia
from gui.core.signaling_client import SignalingClient
from gui.media.analysis import AudioReceiver, VideoReceiver
from gui.media.pattern import PatternVideoTrack
from gui.media.tone import ToneAudioTrack
from tests.tcp_proxy import TcpProxy
from tests.waiting import settled

pytestmark = pytest.mark.slow

PITCH_TOLERANCE_HZ = 5.0
#: Every test user's tone: whoever hears it knows who it came from.
TONES = {"ada": 440.0, "bob": 550.0, "cyd": 660.0}
#: The bound on links carrying media (a broken pipeline, not a slow run): a link that has not
#: connected within the product's deadline (``CallOptions.connect_timeout_s``, 30 s) or went
#: silent is offered again, and that must fit. Three in a mesh took 59.7 s at load 25, every
#: pair on its second link; a rejoin's 20 s and a mesh's 40 s ran out there.
LINKED_S = 90.0
#: The bound on a session's leaving, every link closed (a hang, not a slow run): at load 12-22
#: three sessions in one process took 10-12.4 s from leaving to their last link closed (one
#: aiortc ``RTCPeerConnection.close()`` 5.5 s, one ``PeerLink.close()`` 7.8 s), and the
#: teardown's 10 s ran out in 3 of 10 runs of tests/core/test_meeting_chat_history.py.
LEFT_S = 30.0


class Meeting:
    """This test's clients and sessions, all closed at the end."""

    def __init__(self, server) -> None:
        self.server = server
        self.clients: dict[str, SignalingClient] = {}
        self.sessions: list[MeetingSession] = []
        #: Ways to the server that clients were given; they outlive the sessions (see close).
        self.proxies: list[TcpProxy] = []

    async def client(self, name: str, url: str | None = None) -> SignalingClient:
        client = SignalingClient(url or self.server.url, backoff=Backoff(initial=0.05, maximum=0.2))
        await client.connect()
        await client.register(name, "correct horse")
        self.clients[name] = client
        return client

    def create(self, invite: list[str]) -> MeetingSession:
        session = MeetingSession.create(self.clients["ada"], "ada", media("ada"), invite=invite)
        self.sessions.append(session)
        return session

    async def accept(self, name: str, invited: asyncio.Future[dict]) -> MeetingSession:
        event = await asyncio.wait_for(invited, 10)
        session = MeetingSession.invited(self.clients[name], name, event, media(name))
        self.sessions.append(session)
        session.accept()
        return session

    def join(self, name: str, meeting_id: str) -> MeetingSession:
        session = MeetingSession.join(self.clients[name], name, meeting_id, media(name))
        self.sessions.append(session)
        return session

    async def ada_and_bob(self) -> tuple[MeetingSession, MeetingSession]:
        """Ada's meeting with Bob (her contact), once each hears and sees the other."""
        ada, bob = await self.client("ada"), await self.client("bob")
        await befriend(ada, bob)
        invited = invitation(bob)
        host = self.create(["bob"])
        guest = await self.accept("bob", invited)
        await until(everyone_hears_everyone({"ada": host, "bob": guest}), LINKED_S)
        return host, guest

    @contextlib.asynccontextmanager
    async def signaling_dropped(
        self, timeout: float = LINKED_S
    ) -> AsyncIterator[tuple[MeetingSession, MeetingSession, list[str]]]:
        """Ada's meeting with Bob, whose way to the server (a proxy) is cut once each hears
        the other: yields (host, guest, who left meanwhile) once each has a second link to
        the other and hears and sees the other on it. The proxy stops in :meth:`close`."""
        proxy = TcpProxy(self.server.port)
        await proxy.start()
        self.proxies.append(proxy)
        ada, bob = await self.client("ada"), await self.client("bob", proxy.url())
        await befriend(ada, bob)
        invited = invitation(bob)
        host = self.create(["bob"])
        guest = await self.accept("bob", invited)
        await until(everyone_hears_everyone({"ada": host, "bob": guest}), timeout)
        left: list[str] = []
        host.on("participant_left", lambda username, reason: left.append(username))

        proxy.cut()  # bob's client reconnects by itself; his session joins again
        await until(
            lambda: len(host.history["bob"]) == 2 and len(guest.history["ada"]) == 2, timeout
        )
        await until(lambda: hears_and_sees(host, "bob") and hears_and_sees(guest, "ada"), timeout)
        yield host, guest, left

    async def close(self) -> None:
        """Leave, then close the clients, then their proxies: a session leaving over a way
        already gone would wait out its client's request timeout (10 s) for it to come back."""
        try:
            for session in self.sessions:
                session.leave()
            for session in self.sessions:
                await asyncio.wait_for(session.wait_ended(), LEFT_S)
            for client in self.clients.values():
                await client.close()
        finally:
            for proxy in self.proxies:
                await proxy.stop()


@pytest.fixture
async def meeting(server) -> AsyncIterator[Meeting]:
    meeting = Meeting(server)
    yield meeting
    await meeting.close()


async def befriend(host: SignalingClient, *others: SignalingClient) -> None:
    for other in others:
        assert other.user is not None and host.user is not None
        await host.request("contacts.request", username=other.user["username"])
        await other.request("contacts.accept", username=host.user["username"])


def media(name: str) -> LocalMedia:
    return LocalMedia(audio=ToneAudioTrack(TONES[name]), camera=PatternVideoTrack(320, 180, fps=10))


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def invitation(client: SignalingClient) -> asyncio.Future[dict]:
    """The next ``meeting.invited`` event of ``client`` (listening from now on)."""
    invited: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
    unsubscribe = client.on_event(
        lambda m: m["type"] == "meeting.invited" and not invited.done() and invited.set_result(m)
    )
    invited.add_done_callback(lambda _: unsubscribe())
    return invited


def hears_and_sees(session: MeetingSession, *others: str, frames: int = 10) -> bool:
    """Whether ``session`` gets ``frames`` new pictures and the right pitch from each of
    ``others`` on its newest link to them, still open: a closed link keeps its figures (a
    link that went silent under load and waits to be offered again had heard enough)."""
    for username in others:
        links = session.history.get(username)
        if not links or links[-1].closed:
            return False
        got = session.receivers(username)
        video, audio = got.get("camera"), got.get("audio")
        if not (isinstance(video, VideoReceiver) and video.frames >= frames):
            return False
        if not (isinstance(audio, AudioReceiver) and audio.received_ms >= 1000):
            return False
        peak = audio.peak_hz(1.0)
        if peak is None or abs(peak - TONES[username]) > PITCH_TOLERANCE_HZ:
            return False
    return True


def everyone_hears_everyone(sessions: dict[str, MeetingSession]) -> Callable[[], bool]:
    return lambda: all(
        hears_and_sees(s, *(n for n in sessions if n != me)) for me, s in sessions.items()
    )


async def test_three_in_a_mesh_see_and_hear_each_other_then_one_leaves(meeting: Meeting) -> None:
    ada, bob, cyd = [await meeting.client(n) for n in ("ada", "bob", "cyd")]
    await befriend(ada, bob, cyd)
    invitations = {"bob": invitation(bob), "cyd": invitation(cyd)}
    host = meeting.create(["bob", "cyd"])
    sessions = {"ada": host, "bob": await meeting.accept("bob", invitations["bob"])}
    # Cyd joins once bob is in: cyd offers to ada and bob (the joiner offers to all present).
    await until(lambda: sessions["bob"].state is MeetingState.JOINED)
    sessions["cyd"] = await meeting.accept("cyd", invitations["cyd"])
    await until(everyone_hears_everyone(sessions), LINKED_S)
    assert sessions["cyd"].machine.link_offerer("ada") is True
    assert sessions["ada"].machine.link_offerer("cyd") is False
    for me, s in sessions.items():
        assert set(s.links) == set(sessions) - {me}
        assert all(p.link is LinkState.CONNECTED for p in s.machine.participants.values())
        video = s.receivers(next(n for n in sessions if n != me))["camera"]
        assert isinstance(video, VideoReceiver) and (video.width, video.height) == (320, 180)

    left: list[tuple[str, str]] = []
    host.on("participant_left", lambda username, reason: left.append((username, reason)))
    sessions["cyd"].leave()
    await asyncio.wait_for(sessions["cyd"].wait_ended(), 10)
    assert sessions["cyd"].machine.reason == "left"
    await until(lambda: "cyd" not in host.links and "cyd" not in sessions["bob"].links)
    assert left == [("cyd", "left")] and set(host.machine.participants) == {"bob"}

    host.end()
    for s in (host, sessions["bob"]):
        await asyncio.wait_for(s.wait_ended(), 10)
    assert host.machine.reason == "ended" and sessions["bob"].machine.reason == "ended"
    assert all(link.closed for s in sessions.values() for ls in s.history.values() for link in ls)


async def test_muting_is_told_to_the_others_and_a_former_participant_rejoins(
    meeting: Meeting,
) -> None:
    host, first = await meeting.ada_and_bob()

    first.set_audio_enabled(False)
    await until(lambda: host.machine.participants["bob"].audio is False)
    heard = host.receivers("bob")["audio"]
    assert isinstance(heard, AudioReceiver)
    # The server's notice can overtake audio bob sent before he muted (another path; under
    # load, most of a second of it waited in Ada's socket): once that has come in, no more.
    before = await settled(lambda: heard.received_ms, what="the audio sent before muting")
    await asyncio.sleep(0.5)
    assert heard.received_ms - before < 200  # a muted slot sends nothing

    first.leave()
    await asyncio.wait_for(first.wait_ended(), 10)
    await until(lambda: "bob" not in host.links)
    second = meeting.join("bob", host.meeting_id)  # a former participant may come back
    await until(everyone_hears_everyone({"ada": host, "bob": second}), LINKED_S)
    assert len(host.history["bob"]) == 2 and host.machine.participants["bob"].audio


async def test_a_participant_whose_signaling_drops_comes_back_and_offers_again(
    meeting: Meeting,
) -> None:
    async with meeting.signaling_dropped() as (host, guest, left):  # bob offers again
        assert guest.machine.link_offerer("ada") is True and not left
        assert guest.state is MeetingState.JOINED and host.history["bob"][0].closed


async def test_one_who_leaves_is_gone_at_once_while_their_link_is_slow_to_close(
    meeting: Meeting,
) -> None:
    """At load 20 aiortc took 10-12 s to close a link; the tile of whoever left must not wait
    for it, and the meeting's own end must (nothing is left running after ``ended``)."""
    host, guest = await meeting.ada_and_bob()

    link = host.links["bob"]
    closing, release = asyncio.Event(), asyncio.Event()
    close = link.close

    async def slow_close() -> None:  # the condition: closing this link takes a while
        closing.set()
        await release.wait()
        await close()

    link.close = slow_close  # type: ignore[method-assign]
    present: list[set[str]] = []
    host.on(
        "participants", lambda change: present.append({p.username for p in change.participants})
    )
    guest.leave()
    await until(lambda: closing.is_set() and bool(present) and "bob" not in present[-1], 20)
    assert not link.closed and "bob" not in host.links

    host.leave()
    ended = asyncio.ensure_future(host.wait_ended())
    await asyncio.sleep(0.3)
    assert not ended.done()  # the end waits for the link still closing
    release.set()
    await asyncio.wait_for(ended, LEFT_S)
    assert link.closed
