"""Screen sharing through the call window, on Xvfb: the picker, the share, the other window's
layout (shared screen large, camera small, swappable), stopping, and what the note says about
the window (with no window manager nothing minimises; with openbox it does)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication

from gui.app.call_window import CallWindow
from gui.app.sharing import SHARE_NOTE
from gui.app.ui import ParleyUi
from gui.core.call_machine import CallState
from tests.screen.helpers import until

pytestmark = pytest.mark.usefixtures("qt_app")


def make_ui(name: str) -> ParleyUi:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    ui = ParleyUi(app, name, None)
    ui.profile.settings.synthetic_media = True
    ui.profile.settings.embedded_port = 0
    ui.profile.settings.keep_signed_in = False
    return ui


async def contacts_signed_in(ada: ParleyUi, grace: ParleyUi) -> None:
    """Both apps start their built-in servers, sign up on ada's, and are contacts."""
    await ada.controller.start()
    await grace.controller.start()
    await ada.controller.sign_in(None, "ada", "correct horse", register=True)
    await grace.controller.sign_in(None, "grace", "correct horse", register=True)
    await ada.controller.add_contact("grace")
    await grace.controller.accept_contact("ada")


@contextlib.contextmanager
def window_manager() -> Iterator[None]:
    """openbox on this X server while the block runs (it frames, and minimises, windows)."""
    if shutil.which("openbox") is None:
        pytest.fail("this test needs a window manager: apt-get install openbox")
    wm = subprocess.Popen(["openbox"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        wm.terminate()
        wm.wait(10)


async def share_whole_screen(window: CallWindow) -> None:
    """Share screen 0 through the button and the picker, as a person would."""
    window.screen_button.click()
    picker = window.picker
    assert picker is not None
    await until(lambda: picker.isVisible() and picker.model.rowCount() > 0, 5, "sources")
    assert not picker.model.index(0, 0).data(1).isNull()  # a live thumbnail
    picker.share.click()
    await until(lambda: window.session.sharing_screen, 5, "sharing")


@pytest.mark.usefixtures("isolated_home")
async def test_share_from_the_call_window() -> None:
    ada, grace = make_ui("ada"), make_ui("grace")
    try:
        await contacts_signed_in(ada, grace)
        ada.controller.place_call("grace", video=True)
        await until(lambda: grace.incoming.isVisible(), 10, "the incoming call")
        grace.incoming.answer_video.click()
        await until(lambda: ada.calls and grace.calls, 10, "the call windows")
        mine, theirs = ada.calls[0], grace.calls[0]
        await until(lambda: mine.session.state is CallState.CONNECTED, 15, "connected")
        await until(lambda: mine.screen_button.isEnabled(), 5, "the share button")

        await share_whole_screen(mine)
        assert mine.sharing_note.isVisible()
        await until(lambda: mine.isMinimized(), 5, "the minimise request (no hall of mirrors)")
        # No window manager here: the window stays on the screen, and the note says so.
        await until(lambda: mine.sharing_note.text() == SHARE_NOTE["shown"], 5, "the note")
        assert mine.windowHandle().isExposed()
        await until(
            lambda: theirs.shared_screen.isVisible() and theirs.shared_screen.frames_given > 5,
            15,
            "the shared screen",
        )
        # Shared screen large, camera small; a click swaps them.
        assert theirs.shared_screen.width() > theirs.remote.width()
        theirs.remote.clicked.emit()
        assert theirs.remote.width() > theirs.shared_screen.width()
        frames = theirs.remote.frames_given
        await until(lambda: theirs.remote.frames_given > frames + 5, 5, "the camera going on")

        mine.screen_button.click()  # stop
        await until(lambda: not theirs.shared_screen.isVisible(), 10, "the layout back")
        assert not mine.session.sharing_screen and not mine.isMinimized()

        # With a window manager the window does leave the screen.
        with window_manager():
            handle = mine.windowHandle()
            await until(lambda: handle.frameMargins().top() > 0, 10, "openbox to frame it")
            await share_whole_screen(mine)
            await until(lambda: mine.sharing_note.text() == SHARE_NOTE["minimised"], 5, "note")
            assert not mine.windowHandle().isExposed()
            mine.screen_button.click()  # stop (the shortcut's way: the window is minimised)
            await until(lambda: mine.windowHandle().isExposed(), 5, "the window back")
        mine.hang_up_button.click()
        await until(lambda: not ada.calls and not grace.calls, 10, "the windows to close")
    finally:
        await grace.shutdown()
        await ada.shutdown()
