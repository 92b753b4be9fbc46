"""Settings → Account in the app, against a real server: block and unblock, a password change
that signs the other session out (and the app says why), and deleting the account."""

from __future__ import annotations

from pathlib import Path

from tests.ui.helpers import until
from tests.ui.test_app_states import sign_in, signed_in_with_friend
from tests.wire import WireClient


async def test_account_page_blocks_changes_password_and_deletes(
    isolated_home: Path, server
) -> None:
    ui, alice = await signed_in_with_friend(server, "bob")
    phone: WireClient | None = None
    try:
        ui.open_settings()
        dialog = ui.settings_dialog
        assert dialog is not None
        page = dialog.account
        dialog.tabs.setCurrentWidget(page)
        # Block alice: she can no longer ask bob; the list shows her; unblock lifts it.
        page.block_name.setText("alice")
        page.block.click()
        await until(lambda: page.blocked.count() == 1, what="alice in the blocked list")
        assert page.blocked.item(0).text() == "alice"
        refused = await alice.call("contacts.request", username="bob")
        assert refused["code"] == "forbidden"
        page.blocked.setCurrentRow(0)
        page.unblock.click()
        await until(lambda: page.blocked.count() == 0, what="the block lifted")
        await alice.request("contacts.request", username="bob")

        # A password change from another session signs the app out, and it says why.
        phone = await WireClient.open(server.url)
        await phone.login("bob", "correct horse")
        await phone.request(
            "account.password", password="correct horse", new_password="battery staple"
        )
        await until(lambda: ui.main.stack.currentWidget() is ui.main.sign_in, what="sign-in")
        error = ui.main.sign_in.error
        await until(lambda: error.isVisible(), what="the reason")
        assert "password was changed" in error.text()

        # Signed in again with the new password: a wrong one is refused, then the account goes.
        await sign_in(ui, "bob", "battery staple")
        await until(lambda: ui.main.stack.currentWidget() is ui.main.home, what="home again")
        ui.open_settings()
        assert ui.settings_dialog is not None
        page = ui.settings_dialog.account
        page.delete_password.setText("battery staple")
        page.delete.click()
        assert "Tick the box" in page.delete_status.text()  # nothing sent without the box
        page.delete_sure.setChecked(True)
        page.delete_password.setText("wrong one")
        page.delete.click()
        await until(lambda: "wrong" in page.delete_status.text(), what="the refusal")
        page.delete_password.setText("battery staple")
        page.delete.click()
        await until(lambda: ui.main.stack.currentWidget() is ui.main.sign_in, what="signed out")
        await until(lambda: "deleted" in ui.main.sign_in.error.text(), what="the reason")
        gone = await WireClient.open(server.url)
        login = await gone.call("login", username="bob", password="battery staple")
        assert login["code"] == "bad_credentials"
        await gone.close()
    finally:
        await ui.shutdown()
        await alice.close()
        if phone is not None:
            await phone.close()
