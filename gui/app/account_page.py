"""Settings → Account: change the password, sign out other sessions, blocked users, delete.

Each action is a request on the signed-in client (``gui/core/account.py``), run as a task
of the controller; its outcome is written under the action, as plain text. Deleting asks
for the password and a ticked box, never for a nested dialog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.app.plain import plain_label, set_plain
from gui.core import account
from gui.core.signaling_client import NotConnected
from signaling.protocol.errors import RequestError

if TYPE_CHECKING:
    from gui.app.controller import AppController

#: What the user reads for the server's refusals.
_REFUSALS = {
    "bad_credentials": "The current password is wrong.",
    "rate_limited": "Too many wrong passwords. Try again in a minute.",
    "not_found": "There is no such user.",
}


def _password_field(name: str) -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setAccessibleName(name)
    return field


class AccountPage(QWidget):
    """The Account tab of the settings window."""

    def __init__(self, controller: AppController) -> None:
        super().__init__()
        self.controller = controller

        self.current = _password_field("Current password")
        self.new = _password_field("New password")
        self.repeat = _password_field("Repeat the new password")
        self.change = QPushButton("Change password")
        self.change.clicked.connect(self._change_password)
        self.password_status = plain_label()
        password_box = QGroupBox("Password")
        password_form = QFormLayout(password_box)
        password_form.addRow("Current password", self.current)
        password_form.addRow("New password", self.new)
        password_form.addRow("Repeat", self.repeat)
        password_form.addRow(self.change)
        password_form.addRow(self.password_status)
        note = QLabel("Changing the password signs out your other sessions.")
        note.setWordWrap(True)
        password_form.addRow(note)

        self.sign_out_others = QPushButton("Sign out every other session")
        self.sign_out_others.clicked.connect(self._sign_out_others)
        self.sessions_status = plain_label()
        sessions_box = QGroupBox("Sessions")
        sessions = QVBoxLayout(sessions_box)
        sessions.addWidget(self.sign_out_others)
        sessions.addWidget(self.sessions_status)

        self.blocked = QListWidget()
        self.blocked.setAccessibleName("Blocked users")
        self.block_name = QLineEdit()
        self.block_name.setPlaceholderText("username")
        self.block_name.setAccessibleName("Username to block")
        self.block = QPushButton("Block")
        self.block.clicked.connect(self._block)
        self.unblock = QPushButton("Unblock selected")
        self.unblock.clicked.connect(self._unblock)
        self.blocked_status = plain_label()
        blocked_box = QGroupBox("Blocked users")
        blocked = QVBoxLayout(blocked_box)
        explain = QLabel(
            "Blocked users cannot send you contact requests, calls, meeting invitations, "
            "or see your presence."
        )
        explain.setWordWrap(True)
        blocked.addWidget(explain)
        blocked.addWidget(self.blocked)
        row = QHBoxLayout()
        row.addWidget(self.block_name)
        row.addWidget(self.block)
        row.addWidget(self.unblock)
        blocked.addLayout(row)
        blocked.addWidget(self.blocked_status)

        self.delete_password = _password_field("Password to delete the account")
        self.delete_sure = QCheckBox(
            "Delete my account, my contacts, requests and call history, for good"
        )
        self.delete = QPushButton("Delete account")
        self.delete.setProperty("role", "danger")
        self.delete.clicked.connect(self._delete)
        self.delete_status = plain_label()
        delete_box = QGroupBox("Delete the account")
        delete_form = QFormLayout(delete_box)
        delete_form.addRow("Password", self.delete_password)
        delete_form.addRow(self.delete_sure)
        delete_form.addRow(self.delete)
        delete_form.addRow(self.delete_status)

        layout = QVBoxLayout(self)
        for box in (password_box, sessions_box, blocked_box, delete_box):
            layout.addWidget(box)
        layout.addStretch(1)

    # Shown ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the blocked users again (when the tab is shown)."""
        if self.controller.client is not None:
            self.controller.spawn(self._load_blocked(), report=False)

    async def _load_blocked(self) -> None:
        client = self.controller.client
        if client is None:
            return
        try:
            users = await account.blocked(client)
        except (RequestError, NotConnected, TimeoutError) as exc:
            set_plain(self.blocked_status, _explain(exc))
            return
        self.blocked.clear()
        for user in users:
            self.blocked.addItem(str(user.get("username", "")))  # QListWidget items: plain

    # Actions --------------------------------------------------------------------------

    def _change_password(self) -> None:
        problem = account.check_new_password(
            self.current.text(), self.new.text(), self.repeat.text()
        )
        if problem is not None:
            set_plain(self.password_status, problem)
            return
        self.controller.spawn(self._run_change_password(), report=False)

    async def _run_change_password(self) -> None:
        client = self.controller.client
        if client is None:
            set_plain(self.password_status, "Sign in first.")
            return
        self.change.setEnabled(False)
        try:
            revoked = await account.change_password(client, self.current.text(), self.new.text())
        except (RequestError, NotConnected, TimeoutError) as exc:
            set_plain(self.password_status, _explain(exc))
            return
        finally:
            self.change.setEnabled(True)
        for field in (self.current, self.new, self.repeat):
            field.clear()
        set_plain(self.password_status, f"Password changed. {_sessions(revoked)} signed out.")

    def _sign_out_others(self) -> None:
        self.controller.spawn(self._run_sign_out_others(), report=False)

    async def _run_sign_out_others(self) -> None:
        client = self.controller.client
        if client is None:
            return
        try:
            revoked = await account.sign_out_others(client)
        except (RequestError, NotConnected, TimeoutError) as exc:
            set_plain(self.sessions_status, _explain(exc))
            return
        set_plain(self.sessions_status, f"{_sessions(revoked)} signed out.")

    def _block(self) -> None:
        name = self.block_name.text().strip()
        if name:
            self.controller.spawn(self._run_block(name), report=False)

    async def _run_block(self, name: str) -> None:
        client = self.controller.client
        if client is None:
            return
        try:
            user = await account.block(client, name)
        except (RequestError, NotConnected, TimeoutError) as exc:
            set_plain(self.blocked_status, _explain(exc))
            return
        self.block_name.clear()
        set_plain(self.blocked_status, f"Blocked {user.get('username', name)}.")
        await self._load_blocked()

    def _unblock(self) -> None:
        item = self.blocked.currentItem()
        if item is not None:
            self.controller.spawn(self._run_unblock(item.text()), report=False)

    async def _run_unblock(self, name: str) -> None:
        client = self.controller.client
        if client is None:
            return
        try:
            await account.unblock(client, name)
        except (RequestError, NotConnected, TimeoutError) as exc:
            set_plain(self.blocked_status, _explain(exc))
            return
        set_plain(self.blocked_status, f"Unblocked {name}.")
        await self._load_blocked()

    def _delete(self) -> None:
        if not self.delete_sure.isChecked():
            set_plain(self.delete_status, "Tick the box to confirm first.")
            return
        if not self.delete_password.text():
            set_plain(self.delete_status, "Type your password to confirm.")
            return
        self.controller.spawn(self._run_delete(), report=False)

    async def _run_delete(self) -> None:
        client = self.controller.client
        if client is None:
            return
        try:
            await account.delete_account(client, self.delete_password.text())
        except (RequestError, NotConnected, TimeoutError) as exc:
            set_plain(self.delete_status, _explain(exc))
            return
        self.delete_password.clear()
        self.delete_sure.setChecked(False)
        set_plain(self.delete_status, "The account was deleted.")
        await self.controller.sign_out()
        self.controller.signedOut.emit("Your account was deleted.")


def _sessions(count: int) -> str:
    return "1 other session" if count == 1 else f"{count} other sessions"


def _explain(exc: Exception) -> str:
    if isinstance(exc, RequestError):
        return _REFUSALS.get(exc.code, exc.message or exc.code)
    if isinstance(exc, TimeoutError):
        return "The server did not answer in time."
    return "Not connected to the server."
