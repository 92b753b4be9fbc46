"""Issue 16: a display name written as HTML is shown as the characters typed, in every window.

Before the fix, a user who registered as ``<h1 style="color:#c00">ALERT</h1><a href=x>pay</a>``
and called made the incoming-call window show a large red "ALERT" and a link
"pay". Here that user (alice) and bob are two real app instances in this process
on the built-in server: alice asks bob to be a contact, calls him, chats in
HTML, hangs up; at each step every visible window is walked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtGui
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from gui.app.plain import plain_notification, plain_title
from gui.core.call_machine import CallState
from tests.ui.helpers import click, row_of, select, type_into, until
from tests.ui.test_app_flow import befriend, make_ui, register

pytestmark = pytest.mark.slow

HOSTILE = '<h1 style="color:#c00">ALERT</h1><a href=x>pay</a>'
CHAT = "<b>urgent</b> <img src=x> &amp; <a href='http://evil'>click</a>"


def visible_windows() -> list[QWidget]:
    return [w for w in QApplication.topLevelWidgets() if w.isVisible()]


def assert_no_markup_shown(where: str) -> int:
    """Every visible label holding markup shows it as plain text; how many held the name."""
    holding = 0
    for window in visible_windows():
        title = window.windowHandle().title() if window.windowHandle() else window.windowTitle()
        if "ALERT" in window.windowTitle():
            assert title == window.windowTitle().replace("[*][*]", "[*]"), where
            assert HOSTILE in title, (where, title)
        for label in window.findChildren(QLabel):
            if "<" in label.text() or "ALERT" in label.text():
                assert label.textFormat() is Qt.TextFormat.PlainText, (where, label.text())
            holding += HOSTILE in label.text()
        assert "ALERT" not in window.toolTip() or not QtGui.Qt.mightBeRichText(window.toolTip())
    return holding


def tooltip_text(index: QModelIndex) -> str:
    """What a tooltip shows: Qt renders it as rich text, so render it the same way."""
    tip = index.data(Qt.ItemDataRole.ToolTipRole)
    assert isinstance(tip, str)
    doc = QTextDocument()
    doc.setHtml(tip) if QtGui.Qt.mightBeRichText(tip) else doc.setPlainText(tip)
    return doc.toPlainText()


async def test_a_hostile_display_name_is_plain_text_everywhere(isolated_home: Path) -> None:
    alice, bob = make_ui("alice"), make_ui("bob")
    try:
        assert not await alice.controller.start()
        assert not await bob.controller.start()
        await register(alice, "alice", HOSTILE)  # the server takes it: nothing invisible in it
        await register(bob, "bob", "Bob")
        assert assert_no_markup_shown("alice's home") >= 1

        # Alice finds bob and asks; bob accepts (her request and contact row use one model).
        await befriend(alice, bob)
        bob_home, home = bob.main.home, alice.main.home
        await until(lambda: row_of(bob_home.contacts, "alice").isValid(), what="alice a contact")
        contact = row_of(bob_home.contacts, "alice")
        assert contact.data(Qt.ItemDataRole.DisplayRole) == HOSTILE
        assert tooltip_text(contact) == f"{HOSTILE} (@alice)"
        assert assert_no_markup_shown("bob's contacts") >= 1
        await until(
            lambda: (
                (c := alice.controller.contacts.contact("bob")) is not None
                and c.presence == "online"
            ),
            what="bob online for alice",
        )

        # Alice calls: bob's incoming-call window names her literally.
        home.tabs.setCurrentIndex(0)
        select(home.contacts, "bob")
        click(home.audio_button)
        await until(lambda: bob.incoming.isVisible(), what="bob's incoming call window")
        assert bob.incoming.caller.text() == HOSTILE
        assert bob.incoming.caller.textFormat() is Qt.TextFormat.PlainText
        assert assert_no_markup_shown("ringing") >= 2  # alice's own name, bob's incoming window
        click(bob.incoming.answer_audio)
        await until(lambda: bob.calls, what="bob's call window")
        bob_call = bob.calls[0]
        assert bob_call.windowTitle() == plain_title(f"{HOSTILE} — Parley")
        await until(lambda: bob_call.session.state is CallState.CONNECTED, what="connected")
        alice_call = alice.calls[0]

        # Chat in HTML arrives as the characters sent, in a view that draws plain text.
        click(alice_call.chat_button)
        type_into(alice_call.chat_input, CHAT)
        click(alice_call.chat_send)
        await until(lambda: bob_call.chat_model.rowCount() == 1, what="the chat message")
        line = bob_call.chat_model.index(0, 0)
        assert line.data(Qt.ItemDataRole.DisplayRole) == CHAT
        assert line.data(Qt.ItemDataRole.ToolTipRole) is None
        assert type(bob_call.chat_view.itemDelegate()).__name__ == "QStyledItemDelegate"

        # Alice mutes: bob's stage names her literally.
        click(alice_call.mic_button)
        await until(lambda: "muted" in bob_call.peer_state.text(), what="the muted note")
        assert bob_call.peer_state.text().startswith(HOSTILE)
        assert assert_no_markup_shown("in the call") >= 2

        click(bob_call.hang_up_button)
        await until(lambda: bob_call.status.text().startswith("Call ended"), what="the end")
        assert assert_no_markup_shown("the call ended") >= 1
        await until(lambda: not alice.calls and not bob.calls, what="the call windows to close")
        await until(lambda: bob.controller.history.rowCount() == 1, what="bob's history")
        assert bob.controller.history.index(0, 0).data(Qt.ItemDataRole.DisplayRole) == HOSTILE
        assert assert_no_markup_shown("history") >= 1
        # The tray (none offscreen) would show an escaped body, which notification servers
        # render back to the characters typed.
        assert "<" not in plain_notification(f"{HOSTILE} is calling you")
    finally:
        await bob.shutdown()
        await alice.shutdown()
