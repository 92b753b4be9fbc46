"""Screen sharing from the meeting window, on Xvfb: the picker, the share reaching the other
participant's window (the screen large, the tiles in a strip), the window leaving the shared
screen (with a window manager), stopping; and the meeting window's other controls there:
camera off, the devices menu, the quality figures."""

from __future__ import annotations

import pytest

from gui.app.meeting_window import MeetingWindow
from gui.app.sharing import SHARE_NOTE
from gui.core.meeting_machine import MeetingState
from tests.screen.helpers import until
from tests.screen.test_app_share import contacts_signed_in, make_ui, window_manager

pytestmark = pytest.mark.usefixtures("qt_app")


async def share_whole_screen(window: MeetingWindow) -> None:
    """Share screen 0 through the button and the picker, as a person would."""
    window.screen_button.click()
    picker = window.picker
    assert picker is not None
    await until(lambda: picker.isVisible() and picker.model.rowCount() > 0, 5, "sources")
    picker.share.click()
    await until(lambda: window.sharing_screen, 5, "sharing")


@pytest.mark.usefixtures("isolated_home")
async def test_share_and_controls_in_the_meeting_window() -> None:
    ada, grace = make_ui("ada"), make_ui("grace")
    try:
        await contacts_signed_in(ada, grace)
        await until(lambda: ada.controller.contacts.contact("grace") is not None, 10, "contact")
        ada.controller.start_meeting(["grace"])
        invitation = grace.meeting_invitation
        await until(lambda: invitation.isVisible(), 10, "the invitation")
        invitation.join_video.click()
        await until(lambda: ada.meetings and grace.meetings, 10, "the meeting windows")
        mine, theirs = ada.meetings[0], grace.meetings[0]
        for window in (mine, theirs):
            window.show()
            window.resize(1000, 640)
        await until(lambda: mine.session.state is MeetingState.JOINED, 15, "ada in")
        await until(lambda: "ada" in theirs.tile_views, 15, "ada's tile at grace's")
        await until(lambda: theirs.tile_views["ada"].video.frames_given > 5, 30, "ada's video")
        await until(lambda: mine.screen_button.isEnabled(), 5, "the share button")

        # The whole screen: grace sees it large with the tiles below; ada's window says
        # where it is (no window manager here: nothing minimises).
        await share_whole_screen(mine)
        assert mine.sharing_note.isVisible()
        await until(lambda: mine.sharing_note.text() == SHARE_NOTE["shown"], 5, "the note")
        await until(
            lambda: (
                theirs.screen_owner == "ada"
                and theirs.screen_view.isVisible()
                and theirs.screen_view.frames_given > 5
            ),
            20,
            "ada's screen, large, at grace's",
        )
        screen = theirs.screen_view.geometry()
        assert all(v.y() >= screen.bottom() for v in theirs.tile_views.values())
        mine.screen_button.click()  # stop
        await until(lambda: not theirs.screen_view.isVisible(), 10, "the grid back")
        assert not mine.sharing_screen and not mine.sharing_note.isVisible()

        # With a window manager the meeting window leaves the shared screen, and comes back.
        with window_manager():
            handle = mine.windowHandle()
            await until(lambda: handle.frameMargins().top() > 0, 10, "openbox to frame it")
            await share_whole_screen(mine)
            await until(lambda: mine.sharing_note.text() == SHARE_NOTE["minimised"], 5, "note")
            assert mine.isMinimized() and not handle.isExposed()
            mine.screen_button.click()  # stop
            await until(lambda: handle.isExposed(), 5, "the window back")

        # Camera off: grace's tile of ada shows her avatar; on again: her video.
        mine.camera_button.click()
        ada_there = theirs.tile_views["ada"]
        await until(lambda: ada_there.avatar.isVisible(), 10, "ada's avatar at grace's")
        assert "Camera off" in mine.model.tile("ada").status  # type: ignore[union-attr]
        mine.camera_button.click()
        frames = ada_there.video.frames_given
        await until(lambda: ada_there.video.frames_given > frames + 5, 15, "ada's video back")
        assert ada_there.video.isVisible()

        # The devices menu lists what there is to choose; the quality says each person's.
        mine.devices_menu.aboutToShow.emit()
        assert [a.text() for a in mine.devices_menu.actions() if a.text()]
        await until(lambda: "grace:" in mine.quality.toolTip(), 15, "grace's quality")

        mine.leave_button.click()
        await until(lambda: not ada.meetings, 10, "ada's window to close")
        theirs.leave_button.click()
        await until(lambda: not grace.meetings, 10, "grace's window to close")
    finally:
        await grace.shutdown()
        await ada.shutdown()
