"""The settings window: live preview, ICE servers checked before saving, theme applied."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtMultimedia import QMediaDevices
from PySide6.QtWidgets import QApplication

from gui.app.resources import stylesheet
from gui.app.settings_dialog import format_ice_servers, parse_ice_servers
from gui.app.ui import ParleyUi
from gui.core.profile import IceServerSetting, Profile
from tests.ui.helpers import until


def test_ice_server_lines() -> None:
    servers = parse_ice_servers("stun:stun.example.org:3478\n\nturn:t.example.org u p\n")
    assert servers == [
        IceServerSetting(["stun:stun.example.org:3478"]),
        IceServerSetting(["turn:t.example.org"], "u", "p"),
    ]
    assert parse_ice_servers(format_ice_servers(servers)) == servers
    with pytest.raises(ValueError, match="line 1"):
        parse_ice_servers("http://nope")
    with pytest.raises(ValueError, match="needs a username"):
        parse_ice_servers("turn:t.example.org")


async def test_preview_save_and_theme(isolated_home: Path) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    ui = ParleyUi(app, "settings", None)
    try:
        ui.open_settings()
        dialog = ui.settings_dialog
        assert dialog is not None and dialog.isVisible()
        dialog.synthetic.setChecked(True)  # no camera here: the test pattern previews
        await until(lambda: dialog.preview.frames_given > 3, what="the preview")
        await until(lambda: dialog.level.value() > 0, what="the level meter")
        dialog.ice.setPlainText("turn:turn.example.org:3478")
        # "Play a test sound" only where there is an output (none, unless a sound server runs).
        assert dialog.test_sound.isEnabled() == bool(QMediaDevices.audioOutputs())
        dialog.save()
        assert dialog.isVisible() and dialog.error.isVisible()  # refused, nothing lost
        assert "username" in dialog.error.text()
        dialog.ice.setPlainText("stun:stun.example.org:3478")
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        dialog.save()
        assert not dialog.isVisible()
        assert dialog.preview.frame is None  # the preview's devices are closed
        saved = Profile("settings").settings
        assert saved.theme == "dark" and saved.synthetic_media
        assert saved.ice_servers == [IceServerSetting(["stun:stun.example.org:3478"])]
        assert app.styleSheet() == stylesheet("dark")
    finally:
        await ui.shutdown()
