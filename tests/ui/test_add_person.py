""" "Add person" in the call window, offscreen, with real peers on a real server: the call
becomes a meeting, its window gives way to the meeting window, and the two already talking
keep their connection (the same peer connection, its picture still coming) while the third
joins both.

Ada is the app (its built-in server, the test pattern and a tone). Bob answers her call with
the client engine's own call session and carries on in the meeting as ``parley-cli`` does
(:func:`gui.core.escalation.continue_in_meeting`); Cyd accepts the invitation.
"""

from __future__ import annotations

import asyncio

import pytest

from gui.app.call_window import CallWindow
from gui.app.ui import ParleyUi
from gui.core.call_machine import CallState
from gui.core.call_session import CallSession
from gui.core.escalation import continue_in_meeting
from gui.core.meeting_machine import LinkState, MeetingState
from gui.core.meeting_session import MeetingSession
from gui.media.analysis import VideoReceiver
from tests.ui.helpers import click, until
from tests.ui.test_meeting_window import Peer, ada, peers  # noqa: F401  (fixtures used below)

pytestmark = pytest.mark.slow


def frames(session: MeetingSession | CallSession, username: str = "") -> int:
    """Pictures received from ``username`` (a meeting) or from the other side (a call)."""
    if isinstance(session, MeetingSession):
        video = session.receivers(username).get("camera")
    else:
        video = session.receivers.get("camera")
    return video.frames if isinstance(video, VideoReceiver) else 0


def carry_on(peer: Peer, call: CallSession, into: list[MeetingSession]) -> None:
    """Once ``call`` moved into a meeting, ``peer`` carries on in it."""

    def ended(_: str | None) -> None:
        if call.machine.moved_to is not None:
            peer.session = continue_in_meeting(call)
            into.append(peer.session)

    call.on("ended", ended)


async def call_and_add(
    ui: ParleyUi, bob: Peer, invite: str
) -> tuple[CallSession, CallWindow, CallSession, list[MeetingSession]]:
    """The app calls ``bob``, who answers; once his picture comes, "Add person" with
    ``invite``. Returns the app's call and window, bob's call, and the list that gets bob's
    meeting session once his end carries on in the meeting (as parley-cli and the app do)."""
    incoming: asyncio.Queue[dict] = asyncio.Queue()

    def ringing(message: dict) -> None:
        if message.get("type") == "call.incoming":
            incoming.put_nowait(message)

    bob.client.on_event(ringing)
    call = ui.controller.place_call("bob")
    assert call is not None
    event = await asyncio.wait_for(incoming.get(), 15)
    bob_call = CallSession.incoming(bob.client, event, bob.media())
    bob_call.accept()
    await until(lambda: ui.calls, what="ada's call window")
    window = ui.calls[0]
    await until(lambda: call.state is CallState.CONNECTED, 30, "the call connected")
    await until(lambda: window.add_button.isEnabled(), what="Add person enabled")
    await until(lambda: frames(call) > 10, 20, "bob's picture")
    bob_meeting: list[MeetingSession] = []
    carry_on(bob, bob_call, bob_meeting)
    click(window.add_button)
    picker = window.add_picker
    assert picker is not None and picker.isVisible()
    picker.check(invite)
    click(picker.ok)
    return call, window, bob_call, bob_meeting


async def test_add_person_turns_the_call_into_a_meeting_on_the_same_connection(
    ada: ParleyUi,  # noqa: F811  (the fixtures of test_meeting_window)
    peers: dict[str, Peer],  # noqa: F811
) -> None:
    bob, cyd = peers["bob"], peers["cyd"]
    call, window, bob_call, bob_meeting = await call_and_add(ada, bob, "cyd")
    link = call.peer
    await until(lambda: ada.meetings, 20, "the meeting window")
    meeting_window = ada.meetings[0]
    session = meeting_window.session
    assert session is ada.controller.meeting and session.state is MeetingState.JOINED
    await until(lambda: window not in ada.calls, what="the call window gone")
    assert session.links["bob"] is link  # the call's connection, not a new one
    assert session.machine.host == "ada"
    await until(lambda: bob_meeting, what="bob in the meeting")
    seen = frames(session, "bob")
    await until(lambda: frames(session, "bob") > seen + 10, 20, "bob's picture going on")

    await cyd.accept()
    await until(
        lambda: (
            all(p.link is LinkState.CONNECTED for p in session.machine.participants.values())
            and set(session.machine.participants) == {"bob", "cyd"}
        ),
        40,
        "ada linked to bob and cyd",
    )
    await until(lambda: "cyd" in meeting_window.tile_views, what="cyd's tile")
    await until(lambda: frames(session, "cyd") > 5, 30, "cyd's picture")
    assert session.links["bob"] is link and len(session.history["bob"]) == 1
    assert bob_meeting[0].links["ada"] is bob_call.peer

    # Everyone leaves here, while the sessions' loop runs.
    for peer in (bob, cyd):
        assert peer.session is not None
        peer.session.leave()
        await asyncio.wait_for(peer.session.wait_ended(), 10)
        peer.session = None
    await ada.controller.leave_meeting()
    assert ada.controller.meeting is None
