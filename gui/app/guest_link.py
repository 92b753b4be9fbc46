""""Copy guest link": a link for a call with you (or for a meeting you are in) on the clipboard.

A person who opens it joins from a browser, with no account; the server serves the page
(``docs/protocol.md``, guest links). The link holds a secret code shown once: it goes to
the clipboard and is never displayed or logged.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QWidget

from gui.app.controller import AppController
from gui.core.guest_links import create_link
from gui.core.signaling_client import RequestError


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
