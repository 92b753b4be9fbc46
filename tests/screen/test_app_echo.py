"""The Echo Test in the call window returns a shared screen, so a user can check a share alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gui.core.call_machine import CallState
from tests.screen.helpers import until
from tests.screen.test_app_share import make_ui

pytestmark = pytest.mark.usefixtures("qt_app")


async def test_the_echo_test_shows_the_shared_screen_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, sub in (("HOME", ""), ("XDG_CONFIG_HOME", "c"), ("XDG_DATA_HOME", "d")):
        monkeypatch.setenv(key, str(tmp_path / sub))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "r"))
    os.makedirs(tmp_path / "r", mode=0o700)
    ada = make_ui("ada")
    try:
        await ada.controller.start()
        await ada.controller.sign_in(None, "ada", "correct horse", register=True)
        ada.controller.place_call("echo", video=True)
        await until(lambda: ada.calls, 10, "the call window")
        window = ada.calls[0]
        await until(lambda: window.session.state is CallState.CONNECTED, 15, "connected")
        await until(lambda: window.screen_button.isEnabled(), 5, "the share button")
        window.screen_button.click()
        picker = window.picker
        assert picker is not None
        await until(lambda: picker.isVisible() and picker.model.rowCount() > 0, 5, "sources")
        picker.share.click()
        await until(lambda: window.session.sharing_screen, 5, "sharing")
        await until(
            lambda: window.shared_screen.isVisible() and window.shared_screen.frames_given > 5,
            15,
            "the returned screen",
        )
        assert window.shared_screen.width() > window.remote.width()  # the screen large

        window.screen_button.click()  # stop: the layout goes back to the camera
        await until(lambda: not window.shared_screen.isVisible(), 10, "the camera layout")
        window.hang_up_button.click()
        await until(lambda: not ada.calls, 10, "the window to close")
    finally:
        await ada.shutdown()
