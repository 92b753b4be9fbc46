"""The call window: the other person large, yourself small, and the controls a call needs."""

from __future__ import annotations

import time

from aiortc.mediastreams import MediaStreamTrack
from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.app.controller import AppController
from gui.app.meeting_invite import ContactPicker
from gui.app.models import ChatLine, initials
from gui.app.own_voice import MutedHint
from gui.app.plain import plain_label, plain_title
from gui.app.resources import app_icon, icon
from gui.app.screen_picker import ScreenPicker
from gui.app.sharing import OutOfTheShare, share_note
from gui.app.video_view import VideoView
from gui.app.widgets import Avatar, ChatPanel, add_shortcuts, control_button, media_controls
from gui.core.call_machine import CallState
from gui.core.call_session import CallSession
from gui.core.escalation import why_not_movable
from gui.core.peer_channel import ChatMessage, ChatUnavailable, PeerMediaState
from gui.core.quality import QualitySample
from gui.media.analysis import TrackConsumer
from gui.media.tap import TappedTrack

#: Keyboard shortcuts of the call window (also in docs/shortcuts.md).
SHORTCUTS = {
    "microphone": "Ctrl+D",
    "camera": "Ctrl+E",
    "screen": "Ctrl+Shift+E",
    "chat": "Ctrl+Shift+C",
    "hang_up": "Ctrl+Shift+H",
}

STATE_TEXT = {
    CallState.OUTGOING_RINGING: "Calling {name}…",
    CallState.INCOMING_RINGING: "{name} is calling…",
    CallState.CONNECTING: "Connecting…",
    CallState.CONNECTED: "",
    CallState.RECONNECTING: "Reconnecting…",
}
END_TEXT = {
    "hangup": "Call ended",
    "declined": "{name} declined the call",
    "cancelled": "Call cancelled",
    "busy": "{name} is in another call",
    "timeout": "No answer",
    "offline": "{name} is not online",
    "lost": "The connection was lost",
    "failed": "The call could not connect",
    "forbidden": "You can only call your contacts",
    "not_found": "There is no such user",
    "unreachable": "The server cannot be reached",
    "moved_to_meeting": "The call continues as a meeting",
}
#: Why "Add person" did not work (the code of the refused ``meeting.create``).
ADD_REFUSED = {
    "unsupported": "{name}'s app cannot take part in meetings.",
    "forbidden": "Only your contacts can be added.",
    "busy": "{name} is reconnecting; try again in a moment.",
}
GRADE_COLORS = {"good": "#2fb344", "fair": "#f59f00", "poor": "#d63939"}


class Stage(QWidget):
    """The video area; it tells the window when its size changes so the overlays follow."""

    resized = Signal()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Re-place the overlays."""
        super().resizeEvent(event)
        self.resized.emit()


class CallWindow(QWidget):
    """One call's window. It closes itself shortly after the call ends."""

    #: "Camera settings…" on the self-view when a video call has no camera: the app opens
    #: Settings → Audio & video (where the test pattern can be chosen instead).
    settingsRequested = Signal()

    def __init__(self, controller: AppController, session: CallSession) -> None:
        super().__init__()
        self.controller = controller
        self.session = session
        self.setObjectName("callWindow")
        self.setWindowIcon(app_icon())
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        peer = session.machine.peer
        contact = controller.contacts.contact(peer)
        self.peer_name = contact.display_name if contact else controller.guest_names.get(peer, peer)
        self.setWindowTitle(plain_title(f"{self.peer_name} — Parley"))
        self.resize(QSize(960, 600))

        # The stage: remote video, the peer's avatar when their camera is off, the overlays.
        self.stage = Stage()
        self.stage.setObjectName("stage")
        self.stage.resized.connect(self._layout_stage)
        self.remote = VideoView(self.stage)
        self.remote.setAccessibleName(f"Video of {self.peer_name}")
        self.remote.started.connect(self._layout_stage)
        self.remote.clicked.connect(self._swap_views)
        self.shared_screen = VideoView(self.stage)
        self.shared_screen.setAccessibleName(f"Screen shared by {self.peer_name}")
        self.shared_screen.hide()
        self.shared_screen.started.connect(self._layout_stage)
        self.shared_screen.clicked.connect(self._swap_views)
        self.self_view = VideoView(self.stage, mirrored=True)
        self.self_view.setAccessibleName("Your camera")
        self.self_view.setObjectName("selfView")
        self.camera_note = QFrame(self.stage)
        self.camera_note.setObjectName("cameraNote")
        self.camera_note.setAccessibleName("Camera")
        self.camera_note_text = QLabel("No camera found")
        self.camera_note_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.camera_note_text.setWordWrap(True)
        self.camera_settings = QPushButton("Camera settings…")
        self.camera_settings.setProperty("role", "link")
        self.camera_settings.setAccessibleName("Open the camera settings")
        self.camera_settings.setToolTip("Choose a camera, or send a test pattern instead")
        self.camera_settings.clicked.connect(self.settingsRequested.emit)
        note_layout = QVBoxLayout(self.camera_note)
        note_layout.addStretch()
        note_layout.addWidget(self.camera_note_text)
        note_layout.addWidget(self.camera_settings, 0, Qt.AlignmentFlag.AlignHCenter)
        note_layout.addStretch()
        self.camera_note.hide()
        self._preview_camera: MediaStreamTrack | None = None
        self._had_camera = session.media.camera is not None
        self.peer_avatar = Avatar(120, self.stage)
        self.peer_avatar.set_person(initials(self.peer_name), peer)
        self.status = plain_label(parent=self.stage)
        self.status.setObjectName("callStatus")
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status.setAccessibleName("Call status")
        self.peer_state = plain_label(parent=self.stage)
        self.peer_state.setObjectName("peerState")
        self.peer_state.setAccessibleName("What the other person sends")
        self.peer_state.hide()
        # While muted, the microphone still runs through the processing (echo removed), and
        # its voice meter says when the person talks to nobody.
        self.muted_hint = MutedHint(
            SHORTCUTS["microphone"],
            self.stage,
            lambda: self.session.media.audio,
            lambda: self.session.machine.ended,
            self._layout_stage,
        )

        # The top bar: timer, quality, verification words.
        self.timer_label = QLabel("00:00")
        self.timer_label.setAccessibleName("Call duration")
        self.quality = QLabel()
        self.quality.setAccessibleName("Connection quality")
        self.quality.setPixmap(icon("signal-bars", "#9aa0a6", 18).pixmap(18, 18))
        self.quality.setToolTip("Connection quality: waiting for figures")
        self.words = plain_label()
        self.words.setAccessibleName("Verification words")
        self.words.setToolTip(
            "Verification words: read them to each other. If they match, nobody is listening in."
        )
        top = QHBoxLayout()
        top.addWidget(self.timer_label)
        top.addWidget(self.quality)
        top.addStretch()
        shield = QLabel()
        shield.setPixmap(icon("shield", "#2fb344", 16).pixmap(16, 16))
        top.addWidget(shield)
        top.addWidget(self.words)

        # Controls.
        self.mic_button, self.camera_button, self.screen_button, self.chat_button = media_controls(
            SHORTCUTS
        )
        self.screen_button.toggled.connect(self._toggle_share)
        self.picker: ScreenPicker | None = None
        self.sharing_note = plain_label()
        self.sharing_note.setProperty("role", "banner")
        self.sharing_note.setAccessibleName("Screen sharing")
        self.sharing_note.hide()
        # Sharing the whole screen, this window leaves it (no hall of mirrors).
        self.out_of_the_share = OutOfTheShare(
            self, self.sharing_note, lambda: self.session.sharing_screen
        )
        self.screen_large = True
        self.devices_button = control_button("settings", "Devices")
        self.devices_menu = QMenu(self)
        self.devices_button.setMenu(self.devices_menu)
        self.devices_menu.aboutToShow.connect(self._fill_devices)
        self.hang_up_button = control_button(
            "hang-up", f"Hang up ({SHORTCUTS['hang_up']})", role="danger", size=56
        )
        # "Add person": the call becomes a meeting, both of us keep our connection.
        self.add_button = control_button("add-contact", "Add person")
        self.add_button.setEnabled(False)
        self.add_button.clicked.connect(self._add_person)
        self.add_picker: ContactPicker | None = None
        self.mic_button.toggled.connect(self._mute)
        self.camera_button.toggled.connect(self._camera_off)
        self.chat_button.toggled.connect(self._toggle_chat)
        self.hang_up_button.clicked.connect(self._hang_up)
        controls = QHBoxLayout()
        controls.addStretch()
        for button in (
            self.mic_button,
            self.camera_button,
            self.screen_button,
            self.chat_button,
            self.add_button,
            self.devices_button,
            self.hang_up_button,
        ):
            controls.addWidget(button)
        controls.addStretch()

        # Chat panel (shared with the meeting window).
        self.chat_panel = ChatPanel()
        self.chat_model, self.chat_view = self.chat_panel.model, self.chat_panel.view
        self.chat_input, self.chat_send = self.chat_panel.input, self.chat_panel.send
        self.chat_input.returnPressed.connect(self._send_chat)
        self.chat_send.clicked.connect(self._send_chat)
        self.chat_panel.hide()

        middle = QHBoxLayout()
        middle.addWidget(self.stage, 1)
        middle.addWidget(self.chat_panel)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.sharing_note)
        layout.addLayout(middle, 1)
        layout.addLayout(controls)

        add_shortcuts(
            self,
            SHORTCUTS,
            {
                "microphone": self.mic_button.toggle,
                "camera": self.camera_button.toggle,
                "chat": self.chat_button.toggle,
                "screen": self.screen_button.toggle,
                "hang_up": self._hang_up,
            },
        )

        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)
        self._clock.start()
        self._closing = QTimer(self)
        self._closing.setSingleShot(True)
        self._closing.setInterval(1500)
        self._closing.timeout.connect(self.close)

        session.on("state", self._state)
        session.on("remote_track", self._remote_track)
        session.on("peer_media", self._peer_media)
        session.on("chat", self._chat)
        session.on("delivered", self.chat_model.mark_delivered)
        session.on("stats", self._stats)
        session.on("sas", self._sas)
        session.on("local_media", self._local_media)
        session.on("request_failed", self._request_failed)
        for slot, receiver in session.receivers.items():
            self._remote_track(slot, receiver)
        self._attach_preview()
        self._state(session.state, session.machine.reason)
        self._layout_stage()

    # Session events ------------------------------------------------------------------

    def _attach_preview(self) -> None:
        """Show what the camera slot sends in the self-view (again after a device change)."""
        camera = self.session.media.camera
        if camera is not self._preview_camera:
            self._detach_preview()
            if isinstance(camera, TappedTrack):
                camera.frame_listeners.append(self.self_view.show_frame)
            self._preview_camera = camera
        self.self_view.setVisible(camera is not None and not self.camera_button.isChecked())
        self.camera_button.setEnabled(camera is not None)
        self.mic_button.setEnabled(self.session.media.audio is not None)
        self._show_camera_note()

    def _detach_preview(self) -> None:
        old = self._preview_camera
        if isinstance(old, TappedTrack) and self.self_view.show_frame in old.frame_listeners:
            old.frame_listeners.remove(self.self_view.show_frame)
        self._preview_camera = None
        self.self_view.clear()

    def _show_camera_note(self) -> None:
        """A video call sending no camera says why, where the self-view would be."""
        media = getattr(self.controller, "devices", None)
        wanted = bool(getattr(media, "video_wanted", False))
        missing = wanted and self.session.media.camera is None and not self.session.machine.ended
        self.camera_note_text.setText(
            "Camera disconnected" if self._had_camera else "No camera found"
        )
        self.camera_note.setVisible(missing)
        if self.session.media.camera is not None:
            self._had_camera = True

    def _remote_track(self, slot: str, receiver: TrackConsumer) -> None:
        view = {"camera": self.remote, "screen": self.shared_screen}.get(slot)
        if view is not None:
            receiver.listeners.append(view.show_frame)

    def _state(self, state: CallState, reason: str | None) -> None:
        self.add_button.setEnabled(state is CallState.CONNECTED and self._can_add())
        if state is CallState.ENDED and reason == "moved_to_meeting":
            # The meeting's window takes over at once (the controller opens it).
            if self.add_picker is not None:
                self.add_picker.close()
            self._clock.stop()
            QTimer.singleShot(0, self.close)
            return
        if state is CallState.ENDED:
            text = END_TEXT.get(reason or "", "Call ended").format(name=self.peer_name)
            # A failure the engine can explain (an unusable offer, no media in time) says why.
            detail = self.session.failure_detail if reason == "failed" else None
            self.status.setText(f"{text}. {detail}" if detail else text)
            for button in (
                self.mic_button,
                self.camera_button,
                self.chat_button,
                self.hang_up_button,
                self.screen_button,
            ):
                button.setEnabled(False)
            if self.picker is not None:
                self.picker.close()
            self.sharing_note.hide()
            self.camera_note.hide()
            if self.isMinimized():
                self.showNormal()
            self._clock.stop()
            self._closing.start()
        else:
            self.status.setText(STATE_TEXT.get(state, "").format(name=self.peer_name))
            if state is CallState.CONNECTED:
                self._offer_sharing()
        self.status.setVisible(bool(self.status.text()))
        self.chat_button.setEnabled(state is CallState.CONNECTED or self.chat_model.rowCount() > 0)
        self._layout_stage()

    def _peer_media(self, state: PeerMediaState) -> None:
        notes = []
        if not state.audio:
            notes.append(f"{self.peer_name} is muted")
        if not state.video:
            notes.append("camera off")
        self.peer_state.setText(" · ".join(notes))
        self.peer_state.setVisible(bool(notes))
        self.peer_state.adjustSize()
        if not state.video:
            self.remote.clear()
        if not state.screen:
            self.shared_screen.clear()
        self.screen_large = True
        self._layout_stage()

    def _local_media(self, state: PeerMediaState) -> None:
        """A device went away, came back or was switched: show what is really sent."""
        self._attach_preview()

    def _chat(self, message: ChatMessage) -> None:
        self.chat_model.add(ChatLine(message.id, message.text, mine=False))
        if not self.chat_button.isChecked():
            self.chat_button.setChecked(True)

    def _send_chat(self) -> None:
        text = self.chat_input.text().strip()
        if not text:
            return
        try:
            message = self.session.send_chat(text)
        except ChatUnavailable:
            self.chat_input.setPlaceholderText("Chat is not available in this call")
            return
        except ValueError:
            return
        self.chat_model.add(ChatLine(message.id, message.text, mine=True))
        self.chat_input.clear()
        self.chat_view.scrollToBottom()

    def _stats(self, sample: QualitySample) -> None:
        color = GRADE_COLORS[sample.grade]
        self.quality.setPixmap(icon("signal-bars", color, 18).pixmap(18, 18))
        video = sample.videos[0] if sample.videos else None
        lines = [
            f"Quality: {sample.grade}",
            f"In {sample.bitrate_in_kbps:.0f} kb/s, out {sample.bitrate_out_kbps:.0f} kb/s",
            f"Packet loss {sample.packet_loss_pct:.1f}%",
        ]
        if sample.rtt_ms is not None:
            lines.append(f"Round trip {sample.rtt_ms:.0f} ms")
        if sample.jitter_ms is not None:
            lines.append(f"Jitter {sample.jitter_ms:.0f} ms")
        if video is not None:
            lines.append(f"Video {video.width}x{video.height} at {video.fps:.0f} fps")
        if sample.send_width and sample.send_height:
            lines.append(f"Sending {sample.send_width}x{sample.send_height}")
        if sample.path is not None:
            lines.insert(1, sample.path.label)  # Direct (UDP), Relayed (TCP)...
        self.quality.setToolTip("\n".join(lines))
        self.quality.setAccessibleDescription(", ".join(lines))

    def _sas(self, words: list[str]) -> None:
        self.words.setText(" ".join(words))

    def _tick(self) -> None:
        started = self.session.connected_at
        if started is None:
            return
        seconds = int(time.monotonic() - started)
        hours, rest = divmod(seconds, 3600)
        text = f"{rest // 60:02d}:{rest % 60:02d}"
        self.timer_label.setText(f"{hours}:{text}" if hours else text)

    # Controls --------------------------------------------------------------------------

    def _mute(self, muted: bool) -> None:
        self.session.set_audio_enabled(not muted)
        self.mic_button.setIcon(icon("mic-off" if muted else "mic", "#ffffff", 24))
        tip = "Unmute" if muted else "Mute"
        self.mic_button.setToolTip(f"{tip} ({SHORTCUTS['microphone']})")
        self.mic_button.setAccessibleName(tip)
        self.muted_hint.set_muted(muted)

    def _camera_off(self, off: bool) -> None:
        self.session.set_video_enabled(not off)
        self.camera_button.setIcon(icon("camera-off" if off else "camera", "#ffffff", 24))
        tip = "Turn camera on" if off else "Turn camera off"
        self.camera_button.setToolTip(f"{tip} ({SHORTCUTS['camera']})")
        self.camera_button.setAccessibleName(tip)
        if off:
            self.self_view.clear()
        self.self_view.setVisible(not off)

    def _offer_sharing(self) -> None:
        """Enable "Share screen" when both the peer and this computer can."""
        from gui.devices.screen import capture_supported

        support = capture_supported()
        if not self.session.screen_available:
            self.screen_button.setToolTip("The other side cannot receive a shared screen")
        elif not support.supported:
            self.screen_button.setToolTip(f"Screen sharing does not work here: {support.reason}")
        else:
            self.screen_button.setEnabled(True)

    def _toggle_share(self, on: bool) -> None:
        if on and not self.session.sharing_screen:
            from gui.devices.screen import capture_supported

            if capture_supported().system_picker:
                # The desktop portal shows the system's own picker when the capture starts:
                # ours would only ask the same question twice.
                self._share(None)
                return
            self.picker = ScreenPicker(self)
            self.picker.chosen.connect(self._share)
            self.picker.rejected.connect(lambda: self.screen_button.setChecked(False))
            self.picker.finished.connect(self._picker_closed)
            self.picker.show()
        elif not on and self.session.sharing_screen:
            self._stop_sharing()

    def _picker_closed(self) -> None:
        if not self.session.sharing_screen:
            self.screen_button.blockSignals(True)
            self.screen_button.setChecked(False)
            self.screen_button.blockSignals(False)

    def _share(self, source: object) -> None:
        """Start sending ``source`` on the screen slot (the camera keeps going)."""
        from gui.core.call_session import ScreenShareUnavailable
        from gui.devices.screen import ScreenTrack

        track = ScreenTrack(source)  # type: ignore[arg-type]
        try:
            self.session.start_screen(track)
        except ScreenShareUnavailable as exc:
            track.stop()
            self._sharing_failed(str(exc))
            return
        track.on("lost", self._sharing_failed)
        note, whole = share_note(track)
        self.sharing_note.setText(note)
        self.sharing_note.show()
        self.screen_button.blockSignals(True)
        self.screen_button.setChecked(True)
        self.screen_button.blockSignals(False)
        self.screen_button.setIcon(icon("screen-share-stop", "#ffffff", 24))
        self.screen_button.setAccessibleName("Stop sharing")
        self.screen_button.setToolTip(f"Stop sharing ({SHORTCUTS['screen']})")
        if whole:
            self.out_of_the_share.start()

    def _sharing_failed(self, reason: str) -> None:
        self._stop_sharing()
        self.sharing_note.setText(f"Screen sharing stopped: {reason}")
        self.sharing_note.show()

    def _stop_sharing(self) -> None:
        self.session.stop_screen()
        self.out_of_the_share.stop()
        self.sharing_note.hide()
        self.screen_button.blockSignals(True)
        self.screen_button.setChecked(False)
        self.screen_button.blockSignals(False)
        self.screen_button.setIcon(icon("screen-share", "#ffffff", 24))
        self.screen_button.setAccessibleName("Share screen")
        self.screen_button.setToolTip(f"Share screen ({SHORTCUTS['screen']})")

    def _swap_views(self) -> None:
        """Swap the shared screen and the camera between large and small."""
        if self.session.peer_media.screen:
            self.screen_large = not self.screen_large
            self._layout_stage()

    def _toggle_chat(self, shown: bool) -> None:
        self.chat_panel.setVisible(shown)
        if shown:
            self.chat_input.setFocus()

    def _fill_devices(self) -> None:
        self.devices_menu.clear()
        provider = getattr(self.controller, "devices", None)
        if provider is None:
            action = self.devices_menu.addAction("No devices to choose from")
            action.setEnabled(False)
            return
        provider.fill_menu(self.devices_menu, self.session)

    def _hang_up(self) -> None:
        self.session.hang_up()

    # Add person ------------------------------------------------------------------------

    def _can_add(self) -> bool:
        """Whether the call can become a meeting (the other side's app is the server's to
        check); if not, the button's tooltip says why."""
        client = getattr(self.controller, "client", None)
        why = why_not_movable(self.session.machine.peer, getattr(client, "server_features", ()))
        self.add_button.setToolTip(why or "Add person: the call becomes a meeting")
        return why is None

    def _add_person(self) -> None:
        """Choose contacts; the call then becomes a meeting with them invited."""
        picker = ContactPicker(
            self.controller.contacts,
            exclude={self.session.machine.peer},
            action="Add",
            parent=self,
        )
        picker.setWindowTitle(plain_title(f"Add people to the call with {self.peer_name}"))
        picker.chosen.connect(self._move_to_meeting)
        self.add_picker = picker
        picker.open()

    def _move_to_meeting(self, usernames: list[str]) -> None:
        self.add_picker = None
        if usernames and not self.session.machine.ended:
            self.session.move_to_meeting(usernames)
            self.add_button.setEnabled(False)
            self.status.setText("Adding people…")
            self.status.show()

    def _request_failed(self, kind: str, code: str, message: str) -> None:
        if kind != "meeting.create":
            return
        self.add_button.setEnabled(self.session.state is CallState.CONNECTED)
        text = ADD_REFUSED.get(code, "Could not add people: {message}")
        self.status.setText(text.format(name=self.peer_name, message=message))
        self.status.show()
        QTimer.singleShot(4000, self, lambda: self._state(self.session.state, None))

    # Layout ----------------------------------------------------------------------------

    def _layout_stage(self) -> None:
        area = self.stage.rect()
        sharing = self.session.peer_media.screen and self.shared_screen.frame is not None
        small_width = max(160, area.width() // 4)
        small = QRect(
            12, area.bottom() - small_width * 9 // 16 - 12, small_width, small_width * 9 // 16
        )
        self.shared_screen.setVisible(sharing)
        if sharing:
            large, little = (
                (self.shared_screen, self.remote)
                if self.screen_large
                else (self.remote, self.shared_screen)
            )
            large.setGeometry(area)
            little.setGeometry(small)
            large.lower()
            little.raise_()
        else:
            self.remote.setGeometry(area)
        width = max(160, area.width() // 4)
        height = width * 9 // 16
        self.self_view.setGeometry(
            area.right() - width - 12, area.bottom() - height - 12, width, height
        )
        self.self_view.raise_()
        self.camera_note.setGeometry(self.self_view.geometry())
        self.camera_note.raise_()
        show_avatar = not self.session.peer_media.video or self.remote.frame is None
        self.peer_avatar.setVisible(show_avatar)
        self.peer_avatar.move(area.center().x() - 60, area.center().y() - 60)
        self.status.setGeometry(0, area.center().y() + 70, area.width(), 32)
        self.status.raise_()
        self.peer_state.move(12, 12)
        self.peer_state.raise_()
        self.muted_hint.place(area)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the self-view in its corner."""
        super().resizeEvent(event)
        self._layout_stage()

    def showEvent(self, event: object) -> None:
        """Lay out once the window has its size."""
        super().showEvent(event)  # type: ignore[arg-type]
        QTimer.singleShot(0, self._layout_stage)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window hangs up."""
        if not self.session.machine.ended:
            self.session.hang_up()
        self._clock.stop()
        self.muted_hint.stop()
        self._detach_preview()
        # The receivers outlive this window when the call went on as a meeting.
        for receiver in self.session.receivers.values():
            for view in (self.remote, self.shared_screen):
                if view.show_frame in receiver.listeners:
                    receiver.listeners.remove(view.show_frame)
        super().closeEvent(event)
