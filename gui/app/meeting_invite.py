"""Choosing people for a meeting, and the window of an incoming meeting invitation."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtMultimedia import QMediaDevices, QSoundEffect
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.app.controller import AppController
from gui.app.models import ContactsModel, initials
from gui.app.plain import plain_label, plain_tooltip, set_plain
from gui.app.resources import app_icon, icon, sound_path
from gui.app.widgets import Avatar
from gui.core.meeting_tiles import names_phrase
from signaling.protocol.constants import ECHO_USERNAME

#: The most people one ``meeting.invite`` (or ``meeting.create``) may name.
MAX_INVITE = 15


class ContactPicker(QDialog):
    """Tick accepted contacts (online ones first); ``chosen`` gives their usernames."""

    chosen = Signal(list)

    def __init__(
        self,
        contacts: ContactsModel,
        *,
        exclude: set[str] | None = None,
        action: str = "Invite",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New meeting")
        self.setWindowIcon(app_icon())
        self.resize(QSize(340, 420))
        self.list = QListWidget()
        self.list.setAccessibleName("Contacts to invite")
        skip = exclude or set()
        for contact in contacts.contacts():
            if (
                contact.status != "accepted"
                or contact.username == ECHO_USERNAME
                or contact.username in skip
            ):
                continue
            item = QListWidgetItem(contact.display_name)  # item text is never markup
            item.setData(Qt.ItemDataRole.UserRole, contact.username)
            item.setToolTip(plain_tooltip(f"{contact.display_name} (@{contact.username})"))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.empty = QLabel("None of your contacts can be invited.")
        self.empty.setWordWrap(True)
        self.empty.setVisible(self.list.count() == 0)
        self.note = QLabel(f"Choose up to {MAX_INVITE} people.")
        self.note.setProperty("role", "muted")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.addButton(action, QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setProperty("role", "primary")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        self.list.itemChanged.connect(self._count)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.note)
        layout.addWidget(self.buttons)
        self._count()

    def usernames(self) -> list[str]:
        """The ticked contacts, in list order."""
        items = (self.list.item(i) for i in range(self.list.count()))
        return [
            str(item.data(Qt.ItemDataRole.UserRole))
            for item in items
            if item.checkState() == Qt.CheckState.Checked
        ]

    def check(self, username: str) -> None:
        """Tick ``username`` (as a click on its box does)."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == username:
                item.setCheckState(Qt.CheckState.Checked)

    def _count(self, *_: Any) -> None:
        count = len(self.usernames())
        self.ok.setEnabled(0 < count <= MAX_INVITE)
        self.note.setText(
            f"{count} chosen (at most {MAX_INVITE})."
            if count
            else f"Choose up to {MAX_INVITE} people."
        )

    def _accept(self) -> None:
        chosen = self.usernames()
        if 0 < len(chosen) <= MAX_INVITE:
            self.accept()
            self.chosen.emit(chosen)


class MeetingInvitationWindow(QWidget):
    """Who invites you, who else is in the meeting; Join with video / Audio only / Decline."""

    def __init__(self, controller: AppController) -> None:
        super().__init__(
            None,
            Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint | Qt.WindowType.Dialog,
        )
        self.controller = controller
        self.meeting_id: str | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setWindowTitle("Meeting invitation — Parley")
        self.setWindowIcon(app_icon())
        self.setObjectName("incomingCall")
        self.avatar = Avatar(72)
        self.inviter = plain_label()
        self.inviter.setObjectName("title")
        self.inviter.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.what = plain_label()
        self.what.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.what.setWordWrap(True)
        self.what.setProperty("role", "muted")
        self.others = plain_label()
        self.others.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.others.setWordWrap(True)
        self.others.setAccessibleName("Who is in the meeting")

        self.join_video = QPushButton("Join with video")
        self.join_video.setIcon(icon("video-call", "#ffffff"))
        self.join_video.setProperty("role", "accept")
        self.join_video.clicked.connect(lambda: self._join(video=True))
        self.join_audio = QPushButton("Audio only")
        self.join_audio.setIcon(icon("phone", "#ffffff"))
        self.join_audio.setProperty("role", "accept")
        self.join_audio.setAccessibleName("Join audio only")
        self.join_audio.clicked.connect(lambda: self._join(video=False))
        self.decline = QPushButton("Decline")
        self.decline.setIcon(icon("hang-up", "#ffffff"))
        self.decline.setProperty("role", "danger")
        self.decline.clicked.connect(self._decline)
        for button in (self.join_video, self.join_audio, self.decline):
            button.setIconSize(QSize(20, 20))
            button.setMinimumHeight(40)
        buttons = QHBoxLayout()
        buttons.addWidget(self.decline)
        buttons.addWidget(self.join_audio)
        buttons.addWidget(self.join_video)
        top = QHBoxLayout()
        top.addStretch()
        top.addWidget(self.avatar)
        top.addStretch()
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.inviter)
        layout.addWidget(self.what)
        layout.addWidget(self.others)
        layout.addSpacing(8)
        layout.addLayout(buttons)

        self.ringtone: QSoundEffect | None = None
        controller.meetingInvited.connect(self.ring)
        controller.meetingInvitationGone.connect(self._gone)

    def _name(self, user: object) -> tuple[str, str]:
        """``(username, display name)`` of a User object from the server."""
        if not isinstance(user, dict):
            return "", "?"
        username = str(user.get("username") or "")
        contact = self.controller.contacts.contact(username)
        name = contact.display_name if contact else str(user.get("display_name") or username)
        return username, name

    def ring(self, event: dict[str, Any]) -> None:
        """An invitation arrived: show who invites and who is in it, and ring."""
        self.meeting_id = str(event.get("meeting_id", "")).lower()
        username, name = self._name(event.get("from"))
        self.avatar.set_person(initials(name), username)
        set_plain(self.inviter, name)
        title = event.get("title")
        video = bool((event.get("media") or {}).get("video"))
        kind = "video meeting" if video else "meeting"
        set_plain(
            self.what,
            f"invites you to “{title}”, a {kind}"
            if isinstance(title, str) and title
            else f"invites you to a {kind}",
        )
        me = (self.controller.user or {}).get("username")
        others = [
            self._name(u)[1]
            for u in event.get("participants") or []
            if self._name(u)[0] not in (username, me)
        ]
        set_plain(self.others, f"With {names_phrase(others, 3)}" if others else "")
        self.others.setVisible(bool(others))
        self.adjustSize()
        self.show()
        self.raise_()
        if self.ringtone is None and QMediaDevices.audioOutputs():
            self.ringtone = QSoundEffect(self)
            self.ringtone.setSource(QUrl.fromLocalFile(str(sound_path("ringtone"))))
            self.ringtone.setLoopCount(QSoundEffect.Loop.Infinite.value)
            self.ringtone.setVolume(0.8)
        if self.ringtone is not None:
            self.ringtone.play()

    def _gone(self, meeting_id: str) -> None:
        if meeting_id == self.meeting_id:
            self.stop()

    def stop(self) -> None:
        """Hide and stop ringing."""
        if self.ringtone is not None:
            self.ringtone.stop()
        self.hide()

    def _join(self, video: bool) -> None:
        meeting_id = self.meeting_id
        self.stop()
        if meeting_id:
            self.controller.join_meeting(meeting_id, video)

    def _decline(self) -> None:
        meeting_id = self.meeting_id
        self.stop()
        if meeting_id:
            self.controller.decline_meeting(meeting_id)
