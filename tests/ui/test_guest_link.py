"""The app's "Copy guest link" (main menu, meeting window): a link on the clipboard that works."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

from PySide6.QtGui import QGuiApplication

from tests.ui.helpers import until
from tests.ui.test_app_states import signed_in_with_friend
from tests.wire import WireClient


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def test_copy_guest_link_puts_a_working_link_on_the_clipboard(
    isolated_home: Path, server
) -> None:
    ui, alice = await signed_in_with_friend(server, "bob")
    clipboard = QGuiApplication.clipboard()
    clipboard.setText("")
    try:
        assert ui.main.guest_link_action in ui.main.home.menu.actions()
        ui.main.guest_link_action.trigger()
        await until(lambda: clipboard.text().startswith("http://"), what="a link on the clipboard")
        url = clipboard.text()
        base = server.url.replace("ws://", "http://").removesuffix("/ws")
        assert url.startswith(base + "/g/") and len(url) == len(base) + 3 + 32
        status, page = await asyncio.to_thread(fetch, url)
        assert status == 200 and "Join a call with bob" in page
        await until(
            lambda: "Guest link copied" in ui.main.status.currentMessage(), what="the notice"
        )
        assert url not in ui.main.status.currentMessage()  # the code is not shown on screen
        # The link works: a guest who opens it rings bob's app.
        guest = await WireClient.open(server.url)
        code = url.rsplit("/", 1)[1]
        media = {"audio": True, "video": False}
        await guest.request("guest.join", code=code, display_name="Ann", media=media)
        await until(lambda: ui.incoming.isVisible(), what="bob's incoming call window")
        assert ui.incoming.caller.text() == "Guest: Ann"
        await guest.close()
        await until(lambda: not ui.incoming.isVisible(), what="the ringing to stop")
    finally:
        await ui.shutdown()
        await alice.close()


async def test_a_meeting_window_copies_a_guest_link_and_removes_the_guest(
    isolated_home: Path,
) -> None:
    from tests.ui.test_app_flow import make_ui, register

    ui = make_ui("ada")
    guest: WireClient | None = None
    try:
        assert not await ui.controller.start()
        await register(ui, "ada", "Ada")
        ui.controller.start_meeting([])
        await until(lambda: ui.meetings, what="ada's meeting window")
        window = ui.meetings[0]
        await until(lambda: window.session.state.value == "joined", what="ada in her meeting")
        clipboard = QGuiApplication.clipboard()
        clipboard.setText("")
        window.guests.copy_button.click()
        await until(lambda: "/g/" in clipboard.text(), what="a meeting link on the clipboard")
        url = ui.controller.default_server
        assert url is not None
        guest = await WireClient.open(url)
        code = clipboard.text().rsplit("/", 1)[1]
        media = {"audio": False, "video": False}
        reply = await guest.request("guest.join", code=code, display_name="Ann", media=media)
        name = reply["user"]["username"]
        assert reply["meeting"]["meeting_id"] == window.session.meeting_id
        await until(lambda: window.model.row_of(name) >= 0, what="the guest in the list")
        index = window.model.index(window.model.row_of(name), 0)
        assert index.data() == "Guest: Ann"
        assert not window.guests.remove_button.isEnabled()
        window.people_view.setCurrentIndex(index)
        assert window.guests.remove_button.isEnabled()
        window.guests.remove_button.click()
        removed = await guest.next_event("guest.removed")
        assert removed["reason"] == "removed"
        await until(lambda: window.model.row_of(name) < 0, what="the guest gone from the list")
    finally:
        if guest is not None:
            await guest.close()
        await ui.shutdown()
