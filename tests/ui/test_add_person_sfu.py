""" "Add person" in the call window when the server has a media server (a real Janus):
the meeting goes through Janus, and the call's own connection keeps showing the other party
until Janus carries them; then the tile shows Janus's picture, the call's connection closes,
and nothing of it is shown or played any more (make before break, ``sfu_handover.py``).

Ada is the app, signed in to a server whose meetings go through the session's Janus
(``tests/sfu``); Bob answers her call with the client engine's own call session and carries
on in the meeting as ``parley-cli`` does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gui.core.meeting_machine import MeetingState
from signaling.server import SignalingServer
from tests.sfu.conftest import sfu  # noqa: F401 (the session's Janus)
from tests.ui.helpers import until
from tests.ui.test_add_person import call_and_add, frames
from tests.ui.test_app_flow import make_ui
from tests.ui.test_meeting_window import PASSWORD, Peer
from tests.ui.test_meeting_window_sfu import server  # noqa: F401 (a server with the Janus)

pytestmark = pytest.mark.slow


async def test_add_person_moves_the_call_to_janus_before_closing_its_connection(
    isolated_home: Path,
    server: SignalingServer,  # noqa: F811  (the fixture of test_meeting_window_sfu)
) -> None:
    ui = make_ui("ada")
    bob, cyd = Peer("bob", server.url), Peer("cyd", server.url)
    try:
        await ui.controller.sign_in(server.url, "ada", PASSWORD, register=True)
        for peer in (bob, cyd):
            await peer.start(ui)
        await until(
            lambda: all(ui.controller.contacts.contact(n) is not None for n in ("bob", "cyd")),
            what="bob and cyd in ada's contacts",
        )
        call, _, bob_call, bob_meeting = await call_and_add(ui, bob, "cyd")
        link = call.peer
        await until(lambda: ui.meetings, 20, "the meeting window")
        meeting_window = ui.meetings[0]
        session = meeting_window.session
        assert session.state is MeetingState.JOINED and session.machine.topology == "sfu"
        assert meeting_window.security.text() == "Encrypted to the meeting server"
        assert not session.links  # no mesh link: the call's connection is the bridge's
        assert session.history["bob"][0] is link
        assert meeting_window.chat.notice.isHidden()  # the call's parties have their chat

        # Janus takes over: a second connection for bob, the call's closed, the tile on Janus's.
        await until(lambda: len(session.history["bob"]) == 2 and link.closed, 40, "the switch")
        through_janus = session.history["bob"][1]
        assert meeting_window._camera_receivers["bob"] is through_janus.receivers["camera"]
        assert all(not r.listeners for r in link.receivers.values())  # not shown nor played
        seen = frames(session, "bob")
        await until(lambda: frames(session, "bob") > seen + 10, 20, "bob's picture via Janus")
        shown = meeting_window.tile_views["bob"].video.frames_given
        await until(
            lambda: meeting_window.tile_views["bob"].video.frames_given > shown + 5,
            20,
            "bob's tile showing Janus's picture",
        )
        await until(lambda: bob_meeting and bob_call.peer.closed, 20, "bob's end switched too")
    finally:
        for peer in (bob, cyd):
            await peer.close()
        if ui.controller.meeting is not None:
            await ui.controller.leave_meeting()
        await ui.shutdown()
        await asyncio.sleep(0.2)
