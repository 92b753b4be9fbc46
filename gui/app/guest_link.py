""" "Copy guest link": a link for a call with you (or for a meeting you are in) on the clipboard.

A person who opens it joins from a browser, with no account; the server serves the page
(``docs/protocol.md``, guest links). The link holds a secret code shown once: it goes to
the clipboard and is never displayed or logged.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QPushButton, QWidget

from gui.app.controller import AppController
from gui.app.models import Role
from gui.core.guest_links import create_link
from gui.core.signaling_client import RequestError
from signaling.protocol.guests import is_guest_username


async def copy_guest_link(controller: AppController, meeting_id: str | None = None) -> str | None:
    """Make a link, put its address on the clipboard and say so; the address, or ``None``."""
    client = controller.client
    if client is None:
        controller.notice.emit("Sign in first to make a guest link.")
        return None
    try:
        url = str((await create_link(client, meeting_id))["url"])
    except RequestError as exc:
        controller.notice.emit(f"No guest link: {exc.message}")
        return None
    QGuiApplication.clipboard().setText(url)
    what = "join this meeting" if meeting_id else "call you"
    controller.notice.emit(f"Guest link copied: anyone who has it can {what} for 24 hours.")
    return url


def guest_link_action(parent: QWidget, controller: AppController) -> QAction:
    """The menu entry for a link to a 1:1 call with the signed-in user."""
    action = QAction("Copy guest link", parent)
    action.setToolTip("Copy a link that lets someone without Parley call you from a browser")
    action.triggered.connect(lambda: controller.spawn(copy_guest_link(controller)))
    return action


def is_guest(username: str) -> bool:
    """Whether ``username`` is a guest's (the server gives them ``guest-`` and 12 hex digits)."""
    return is_guest_username(username)


async def remove_guest(controller: AppController, username: str) -> None:
    """Send a guest away from the call or meeting (``guest.remove``)."""
    if controller.client is None:
        return
    try:
        await controller.client.request("guest.remove", username=username)
    except RequestError as exc:
        controller.notice.emit(f"The guest was not removed: {exc.message}")


class MeetingGuests(QWidget):
    """Under a meeting's participants: "Copy guest link" and "Remove guest" (for a guest chosen)."""

    def __init__(
        self, controller: AppController, meeting_id: str, people: QAbstractItemView
    ) -> None:
        super().__init__()
        self.controller = controller
        self.meeting_id = meeting_id
        self.people = people
        self.copy_button = QPushButton("Copy guest link")
        self.copy_button.setToolTip(
            "Copy a link that lets someone without Parley join from a browser"
        )
        self.copy_button.clicked.connect(
            lambda: controller.spawn(copy_guest_link(controller, meeting_id))
        )
        self.remove_button = QPushButton("Remove guest")
        self.remove_button.setProperty("role", "danger")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self._remove)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.copy_button)
        layout.addWidget(self.remove_button)
        selection = people.selectionModel()
        if selection is not None:
            selection.currentChanged.connect(lambda *_: self._selected())
        model = people.model()
        if model is not None:
            model.rowsRemoved.connect(lambda *_: self._selected())

    def chosen(self) -> str | None:
        """The guest chosen in the participants list, if a guest is chosen."""
        index = self.people.currentIndex()
        username = str(index.data(Role.USERNAME) or "") if index.isValid() else ""
        return username if is_guest(username) else None

    def _selected(self) -> None:
        self.remove_button.setEnabled(self.chosen() is not None)

    def _remove(self) -> None:
        username = self.chosen()
        if username is not None:
            self.controller.spawn(remove_guest(self.controller, username))
