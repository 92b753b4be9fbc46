"""The meeting window's participant panel: who is in, who is invited, and "Invite…" for the
contacts not in it yet. Offscreen, the app's built-in server, real peers
(``test_meeting_window.py``'s fixtures)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from gui.app.meeting_model import Tile
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


async def test_the_grid_steps_as_people_come_and_go(ada: ParleyUi) -> None:
    """1, 2, 2x2, 3x3 and 4x4, up and down again. More people than a mesh admits need a media
    server, and sixteen real participants are more than this machine runs in a test: the
    rows are put in the window's model, which the tiles follow whatever fills it."""
    ada.controller.start_meeting([])
    await until(lambda: ada.meetings, what="ada's meeting window")
    window = ada.meetings[0]
    window.resize(1200, 800)
    window.show()
    await until(lambda: list(window.tile_views) == ["ada"], what="ada's own tile")
    me = window.model.tile("ada")
    assert me is not None
    others = [Tile(f"user{n}", f"User {n}") for n in range(1, 16)]

    def shape() -> tuple[int, int]:
        """(columns, rows): the most tiles on one row (a last row is centred), the rows."""
        tops = [y for y, _ in rows(window)]
        return max(tops.count(y) for y in tops), len(set(tops))

    expected = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (2, 2), 5: (3, 2), 9: (3, 3), 10: (4, 3)}
    expected |= {13: (4, 4), 16: (4, 4)}
    for count in [*range(1, 17), *range(15, 0, -1)]:
        window.model.set_tiles([me, *others[: count - 1]])
        assert len(window.tile_views) == count
        if count in expected:
            assert shape() == expected[count], count
        sizes = {(v.width(), v.height()) for v in window.tile_views.values()}
        assert len(sizes) == 1  # every cell the same size
    click(window.leave_button)
    await until(lambda: not ada.meetings, what="the window to close")
