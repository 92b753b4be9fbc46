"""The meeting window, continued: one's own speaking ring and "You are muted", and the chat
a late joiner finds there. Offscreen, with the app's built-in server and real peers (the
fixtures and peers of ``test_meeting_window.py``).

The app sends its test tone through the microphone path with no processing (so it is
metered as a microphone is): a steady tone is not talking; one cut into syllables is.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gui.app.ui import ParleyUi
from gui.core.meeting_machine import MeetingState
from gui.media.processing import ProcessedAudioTrack
from gui.media.tone import ToneAudioTrack
from tests.ui.helpers import click, type_into, until
from tests.ui.test_meeting_window import CYD, Peer, ada, close, peers, speaking, tile

pytestmark = pytest.mark.slow
__all__ = ["ada", "peers"]  # the fixtures


@contextlib.asynccontextmanager
async def talking(tone: ToneAudioTrack):
    """The tone cut into syllables (300 ms of sound, 100 ms of silence) while inside."""

    async def syllables() -> None:
        while True:
            tone.muted = False
            await asyncio.sleep(0.3)
            tone.muted = True
            await asyncio.sleep(0.1)

    task = asyncio.get_running_loop().create_task(syllables())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        tone.muted = False


async def test_my_own_ring_mute_icon_and_the_muted_hint(
    ada: ParleyUi, peers: dict[str, Peer]
) -> None:
    bob = peers["bob"]
    bob.tone.muted = True
    ada.controller.start_meeting(["bob"])
    await until(lambda: ada.meetings, what="ada's meeting window")
    window = ada.meetings[0]
    await bob.accept()
    await until(lambda: "bob" in window.tile_views, what="bob's tile")
    microphone = window.session.shared.media.audio
    assert isinstance(microphone, ProcessedAudioTrack)
    tone = microphone.source
    assert isinstance(tone, ToneAudioTrack)

    # Ada's tone is what she sends: her own tile rings, bob's (silent) does not.
    await until(lambda: speaking(window) == {"ada"}, 20, "the ring on ada's own tile")
    assert not tile(window, "ada").muted
    tone.muted = True
    await until(lambda: speaking(window) == set(), 10, "ada's ring gone with her voice")
    tone.muted = False
    await until(lambda: speaking(window) == {"ada"}, 10, "ada's ring back")
    await asyncio.sleep(2.5)  # the tone steady again, for longer than the meter's memory

    # Muted: the icon on her tile, no ring however loud; a steady sound is not talking.
    click(window.mic_button)
    await until(lambda: tile(window, "ada").muted, what="ada's mute icon")
    await until(lambda: speaking(window) == set(), 10, "no ring while muted")
    await asyncio.sleep(2.5)
    assert not window.muted_hint.isVisible()

    # Talking while muted: "You are muted"; quiet again: it goes; unmuted: never.
    async with talking(tone):
        await until(window.muted_hint.isVisible, 10, "the muted hint")
        assert "ada" not in speaking(window)
        assert window.muted_hint.text().startswith("You are muted")
    tone.muted = True
    await until(lambda: not window.muted_hint.isVisible(), 10, "the hint to go")
    async with talking(tone):
        await until(window.muted_hint.isVisible, 10, "the muted hint again")
        click(window.mic_button)  # unmuted: heard now
        assert not window.muted_hint.isVisible()
        assert not tile(window, "ada").muted
        await until(lambda: "ada" in speaking(window), 10, "her ring back, unmuted")
    click(window.leave_button)
    await until(lambda: not ada.meetings, what="the window to close")
    await close(peers)


async def test_a_late_joiner_finds_the_chat_so_far(ada: ParleyUi, peers: dict[str, Peer]) -> None:
    bob, cyd = peers["bob"], peers["cyd"]
    await cyd.client.request("contacts.request", username="bob")
    await bob.client.request("contacts.accept", username="cyd")
    host = bob.create(["cyd"])
    guest = await cyd.accept()
    await until(
        lambda: (
            "cyd" in host.links
            and host.links["cyd"].channel.is_open
            and "bob" in guest.links
            and guest.links["bob"].channel.is_open
        ),
        20,
        "bob and cyd's chat",
    )
    host.send_chat("Agenda: <b>budget</b>")
    await until(lambda: len(guest.chat_log) == 1, what="cyd has it")
    guest.send_chat("I'll take notes")
    await until(lambda: len(host.chat_log) == 2, what="bob has it")

    # Ada joins late: the two messages are in her chat, in order, names and words as typed;
    # the panel stays closed (the button says how many there are).
    host.invite(["ada"])
    invitation = ada.meeting_invitation
    await until(lambda: invitation.isVisible(), what="the invitation window")
    click(invitation.join_video)
    await until(lambda: ada.meetings, what="the meeting window")
    window = ada.meetings[0]
    await until(lambda: window.session.state is MeetingState.JOINED, what="ada in")
    await until(lambda: window.chat_model.rowCount() == 2, 30, "the chat so far")
    lines = [window.chat_model.index(r, 0).data() for r in range(2)]
    assert lines == ["bob: Agenda: <b>budget</b>", f"{CYD}: I'll take notes"]
    assert not window.chat.isVisible()
    assert "2 messages" in window.chat_button.toolTip()

    # Both sent it to her; she sees it once. New messages follow, and open the panel.
    await asyncio.sleep(1.5)
    assert window.chat_model.rowCount() == 2
    host.send_chat("Welcome Ada")
    await until(lambda: window.chat_model.rowCount() == 3, what="a new message")
    assert window.chat_model.index(2, 0).data() == "bob: Welcome Ada"
    assert window.chat.isVisible()
    assert "messages" not in window.chat_button.toolTip()
    type_into(window.chat.input, "Sorry I'm late")
    click(window.chat.send)
    await until(lambda: ("ada", "Sorry I'm late") in cyd.chat, what="ada's message to cyd")
    click(window.leave_button)
    await until(lambda: not ada.meetings, what="the window to close")
    await close(peers)
