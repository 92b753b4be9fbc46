"""What the windows show when things do not go to plan: wrong password, no server, a lost
connection, a declined call, a missed call. The other person is a raw protocol client."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication

from gui.app.models import Role
from gui.app.ui import ParleyUi
from gui.core.call_machine import CallState
from tests.tcp_proxy import TcpProxy
from tests.ui.helpers import click, row_of, select, type_into, until
from tests.wire import WireClient, new_call_id

AV = {"audio": True, "video": True}


def make_ui(name: str, server: str | None = None) -> ParleyUi:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    ui = ParleyUi(app, name, server)
    ui.profile.settings.synthetic_media = True
    ui.profile.settings.embedded_port = 0
    ui.profile.settings.keep_signed_in = False
    ui.main.show()
    return ui


async def sign_in(ui: ParleyUi, username: str, password: str, server: str = "") -> None:
    form = ui.main.sign_in
    type_into(form.server, server)
    type_into(form.username, username)
    type_into(form.password, password)
    click(form.submit)


async def signed_in_with_friend(server, name: str = "bob") -> tuple[ParleyUi, WireClient]:
    """A UI signed in as ``name`` with a raw client ``alice`` as an accepted contact."""
    alice = await WireClient.open(server.url)
    await alice.register("alice", display_name="Alice")
    helper = await WireClient.open(server.url)
    await helper.register(name)
    await alice.request("contacts.request", username=name)
    await helper.request("contacts.accept", username="alice")
    await helper.request("logout")
    await helper.close()
    ui = make_ui(name, server.url)
    await sign_in(ui, name, "correct horse")
    await until(lambda: ui.main.stack.currentWidget() is ui.main.home, what="home")
    alice.drain()
    return ui, alice


async def test_wrong_password_says_so(isolated_home: Path, server) -> None:
    client = await WireClient.open(server.url)
    await client.register("carol")
    ui = make_ui("carol", server.url)
    try:
        await sign_in(ui, "carol", "not the password")
        error = ui.main.sign_in.error
        await until(lambda: error.isVisible(), what="the error")
        assert error.text() == "Wrong username or password."
        assert ui.main.sign_in.submit.isEnabled()  # nothing froze
        await sign_in(ui, "carol", "correct horse")
        await until(lambda: ui.main.stack.currentWidget() is ui.main.home, what="home")
    finally:
        await ui.shutdown()
        await client.close()


async def test_the_heading_follows_sign_in_or_create_account(isolated_home: Path) -> None:
    ui = make_ui("gina")
    try:
        form = ui.main.sign_in
        assert (form.title.text(), form.subtitle.text()) == (
            "Welcome to Parley",
            "Sign in to call your contacts.",
        )
        click(form.switch)
        assert form.title.text() == "Create your account"
        assert "Sign in" not in form.subtitle.text() and form.subtitle.text()
        assert form.submit.text() == "Create account"
        click(form.switch)
        assert form.subtitle.text() == "Sign in to call your contacts."
    finally:
        await ui.shutdown()


async def test_unreachable_server_says_so(isolated_home: Path) -> None:
    ui = make_ui("dave")
    try:
        await sign_in(ui, "dave", "whatever1", server="ws://127.0.0.1:9/ws")
        error = ui.main.sign_in.error
        await until(lambda: error.isVisible(), what="the error")
        assert "Cannot reach the server" in error.text()
        assert ui.main.sign_in.username.isEnabled()
    finally:
        await ui.shutdown()


async def test_a_taken_username_says_so(isolated_home: Path, server) -> None:
    client = await WireClient.open(server.url)
    await client.register("erin")
    ui = make_ui("erin2", server.url)
    try:
        form = ui.main.sign_in
        click(form.switch)
        await sign_in(ui, "erin", "correct horse")
        await until(lambda: form.error.isVisible(), what="the error")
        assert "taken" in form.error.text()
    finally:
        await ui.shutdown()
        await client.close()


async def test_banner_while_the_server_is_lost_and_back(isolated_home: Path, server) -> None:
    proxy = TcpProxy(server.port)
    await proxy.start()
    client = await WireClient.open(server.url)
    await client.register("frank")
    ui = make_ui("frank")
    try:
        await sign_in(ui, "frank", "correct horse", server=proxy.url())
        await until(lambda: ui.main.stack.currentWidget() is ui.main.home, what="home")
        banner = ui.main.home.banner
        assert not banner.isVisible()
        proxy.accepting = False
        proxy.cut()
        await until(lambda: banner.isVisible(), what="the banner")
        assert "Reconnecting" in banner.text()
        proxy.accepting = True
        await until(lambda: not banner.isVisible(), timeout=40, what="the banner to go")
        assert ui.controller.contacts.rowCount() == 1  # reloaded: the Echo Test
    finally:
        await ui.shutdown()
        await client.close()
        await proxy.stop()


async def test_declining_in_the_window_tells_the_caller(isolated_home: Path, server) -> None:
    ui, alice = await signed_in_with_friend(server)
    try:
        call_id = new_call_id()
        await alice.request("call.invite", to="bob", call_id=call_id, media=AV)
        await until(lambda: ui.incoming.isVisible(), what="the incoming window")
        assert ui.incoming.what.text().endswith("video call")
        click(ui.incoming.decline)
        ended = await alice.next_event("call.ended")
        assert ended["reason"] == "declined"
        assert not ui.incoming.isVisible()
        await until(lambda: ui.controller.history.rowCount() == 1, what="history")
        assert ui.controller.history.index(0, 0).data(Role.MISSED) is False
    finally:
        await ui.shutdown()
        await alice.close()


async def test_a_call_nobody_answered_is_a_missed_call(isolated_home: Path, server) -> None:
    ui, alice = await signed_in_with_friend(server)
    try:
        call_id = new_call_id()
        await alice.request("call.invite", to="bob", call_id=call_id, media=AV)
        await until(lambda: ui.incoming.isVisible(), what="the incoming window")
        await alice.request("call.cancel", call_id=call_id)
        await until(lambda: not ui.incoming.isVisible(), what="the ringing to stop")
        await until(lambda: ui.controller.history.rowCount() == 1, what="history")
        index = ui.controller.history.index(0, 0)
        assert index.data(Role.MISSED) is True
        assert index.data(Role.SUBTITLE).startswith("Missed call")
        assert ui.main.home.tabs.tabText(2) == "History (1 missed)"
    finally:
        await ui.shutdown()
        await alice.close()


async def test_a_declined_outgoing_call_says_so_and_closes(isolated_home: Path, server) -> None:
    ui, alice = await signed_in_with_friend(server)
    try:
        home = ui.main.home
        select(home.contacts, "alice")
        click(home.audio_button)
        await until(lambda: ui.calls, what="the call window")
        window = ui.calls[0]
        incoming = await alice.next_event("call.incoming")
        assert incoming["media"] == {"audio": True, "video": False}
        assert window.status.text() == "Calling Alice…"
        await alice.request("call.decline", call_id=incoming["call_id"])
        await until(lambda: "declined" in window.status.text(), what="the declined note")
        await until(lambda: not ui.calls, what="the window to close")
    finally:
        await ui.shutdown()
        await alice.close()


async def test_a_video_call_without_a_camera_says_so_and_offers_the_pattern(
    isolated_home: Path, server
) -> None:
    """These machines have no camera (QMediaDevices.videoInputs() is empty)."""
    ui = make_ui("hana", server.url)
    ui.profile.settings.synthetic_media = False
    try:
        click(ui.main.sign_in.switch)
        await sign_in(ui, "hana", "correct horse")
        home = ui.main.home
        await until(lambda: row_of(home.contacts, "echo").isValid(), what="the Echo Test")
        select(home.contacts, "echo")
        click(home.video_button)
        await until(lambda: ui.calls, what="the call window")
        window = ui.calls[0]
        await until(lambda: window.session.state is CallState.CONNECTED, what="connected")
        assert window.camera_note.isVisible() and not window.self_view.isVisible()
        assert window.camera_note_text.text() == "No camera found"
        assert window.camera_note.geometry().intersects(window.self_view.geometry())

        # The note's button opens the settings on the page with the test pattern.
        click(window.camera_settings)
        dialog = ui.settings_dialog
        assert dialog is not None and dialog.isVisible()
        assert dialog.tabs.currentWidget().isAncestorOf(dialog.synthetic)
        click(dialog.synthetic)
        dialog.save()
        # The call sends the pattern from now on: the note goes, the self-view shows it.
        await until(lambda: window.self_view.frames_given > 5, what="the pattern in the self-view")
        assert not window.camera_note.isVisible() and window.self_view.isVisible()
        assert window.camera_button.isEnabled()

        # The camera goes away mid-call (AppMedia's answer to Qt reporting it lost).
        ui.media._camera_lost(window.session.media.camera, "unplugged")
        await until(lambda: window.camera_note.isVisible(), what="the note again")
        assert window.camera_note_text.text() == "Camera disconnected"
        assert not window.self_view.isVisible()
        click(window.hang_up_button)
        await until(lambda: not ui.calls, what="the window to close")

        # With the test pattern chosen, a new video call has nothing to say about cameras.
        select(home.contacts, "echo")
        click(home.video_button)
        await until(lambda: ui.calls, what="the second call window")
        window = ui.calls[0]
        await until(lambda: window.self_view.frames_given > 0, what="the self-view")
        assert not window.camera_note.isVisible()
        click(window.hang_up_button)
        await until(lambda: not ui.calls, what="the second window to close")

        # Nor does an audio call without a camera.
        ui.profile.settings.synthetic_media = False
        click(home.audio_button)
        await until(lambda: ui.calls, what="the audio call window")
        window = ui.calls[0]
        await until(lambda: window.session.state is CallState.CONNECTED, what="connected")
        assert not window.camera_note.isVisible()
        click(window.hang_up_button)
        await until(lambda: not ui.calls, what="the audio call window to close")
    finally:
        await ui.shutdown()
