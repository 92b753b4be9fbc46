"""The whole app driven through its widgets, offscreen: two people, two profiles, one real call.

Both instances run in this process on the app's qasync loop. The first
starts the built-in server; the second finds it, as two Parley windows on one
computer do. Video is the test pattern (these machines have no camera), so
the test reads the frame number back from the pixels the call window shows.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from gui.app.ui import ParleyUi
from gui.core.call_machine import CallState
from tests.ui.helpers import click, grab_frame_number, row_of, select, type_into, until

pytestmark = pytest.mark.slow


def make_ui(name: str) -> ParleyUi:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    ui = ParleyUi(app, name, None)
    settings = ui.profile.settings
    settings.synthetic_media = True
    settings.embedded_port = 0
    settings.keep_signed_in = False
    ui.main.show()
    return ui


async def register(ui: ParleyUi, username: str, display_name: str) -> None:
    sign_in = ui.main.sign_in
    await until(lambda: sign_in.isVisible(), what="the sign-in screen")
    click(sign_in.switch)
    type_into(sign_in.username, username)
    type_into(sign_in.password, "correct horse battery")
    type_into(sign_in.display_name, display_name)
    click(sign_in.submit)
    await until(lambda: ui.main.stack.currentWidget() is ui.main.home, what="the home view")
    assert ui.main.home.name.text() == display_name


async def befriend(alice: ParleyUi, bob: ParleyUi) -> None:
    home = alice.main.home
    type_into(home.search, "bo")
    await until(lambda: row_of(home.results, "bob").isValid(), what="bob in the results")
    select(home.results, "bob")
    click(home.add_button)
    bob_home = bob.main.home
    await until(lambda: row_of(bob_home.requests, "alice").isValid(), what="the request")
    assert bob_home.tabs.tabText(1) == "Requests (1)"
    bob_home.tabs.setCurrentIndex(1)
    select(bob_home.requests, "alice")
    click(bob_home.accept_button)
    await until(
        lambda: (
            (c := alice.controller.contacts.contact("bob")) is not None
            and c.status == "accepted"
            and c.presence == "online"
        ),
        what="bob online in alice's contacts",
    )


async def test_register_befriend_call_mute_chat_hang_up(isolated_home: Path) -> None:
    threads_before = set(threading.enumerate())
    alice, bob = make_ui("alice"), make_ui("bob")
    try:
        assert not await alice.controller.start()
        assert not await bob.controller.start()
        assert alice.controller.default_server == bob.controller.default_server
        await register(alice, "alice", "Alice Liddell")
        await register(bob, "bob", "Bob")
        await befriend(alice, bob)

        # Bob goes away and comes back: alice sees it.
        bob.main.home.presence.setCurrentIndex(1)
        bob.main.home.presence.activated.emit(1)
        await until(lambda: alice.controller.contacts.contact("bob").presence == "away")
        bob.main.home.presence.setCurrentIndex(0)
        bob.main.home.presence.activated.emit(0)
        await until(lambda: alice.controller.contacts.contact("bob").presence == "online")

        # Alice calls Bob with video; Bob answers from the incoming-call window.
        home = alice.main.home
        home.tabs.setCurrentIndex(0)
        select(home.contacts, "bob")
        click(home.video_button)
        await until(lambda: alice.calls, what="alice's call window")
        await until(lambda: bob.incoming.isVisible(), what="bob's incoming call window")
        assert bob.incoming.caller.text() == "Alice Liddell"
        click(bob.incoming.answer_video)
        await until(lambda: bob.calls, what="bob's call window")
        alice_call, bob_call = alice.calls[0], bob.calls[0]
        await until(
            lambda: (
                alice_call.session.state is CallState.CONNECTED
                and bob_call.session.state is CallState.CONNECTED
            ),
            what="the call to connect",
        )
        # The remote pattern is on screen: its frame number reads back from the pixels.
        await until(lambda: bob_call.remote.frames_given > 10, what="frames on bob's side")
        await until(
            lambda: grab_frame_number(bob_call.remote) is not None,
            timeout=10,
            what="a readable frame on bob's screen",
        )
        first = grab_frame_number(bob_call.remote)
        assert first is not None
        # The picture moves on: a later frame number shows (within seconds: a loaded machine
        # can show no new frame for half a second).
        await until(
            lambda: (grab_frame_number(bob_call.remote) or -1) > first,
            timeout=10,
            what="a later frame on bob's screen",
        )
        assert alice_call.self_view.frames_given > 10  # the self-view shows what is sent
        await until(lambda: alice_call.words.text() != "", what="verification words")
        assert alice_call.words.text() == bob_call.words.text()

        # Mute: Bob's window says so.
        click(alice_call.mic_button)
        await until(lambda: "muted" in bob_call.peer_state.text(), what="the muted indicator")
        assert alice_call.mic_button.accessibleName() == "Unmute"

        # Chat.
        click(alice_call.chat_button)
        type_into(alice_call.chat_input, "Can you see me?")
        click(alice_call.chat_send)
        await until(lambda: bob_call.chat_model.rowCount() == 1, what="the chat message")
        assert bob_call.chat_model.lines()[0].text == "Can you see me?"
        assert bob_call.chat_panel.isVisible()  # it opened by itself
        await until(lambda: alice_call.chat_model.lines()[0].delivered, what="delivery")

        # Hang up: both windows close and the call is in both histories.
        click(alice_call.hang_up_button)
        await until(lambda: not alice.calls and not bob.calls, what="the call windows to close")
        await until(lambda: alice.controller.history.rowCount() == 1, what="alice's history")
        await until(lambda: bob.controller.history.rowCount() == 1, what="bob's history")
        assert "Outgoing" in alice.controller.history.index(0, 0).data(0x0105)
    finally:
        await bob.shutdown()
        await alice.shutdown()
    await asyncio.sleep(0.2)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []
    extra = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert not [t for t in extra if not t.name.startswith(("asyncio_", "QThread", "Qt"))]
