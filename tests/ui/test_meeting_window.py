"""The meeting window through its widgets, offscreen, with real peers on a real server.

Ada is the app (its built-in server, the test pattern and a tone). Bob and Cyd
are the client engine's own meeting sessions, each with a signaling client of
its own, in this process: real aiortc peer connections on loopback, VP8 and
Opus, each sending a pattern and a tone it can silence (``ToneAudioTrack.muted``)
or stop sending (mute). What the window shows is read from its widgets.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui.app.meeting_window import MeetingWindow
from gui.app.models import Role
from gui.app.tile_view import TileView
from gui.app.ui import ParleyUi
from gui.core.backoff import Backoff
from gui.core.meeting_machine import MeetingState
from gui.core.meeting_session import MeetingSession
from gui.core.peer_link import SCREEN, LocalMedia
from gui.core.signaling_client import SignalingClient
from gui.media.pattern import PatternVideoTrack
from gui.media.processing import ProcessedAudioTrack
from gui.media.tone import ToneAudioTrack
from tests.tcp_proxy import TcpProxy
from tests.ui.helpers import click, type_into, until
from tests.ui.test_app_flow import make_ui, register

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
TONES = {"bob": 550.0, "cyd": 660.0}
#: Cyd's display name looks like markup: every window must show it as typed.
CYD = "<b>Cyd</b> <a href='x'>pay</a>"


class Peer:
    """A participant driven by the test: a signaling client, its tracks, its session."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.client = SignalingClient(url, backoff=Backoff(initial=0.05, maximum=0.2))
        self.tone = ToneAudioTrack(TONES[name])
        self.session: MeetingSession | None = None
        self.invitations: asyncio.Queue[dict] = asyncio.Queue()
        self.chat: list[tuple[str, str]] = []
        self.closed = False

    async def start(self, befriend: ParleyUi) -> None:
        await self.client.connect()
        await self.client.register(self.name, PASSWORD, CYD if self.name == "cyd" else None)
        self.client.on_event(
            lambda m: m.get("type") == "meeting.invited" and self.invitations.put_nowait(m)
        )
        await self.client.request("contacts.request", username="ada")
        await befriend.controller.accept_contact(self.name)

    def media(self) -> LocalMedia:
        return LocalMedia(audio=self.tone, camera=PatternVideoTrack(320, 180, fps=10))

    def _watch(self, session: MeetingSession) -> MeetingSession:
        self.session = session
        session.on("chat", lambda who, message: self.chat.append((who, message.text)))
        return session

    async def accept(self) -> MeetingSession:
        event = await asyncio.wait_for(self.invitations.get(), 15)
        session = MeetingSession.invited(self.client, self.name, event, self.media())
        session.accept()
        return self._watch(session)

    def create(self, invite: list[str]) -> MeetingSession:
        session = MeetingSession.create(self.client, self.name, self.media(), invite=invite)
        return self._watch(session)

    async def close(self) -> None:
        """Leave and disconnect. Tests call it at their end: between a test and its fixtures'
        teardown the loop is not running, and pytest-qt's processing of Qt events then steps
        qasync's pending callbacks outside it (tasks of live connections break)."""
        if self.closed:
            return
        self.closed = True
        if self.session is not None:
            self.session.leave()
            await asyncio.wait_for(self.session.wait_ended(), 10)
        await self.client.close()


@pytest.fixture
async def ada(isolated_home: Path) -> AsyncIterator[ParleyUi]:
    ui = make_ui("ada")
    try:
        assert not await ui.controller.start()
        await register(ui, "ada", "Ada")
        yield ui
    finally:
        await ui.shutdown()
        await asyncio.sleep(0.2)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []


@pytest.fixture
async def peers(ada: ParleyUi) -> AsyncIterator[dict[str, Peer]]:
    url = ada.controller.default_server
    assert url is not None
    made = {name: Peer(name, url) for name in ("bob", "cyd")}
    try:
        for peer in made.values():
            await peer.start(ada)
        await until(
            lambda: all(
                (c := ada.controller.contacts.contact(n)) is not None and c.status == "accepted"
                for n in made
            ),
            what="bob and cyd in ada's contacts",
        )
        yield made
    finally:
        for peer in made.values():
            await peer.close()
        await asyncio.sleep(0.2)


async def close(peers: dict[str, Peer]) -> None:
    for peer in peers.values():
        await peer.close()
    await asyncio.sleep(0.2)


def tile(window: MeetingWindow, username: str) -> TileView:
    return window.tile_views[username]


def rows(window: MeetingWindow) -> list[tuple[int, int]]:
    """The distinct (top) rows and (left) columns the tiles are placed on."""
    return sorted({(v.y(), v.x()) for v in window.tile_views.values()})


def speaking(window: MeetingWindow) -> set[str]:
    return {u for u, v in window.tile_views.items() if v.speaking}


def everyone_sees_everyone(window: MeetingWindow, *others: str) -> bool:
    return all(
        tile(window, u).video.frames_given > 5 if u in window.tile_views else False for u in others
    )


async def test_tiles_speaking_ring_mute_screen_chat_and_history(
    ada: ParleyUi, peers: dict[str, Peer]
) -> None:
    bob, cyd = peers["bob"], peers["cyd"]
    cyd.tone.muted = True  # cyd sends silence, bob a tone

    # Ada starts a meeting from the main window, inviting both.
    started = time.monotonic()
    home = ada.main.home
    click(home.meeting_button)
    picker = home.meeting_picker
    assert picker is not None and picker.isVisible()
    assert not picker.ok.isEnabled()
    picker.check("bob")
    picker.check("cyd")
    click(picker.ok)
    await until(lambda: ada.meetings, what="ada's meeting window")
    window = ada.meetings[0]
    window.resize(1000, 640)
    ada_tone = window.session.shared.media.audio
    assert isinstance(ada_tone, ProcessedAudioTrack) and isinstance(ada_tone.source, ToneAudioTrack)
    ada_tone.source.muted = True  # ada is silent: the rings here are the others'
    await until(lambda: window.session.state is MeetingState.JOINED, what="ada in her meeting")
    joined_by = time.monotonic()  # she was in the meeting from before this on
    assert window.security.text() == "End-to-end encrypted"
    assert list(window.tile_views) == ["ada"] and window.status.text().startswith("Waiting")
    assert window.end_button.isVisible()  # the host can end it for everyone

    # Bob joins: two tiles side by side; Cyd joins: three in a 2x2 grid.
    await bob.accept()
    await until(lambda: "bob" in window.tile_views, what="bob's tile")
    await until(lambda: len(rows(window)) == 2 and len({y for y, _ in rows(window)}) == 1)
    await cyd.accept()
    await until(lambda: "cyd" in window.tile_views, what="cyd's tile")
    await until(lambda: len({y for y, _ in rows(window)}) == 2, what="a second row")
    assert [window.model.index(r, 0).data(Role.USERNAME) for r in range(3)] == [
        "ada",
        "bob",
        "cyd",
    ]
    await until(lambda: everyone_sees_everyone(window, "bob", "cyd"), 40, "video in the tiles")
    assert tile(window, "bob").video.isVisible() and not tile(window, "bob").avatar.isVisible()

    # The ring follows the tone: bob speaks, cyd is silent; then the other way round.
    await until(lambda: speaking(window) == {"bob"}, 20, "the ring on bob")
    bob.tone.muted, cyd.tone.muted = True, False
    await until(lambda: speaking(window) == {"cyd"}, 20, "the ring moving to cyd")

    # The mute icon follows mute (told through the server), and the panel says so.
    assert not tile(window, "bob").muted
    assert bob.session is not None
    bob.session.set_audio_enabled(False)
    await until(lambda: tile(window, "bob").muted, what="bob's mute icon")
    row = window.model.row_of("bob")
    assert "Muted" in window.model.index(row, 0).data(Role.SUBTITLE)
    bob.session.set_audio_enabled(True)
    await until(lambda: not tile(window, "bob").muted, what="bob's mute icon gone")
    click(window.mic_button)  # ada mutes herself: her own tile says so
    await until(lambda: tile(window, "ada").muted)
    click(window.mic_button)

    # Cyd shares a screen: it takes the large place, the tiles go to a strip below it.
    assert cyd.session is not None
    cyd.session.replace_track(SCREEN, PatternVideoTrack(640, 360, fps=5))
    await until(
        lambda: window.screen_owner == "cyd" and window.screen_view.isVisible(),
        30,
        "cyd's screen, large",
    )
    screen = window.screen_view.geometry()
    assert all(v.y() >= screen.bottom() for v in window.tile_views.values())
    assert all(v.height() < screen.height() / 2 for v in window.tile_views.values())
    assert len({v.y() for v in window.tile_views.values()}) == 1  # one strip
    cyd.session.replace_track(SCREEN, None)
    await until(lambda: not window.screen_view.isVisible(), what="back to the grid")
    assert len({y for y, _ in rows(window)}) == 2

    # Chat to everyone, plain text from others.
    click(window.chat_button)
    type_into(window.chat.input, "Hello <b>both</b>")
    click(window.chat.send)
    await until(lambda: ("ada", "Hello <b>both</b>") in bob.chat and cyd.chat, what="chat")
    await until(lambda: window.chat_model.lines()[0].delivered, what="delivered to both")
    bob.session.send_chat("Hi Ada")
    await until(lambda: window.chat_model.rowCount() == 2)
    assert window.chat_model.index(1, 0).data() == "bob: Hi Ada"

    # Cyd leaves: back to two tiles. Ada ends it for everyone: the window closes, and the
    # meeting is in the history (an ended meeting; one left while others stay is not yet).
    cyd.session.leave()
    await until(lambda: "cyd" not in window.tile_views, what="cyd's tile gone")
    await until(lambda: len(rows(window)) == 2)
    if os.environ.get("PARLEY_SHOT"):
        window.grab().save(os.environ["PARLEY_SHOT"])
    in_at_least = time.monotonic() - joined_by
    click(window.end_button)
    await until(lambda: bob.session.machine.reason == "ended", what="the end for bob")
    await until(lambda: not ada.meetings, what="the meeting window to close")
    in_at_most = time.monotonic() - started
    history = ada.controller.history
    await until(lambda: history.rowCount() == 1, what="the meeting in the history")
    assert history.index(0, 0).data() == f"Meeting with bob and {CYD}"
    # Its length in whole minutes: 0 on a quiet machine; a loaded one can take over 30 s.
    minutes = range(round((in_at_least - 1) / 60), round((in_at_most + 1) / 60) + 1)
    subtitle = history.index(0, 0).data(Role.SUBTITLE)
    assert any(subtitle.startswith(f"Meeting, {m} min") for m in minutes), subtitle
    await close(peers)


async def test_an_invitation_says_who_is_in_it_and_join_opens_the_meeting(
    ada: ParleyUi, peers: dict[str, Peer]
) -> None:
    bob, cyd = peers["bob"], peers["cyd"]
    await cyd.client.request("contacts.request", username="bob")
    await bob.client.request("contacts.accept", username="cyd")
    host = bob.create(["cyd"])
    await cyd.accept()
    await until(lambda: "cyd" in host.machine.participants, what="cyd in bob's meeting")
    # Bob invites ada: she sees who invites and who else is in it, and joins.
    host.invite(["ada"])
    invitation = ada.meeting_invitation
    await until(lambda: invitation.isVisible(), what="the invitation window")
    assert invitation.inviter.text() == "bob"
    assert invitation.what.text() == "invites you to a video meeting"
    assert invitation.others.text() == f"With {CYD}"
    assert invitation.others.textFormat() == Qt.TextFormat.PlainText
    assert invitation.inviter.textFormat() == Qt.TextFormat.PlainText
    click(invitation.join_video)
    await until(lambda: ada.meetings, what="the meeting window")
    window = ada.meetings[0]
    assert not invitation.isVisible()
    await until(lambda: set(window.tile_views) == {"ada", "bob", "cyd"}, what="three tiles")
    await until(lambda: everyone_sees_everyone(window, "bob", "cyd"), 40, "their video")
    assert not window.end_button.isVisible()  # bob is the host
    assert window.windowTitle() == f"Meeting with bob and {CYD} — Parley"
    name = tile(window, "cyd").name
    assert name.text() == CYD and name.textFormat() == Qt.TextFormat.PlainText
    # Ada leaves; the meeting goes on for the others.
    click(window.leave_button)
    await until(lambda: not ada.meetings, what="the meeting window to close")
    await until(lambda: "ada" not in host.machine.participants, what="ada gone for bob")
    assert host.state is MeetingState.JOINED
    # Invited again, she declines: the window goes, bob learns it.
    host.invite(["ada"])
    await until(lambda: "ada" in host.machine.invited, what="ada invited again")
    await until(lambda: invitation.isVisible(), what="the invitation again")
    click(invitation.decline)
    await until(lambda: "ada" not in host.machine.invited, what="bob told of the decline")
    assert not invitation.isVisible() and not ada.controller.invitations
    await close(peers)


async def test_reconnecting_shows_while_the_server_is_out_of_reach(isolated_home: Path) -> None:
    """Ada reaches the server through a proxy that the test cuts: her window says
    "Reconnecting…" until her connection is back and she is in the meeting again."""
    ui = make_ui("ada")
    proxy: TcpProxy | None = None
    bob: Peer | None = None
    try:
        assert not await ui.controller.start()
        url = ui.controller.default_server
        assert url is not None
        proxy = TcpProxy(int(url.rsplit(":", 1)[1].split("/")[0]))
        await proxy.start()
        await ui.controller.sign_in(proxy.url(), "ada", PASSWORD, register=True)
        bob = Peer("bob", url)
        await bob.start(ui)
        await until(lambda: ui.controller.contacts.contact("bob") is not None)
        ui.controller.start_meeting(["bob"])
        await until(lambda: ui.meetings, what="the meeting window")
        window = ui.meetings[0]
        await bob.accept()
        await until(lambda: everyone_sees_everyone(window, "bob"), 30, "bob's video")
        assert window.status.text() == ""

        proxy.accepting = False
        proxy.cut()
        await until(lambda: window.status.text() == "Reconnecting…", what="Reconnecting…")
        assert "bob" in window.tile_views  # still listed while ada is away
        proxy.accepting = True
        await until(
            lambda: window.session.state is MeetingState.JOINED and window.status.text() == "",
            30,
            "back in the meeting",
        )
        frames = tile(window, "bob").video.frames_given
        await until(lambda: tile(window, "bob").video.frames_given > frames + 10, 30, "video")
    finally:
        if bob is not None:
            await bob.close()
        await ui.shutdown()
        if proxy is not None:
            await proxy.stop()
        await asyncio.sleep(0.2)
