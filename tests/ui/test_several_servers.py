"""The app with several servers of one service (two real in-process servers on one database):
typed one per line in the settings (checked, with the bad line named), used in turn when one
is gone, and the last good one tried first at the next start, with the saved session."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from gui.app.main import build_parser
from gui.core.profile import Profile
from gui.core.signaling_client import LinkState
from tests.conftest import ServerFactory
from tests.ui.helpers import click, until
from tests.ui.test_app_states import make_ui, sign_in


def type_lines(field: object, *lines: str) -> None:
    """Replace a text box's lines by typing, Enter between them."""
    from PySide6.QtWidgets import QPlainTextEdit

    assert isinstance(field, QPlainTextEdit)
    field.setFocus()
    field.selectAll()
    QTest.keyClick(field, Qt.Key.Key_Backspace)
    for number, line in enumerate(lines):
        if number:
            QTest.keyClick(field, Qt.Key.Key_Return)
        QTest.keyClicks(field, line)


def test_parley_takes_server_repeated() -> None:
    args = build_parser().parse_args(["--server", "127.0.0.1:1", "--server", "wss://b:2/ws"])
    assert args.server == ["ws://127.0.0.1:1/ws", "wss://b:2/ws"]
    assert build_parser().parse_args([]).server is None


async def test_two_servers_from_the_settings_and_moving_to_the_other(
    isolated_home: Path, make_server: ServerFactory
) -> None:
    first = await make_server()
    second = await make_server()  # the same database file: one service
    ui = make_ui("several")
    ui.profile.settings.keep_signed_in = True
    try:
        ui.open_settings()
        dialog = ui.settings_dialog
        assert dialog is not None
        type_lines(dialog.server, first.url, "http://example.org/ws")
        dialog.save()
        assert dialog.isVisible() and dialog.error.isVisible()  # refused, nothing lost
        assert dialog.error.text() == (
            "Line 2: 'http://example.org/ws' is not a ws:// or wss:// address."
        )
        type_lines(dialog.server, first.url, "", second.url.removesuffix("/ws"))
        dialog.save()
        assert not dialog.isVisible()
        assert Profile("several").settings.server_urls == [first.url, second.url]

        click(ui.main.sign_in.switch)  # create the account, the server field left empty
        await sign_in(ui, "sevi", "correct horse")
        await until(lambda: ui.main.stack.currentWidget() is ui.main.home, what="home")
        controller = ui.controller
        assert controller.client is not None and controller.client.url == first.url

        await first.stop()  # gone: the app is online again through the other by itself
        await until(
            lambda: (
                controller.client is not None
                and controller.client.url == second.url
                and controller.client.state is LinkState.ONLINE
            ),
            timeout=30,
            what="online through the second server",
        )
        assert ui.main.stack.currentWidget() is ui.main.home
        saved = ui.profile.credentials().load()
        assert saved is not None and saved.server_url == second.url  # tried first next time
    finally:
        await ui.shutdown()

    # Both up again; the next start signs in with the saved token through the last good one.
    await make_server(port=first.port)
    again = make_ui("several")
    again.profile.settings.keep_signed_in = True
    try:
        assert await again.controller.start()
        client = again.controller.client
        assert client is not None and client.url == second.url
        assert again.controller.user is not None and again.controller.user["username"] == "sevi"
    finally:
        await again.shutdown()
