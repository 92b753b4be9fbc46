"""The meeting window's participant panel: who is in, who is invited, and "Invite…" for the
contacts not in it yet. Offscreen, the app's built-in server, real peers
(``test_meeting_window.py``'s fixtures)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from gui.app.models import Role
from gui.app.ui import ParleyUi
from tests.ui.helpers import click, until
from tests.ui.test_meeting_window import CYD, Peer, ada, close, peers, rows

pytestmark = pytest.mark.slow
__all__ = ["ada", "peers"]  # the fixtures


async def test_invite_from_the_panel(ada: ParleyUi, peers: dict[str, Peer]) -> None:
    bob, cyd = peers["bob"], peers["cyd"]
    ada.controller.start_meeting(["bob"])
    await until(lambda: ada.meetings, what="ada's meeting window")
    window = ada.meetings[0]
    window.resize(1000, 640)
    await bob.accept()
    await until(lambda: "bob" in window.tile_views, what="bob's tile")

    click(window.people_button)
    assert window.people_panel.isVisible()
    names = [window.model.index(r, 0).data(Role.USERNAME) for r in range(window.model.rowCount())]
    assert names == ["ada", "bob"] and window.people_title.text() == "People (2)"
    assert "Host" in window.model.index(0, 0).data(Role.SUBTITLE)

    # Only contacts not in the meeting can be chosen.
    click(window.invite_button)
    picker = window.picker_dialog
    assert picker is not None
    await until(picker.isVisible, what="the contact picker")
    choices = [
        picker.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(picker.list.count())
    ]
    assert choices == ["cyd"]
    picker.check("cyd")
    click(picker.ok)
    await until(lambda: window.invited_label.isVisible(), what="cyd shown as invited")
    assert window.invited_label.text() == f"Invited: {CYD}"
    assert window.invited_label.textFormat() == Qt.TextFormat.PlainText

    # Cyd gets the invitation (from ada, with bob in it) and joins: three tiles in a 2x2 grid.
    await cyd.accept()
    await until(lambda: "cyd" in window.tile_views, what="cyd's tile")
    await until(lambda: not window.invited_label.isVisible(), what="no one invited any more")
    await until(lambda: len({y for y, _ in rows(window)}) == 2, what="a second row")
    assert window.people_title.text() == "People (3)"
    click(window.leave_button)
    await until(lambda: not ada.meetings, what="the window to close")
    await close(peers)
