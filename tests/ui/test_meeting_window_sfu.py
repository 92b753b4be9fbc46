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

from gui.core.meeting_machine import MeetingState
from signaling.server import SignalingServer
from signaling.server.config import SfuSettings
from signaling.server.sfu.pool import SfuAddress
from tests.conftest import ServerFactory
from tests.sfu.conftest import SfuSetup, sfu  # noqa: F401 (the session's Janus)
from tests.ui.helpers import until
from tests.ui.test_app_flow import make_ui
from tests.ui.test_meeting_window import PASSWORD, Peer, everyone_sees_everyone

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
        await asyncio.sleep(1.5)  # nothing more arrives: paused, not just cleared
        assert tile.frame is None
    finally:
        await bob.close()
        await ui.shutdown()
        await asyncio.sleep(0.2)
