"""The incoming-call window: on top, without stealing the keyboard from what you are typing in."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtMultimedia import QMediaDevices, QSoundEffect
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gui.app.controller import AppController
from gui.app.models import initials
from gui.app.plain import plain_label
from gui.app.resources import app_icon, icon, sound_path
from gui.app.widgets import Avatar
from gui.core.call_machine import CallState
from gui.core.call_session import CallSession


class IncomingCallWindow(QWidget):
    """Caller's name and avatar, a ringtone, and Answer with video / Answer audio only / Decline."""

    def __init__(self, controller: AppController) -> None:
        super().__init__(
            None,
            Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint | Qt.WindowType.Dialog,
        )
        self.controller = controller
        self.session: CallSession | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setWindowTitle("Incoming call — Parley")
        self.setWindowIcon(app_icon())
        self.setObjectName("incomingCall")
        self.avatar = Avatar(72)
        self.caller = plain_label()
        self.caller.setObjectName("title")
        self.caller.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.what = QLabel()
        self.what.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.what.setProperty("role", "muted")

        self.answer_video = QPushButton("Answer with video")
        self.answer_video.setIcon(icon("video-call", "#ffffff"))
        self.answer_video.setProperty("role", "accept")
        self.answer_video.setAccessibleName("Answer with video")
        self.answer_video.clicked.connect(lambda: self._answer(video=True))
        self.answer_audio = QPushButton("Audio only")
        self.answer_audio.setIcon(icon("phone", "#ffffff"))
        self.answer_audio.setProperty("role", "accept")
        self.answer_audio.setAccessibleName("Answer audio only")
        self.answer_audio.clicked.connect(lambda: self._answer(video=False))
        self.decline = QPushButton("Decline")
        self.decline.setIcon(icon("hang-up", "#ffffff"))
        self.decline.setProperty("role", "danger")
        self.decline.setAccessibleName("Decline")
        self.decline.clicked.connect(self._decline)
        for button in (self.answer_video, self.answer_audio, self.decline):
            button.setIconSize(QSize(20, 20))
            button.setMinimumHeight(40)

        buttons = QHBoxLayout()
        buttons.addWidget(self.decline)
        buttons.addWidget(self.answer_audio)
        buttons.addWidget(self.answer_video)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addStretch()
        top.addWidget(self.avatar)
        top.addStretch()
        layout.addLayout(top)
        layout.addWidget(self.caller)
        layout.addWidget(self.what)
        layout.addSpacing(8)
        layout.addLayout(buttons)

        self.ringtone: QSoundEffect | None = None
        controller.incomingCall.connect(self.ring)

    def _ringtone(self) -> QSoundEffect | None:
        """The ringtone, made at the first call that finds a sound output.

        With no output a ``QSoundEffect`` only prints that it cannot play (the app has said
        once, at start-up, that ringing is silent); an output plugged in later is used.
        """
        if self.ringtone is None and QMediaDevices.audioOutputs():
            self.ringtone = QSoundEffect(self)
            self.ringtone.setSource(QUrl.fromLocalFile(str(sound_path("ringtone"))))
            self.ringtone.setLoopCount(QSoundEffect.Loop.Infinite.value)
            self.ringtone.setVolume(0.8)
        return self.ringtone

    def ring(self, session: CallSession) -> None:
        """A call arrived: show it and play the ringtone."""
        self.session = session
        peer = session.machine.peer
        contact = self.controller.contacts.contact(peer)
        name = contact.display_name if contact else self.controller.guest_names.get(peer, peer)
        self.avatar.set_person(initials(name), peer)
        self.caller.setText(name)
        video = bool(session.machine.media.get("video"))
        self.what.setText("is calling you — video call" if video else "is calling you — audio call")
        self.answer_video.setVisible(True)
        session.on("state", self._state)
        self.adjustSize()
        self.show()
        self.raise_()
        ringtone = self._ringtone()
        if ringtone is not None:
            ringtone.play()

    def _state(self, state: CallState, reason: str | None) -> None:
        if state is not CallState.INCOMING_RINGING:
            self.stop()

    def stop(self) -> None:
        """Hide and stop ringing."""
        if self.ringtone is not None:
            self.ringtone.stop()
        self.hide()

    def _answer(self, video: bool) -> None:
        self.stop()
        self.controller.answer(video)

    def _decline(self) -> None:
        self.stop()
        self.controller.decline()
