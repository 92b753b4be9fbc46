"""The meeting window when the meeting goes through a media server (a real Janus).

The app signs in to a server whose meetings go through the session's Janus
(``tests/sfu``); Bob is the client engine's own meeting session in this process.
The window must say "Encrypted to the meeting server" (not end-to-end), and show
Bob's video, received through Janus, in his tile.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui.core.meeting_chat import NOT_SHOWN_END_TO_END
from gui.core.meeting_machine import MeetingState
from gui.media.analysis import VideoReceiver
from signaling.server import SignalingServer
from signaling.server.config import SfuSettings
from signaling.server.sfu.pool import SfuAddress
from tests.conftest import ServerFactory
from tests.server.test_calls import connected
from tests.sfu.conftest import SfuSetup, sfu  # noqa: F401 (the session's Janus)
from tests.sfu.test_relay import AV, apps
from tests.ui.helpers import click, until
from tests.ui.test_app_flow import make_ui
from tests.ui.test_meeting_window import PASSWORD, Peer, everyone_sees_everyone
from tests.waiting import settled
from tests.wire import new_call_id

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(make_server: ServerFactory, sfu: SfuSetup) -> SignalingServer:  # noqa: F811
    settings = SfuSettings((SfuAddress.parse(sfu.janus.address),), sfu.secret)
    return await make_server(echo_bot=False, sfu=settings)


async def test_a_meeting_through_janus_says_so_and_shows_the_video(
    isolated_home: Path, server: SignalingServer
) -> None:
    ui = make_ui("ada")
    bob = Peer("bob", server.url)
    try:
        await ui.controller.sign_in(server.url, "ada", PASSWORD, register=True)
        await bob.start(ui)
        await until(lambda: ui.controller.contacts.contact("bob") is not None)
        ui.controller.start_meeting(["bob"])
        await until(lambda: ui.meetings, what="the meeting window")
        window = ui.meetings[0]
        await until(lambda: window.session.state is MeetingState.JOINED)
        assert window.security.text() == "Encrypted to the meeting server"
        assert "server" in window.security.toolTip()
        await bob.accept()
        await until(lambda: everyone_sees_everyone(window, "bob"), 40, "bob's video via Janus")
        assert window.status.text() == ""
        assert not window.session.links  # no peer connection to bob: all through Janus

        # No video at all (--max-videos 0): bob's is paused at Janus, his tile shows his name.
        media = window.session.sfu
        assert media is not None
        media.max_videos = 0
        media.set_participants(list(media.participants))
        tile = window.tile_views["bob"].video
        await until(lambda: tile.frame is None, 20, "bob's tile without video")
        # Paused at Janus, not only in the tile (which drops frames still on their way): once
        # those are in, nothing more arrives.
        camera = window.session.receivers("bob")["camera"]
        assert isinstance(camera, VideoReceiver)
        frames = await settled(lambda: camera.frames, what="bob's video on its way")
        await asyncio.sleep(1.5)
        assert camera.frames <= frames + 2 and tile.frame is None
    finally:
        await bob.close()
        await ui.shutdown()
        await asyncio.sleep(0.2)


async def test_joining_after_a_call_moved_to_janus_says_its_chat_is_not_shown(
    isolated_home: Path, server: SignalingServer
) -> None:
    """Bob and Cyd's call became a meeting through Janus: what they wrote in the call went
    end to end and is not shown to Ada, who joins later; her chat says so in one plain line
    at its top, and shows what is sent through the server after."""
    ui = make_ui("ada")
    bob, cyd = await apps(server.url, "bob", "cyd")
    try:
        await ui.controller.sign_in(server.url, "ada", PASSWORD, register=True)
        await bob.request("contacts.request", username="ada")
        await until(lambda: ui.controller.contacts.contact("bob") is not None)
        await ui.controller.accept_contact("bob")
        await bob.next_event("contact")
        moved = await bob.request(
            "meeting.create",
            meeting_id=new_call_id(),
            media=AV,
            from_call=await connected(bob, cyd),
            invite=["ada"],
        )
        meeting_id = moved["meeting"]["meeting_id"]
        invitation = ui.meeting_invitation
        await until(lambda: invitation.isVisible(), what="the invitation window")
        click(invitation.join_video)
        await until(lambda: ui.meetings, what="the meeting window")
        window = ui.meetings[0]
        await until(lambda: window.session.state is MeetingState.JOINED)
        notice = window.chat.notice
        assert not notice.isHidden() and notice.text() == NOT_SHOWN_END_TO_END
        assert notice.textFormat() == Qt.TextFormat.PlainText
        assert window.chat_model.rowCount() == 0
        await cyd.request("meeting.chat", meeting_id=meeting_id, chat_id="c1", text="hi all")
        await until(lambda: window.chat_model.rowCount() == 1, what="cyd's message")
        click(window.leave_button)
        await until(lambda: not ui.meetings, what="the meeting window to close")
    finally:
        await asyncio.gather(bob.close(), cyd.close())
        await ui.shutdown()
        await asyncio.sleep(0.2)
