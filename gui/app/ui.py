"""The windows of the app, wired to one controller: main window, incoming call, calls, tray."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from gui.app.call_window import CallWindow
from gui.app.controller import AppController
from gui.app.incoming import IncomingCallWindow
from gui.app.main_window import MainWindow
from gui.app.media import AppMedia
from gui.app.meeting_invite import MeetingInvitationWindow
from gui.app.meeting_window import MeetingWindow
from gui.app.plain import plain_notification
from gui.app.resources import app_icon, stylesheet
from gui.app.settings_dialog import SettingsDialog
from gui.core.call_session import CallSession
from gui.core.meeting_session import MeetingSession
from gui.core.profile import Profile

log = logging.getLogger("parley.app")


def resolve_theme(choice: str) -> str:
    """``light`` or ``dark``: the user's choice, or the system's for ``system``."""
    if choice in ("light", "dark"):
        return choice
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def badge(icon: QIcon, count: int) -> QIcon:
    """The tray icon with a red count in its corner (missed calls)."""
    if count <= 0:
        return icon
    pixmap = icon.pixmap(64, 64)
    if pixmap.isNull():
        pixmap = QPixmap(64, 64)
        pixmap.fill(QColor("#3a76f0"))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor("#d63939"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(30, 0, 34, 34)
    painter.setPen(QColor("white"))
    font = painter.font()
    font.setPixelSize(22)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(30, 0, 34, 34, Qt.AlignmentFlag.AlignCenter, str(min(count, 9)))
    painter.end()
    return QIcon(pixmap)


class ParleyUi(QObject):
    """Creates the windows once and shows the right one at the right time."""

    def __init__(
        self,
        app: QApplication,
        profile_name: str,
        server: str | Sequence[str] | None,
        trust_cert: str | None = None,
    ) -> None:
        """``server`` and ``trust_cert``: from the command line, over the profile's settings."""
        super().__init__()
        self.app = app
        self.profile = Profile(profile_name)
        self.media = AppMedia(self.profile)
        self.controller = AppController(self.profile, server, self.media.make, trust_cert)
        self.controller.devices = self.media  # type: ignore[attr-defined]
        if not self.media.catalog.audio_outputs():
            log.warning("no sound output found: calls and the ringtone will be silent here")
        self.apply_theme()
        app.setWindowIcon(app_icon())
        self.main = MainWindow(self.controller)
        self.main.keep_in_tray = self.profile.settings.start_in_tray
        self.incoming = IncomingCallWindow(self.controller)
        self.calls: list[CallWindow] = []
        self.meeting_invitation = MeetingInvitationWindow(self.controller)
        self.meetings: list[MeetingWindow] = []
        self._quit = asyncio.Event()
        self.main.quitRequested.connect(self.request_quit)
        self.main.settingsRequested.connect(self.open_settings)
        self.controller.callStarted.connect(self.show_call)
        self.controller.meetingStarted.connect(self.show_meeting)
        self.controller.meetingInvited.connect(self._notify_invited)
        self.controller.incomingCall.connect(self._notify_incoming)
        self.controller.missedCallsChanged.connect(self._missed)
        self.controller.incomingCall.connect(self.media.attach_speaker)
        self.controller.callStarted.connect(self.media.attach_speaker)
        self.tray = self._make_tray()
        self.settings_dialog: SettingsDialog | None = None

    # Appearance ------------------------------------------------------------------------

    def apply_theme(self) -> None:
        """Apply the chosen theme's style sheet."""
        self.app.setStyleSheet(stylesheet(resolve_theme(self.profile.settings.theme)))

    def _make_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            log.info("no system tray here; closing the window quits")
            self.main.keep_in_tray = False
            return None
        tray = QSystemTrayIcon(app_icon(), self)
        tray.setToolTip("Parley")
        menu = QMenu()
        menu.addAction("Show Parley", self.show_main)
        menu.addSeparator()
        menu.addAction("Quit", self.request_quit)
        tray.setContextMenu(menu)
        tray.activated.connect(lambda reason: self.show_main())
        tray.show()
        self._tray_menu = menu
        return tray

    def _missed(self, count: int) -> None:
        if self.tray is not None:
            self.tray.setIcon(badge(app_icon(), count))
            self.tray.setToolTip(f"Parley — {count} missed call(s)" if count else "Parley")

    def _notify_incoming(self, session: CallSession) -> None:
        if self.tray is not None and self.profile.settings.notifications:
            contact = self.controller.contacts.contact(session.machine.peer)
            name = contact.display_name if contact else session.machine.peer
            body = plain_notification(f"{name} is calling you")
            self.tray.showMessage("Incoming call", body, app_icon(), 10000)

    def _notify_invited(self, event: dict[str, object]) -> None:
        if self.tray is not None and self.profile.settings.notifications:
            inviter = event.get("from")
            user = inviter if isinstance(inviter, dict) else {}
            contact = self.controller.contacts.contact(str(user.get("username", "")))
            name = contact.display_name if contact else str(user.get("display_name") or "Someone")
            body = plain_notification(f"{name} invites you to a meeting")
            self.tray.showMessage("Meeting invitation", body, app_icon(), 10000)

    def show_main(self) -> None:
        """Bring the main window to the front."""
        self.main.show()
        self.main.raise_()
        self.main.activateWindow()

    # Calls -----------------------------------------------------------------------------

    def show_call(self, session: CallSession) -> None:
        """Open the call window of a call that was placed or answered."""
        window = CallWindow(self.controller, session)
        window.settingsRequested.connect(lambda: self.open_settings(devices=True))
        self.calls.append(window)
        window.destroyed.connect(
            lambda *_: self.calls.remove(window) if window in self.calls else None
        )
        window.show()

    def show_meeting(self, session: MeetingSession) -> None:
        """Open the window of a meeting that was created, joined, or that a call became."""
        window = MeetingWindow(self.controller, session)
        window.settingsRequested.connect(lambda: self.open_settings(devices=True))
        self.meetings.append(window)
        window.destroyed.connect(
            lambda *_: self.meetings.remove(window) if window in self.meetings else None
        )
        window.show()

    def open_settings(self, devices: bool = False) -> None:
        """The settings window (never a nested event loop: it is shown, not exec'd).

        ``devices``: on the Audio & video page (a call window with no camera asks so).
        """
        if self.settings_dialog is None:
            self.settings_dialog = SettingsDialog(self.profile, self.media, self.controller)
            self.settings_dialog.applied.connect(self._settings_applied)
        self.settings_dialog.load()
        if devices:
            self.settings_dialog.tabs.setCurrentIndex(0)
        self.settings_dialog.show()
        self.settings_dialog.raise_()

    def _settings_applied(self) -> None:
        self.apply_theme()
        self.media.apply_processing()
        if self.controller.call is not None:
            self.media.offer_camera(self.controller.call)
        self.main.keep_in_tray = self.profile.settings.start_in_tray and self.tray is not None

    # Life cycle ------------------------------------------------------------------------

    def request_quit(self) -> None:
        """Quit at the next turn of the loop."""
        self._quit.set()

    async def run(self) -> int:
        """Show the app, sign in if a session was kept, and run until asked to quit."""
        if not (self.profile.settings.start_in_tray and self.tray is not None):
            self.main.show()
            log.info("main window shown")
        # What exists now lives as long as the app: keep it out of the collector's full
        # passes, which otherwise pause the Qt thread for 50-64 ms, longer than the audio
        # buffers (measured in tests/devices).
        gc.freeze()
        self.controller.spawn(self.controller.start())
        await self._quit.wait()
        await self.shutdown()
        return 0

    async def shutdown(self) -> None:
        """Hang up, stop every device and window, close the connection and the server."""
        self.incoming.stop()
        self.meeting_invitation.stop()
        await self.controller.shutdown()
        self.media.stop()
        for window in [*self.calls, *self.meetings]:
            window.close()
        self.meeting_invitation.close()
        if self.settings_dialog is not None:
            self.settings_dialog.close()
        self.incoming.close()
        self.main.keep_in_tray = False
        self.main.hide()
        if self.tray is not None:
            self.tray.hide()
