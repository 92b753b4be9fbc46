"""The meeting window: a grid of tiles, one participant's shared screen large, the people, the chat.

A thin view over :class:`~gui.app.meeting_model.TilesModel`: the session's events
update the model (who is in, what they send, who speaks) and the tiles follow
the model's rows. The grid steps 1, 2, 2x2, 3x3, 4x4 as people come and go
(``gui/core/meeting_tiles.py`` decides the cells); a participant who shares a
screen gets the large place and the tiles move to a strip below it. A ring
around a tile says who is speaking, from the level of the audio received from
them (nothing received, as when muted, is silence); on one's own tile, from the
processed microphone while it is sent. Muted and talking: "You are muted"
(``own_voice.py``, shared with the call window).

The controls are the call window's (``call_window.SHORTCUTS``, the same round
buttons, device menu and chat panel); hanging up leaves the meeting, and the host
can end it for everyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamTrack
from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.app.call_window import GRADE_COLORS, SHORTCUTS, Stage
from gui.app.controller import AppController
from gui.app.guest_link import MeetingGuests
from gui.app.meeting_invite import ContactPicker
from gui.app.meeting_model import Tile, TilesModel, tile_of
from gui.app.models import ChatLine
from gui.app.own_voice import MutedHint, meter_of, own_level
from gui.app.plain import plain_label, plain_title, set_plain
from gui.app.resources import app_icon, icon
from gui.app.screen_picker import ScreenPicker
from gui.app.sharing import OutOfTheShare, share_note
from gui.app.tile_view import TileView
from gui.app.video_view import VideoView
from gui.app.widgets import (
    ChatPanel,
    PersonDelegate,
    add_shortcuts,
    control_button,
    media_controls,
)
from gui.core.meeting_chat import NOT_SHOWN_END_TO_END
from gui.core.meeting_machine import MeetingState, ParticipantsChanged
from gui.core.meeting_session import MeetingSession
from gui.core.meeting_tiles import SpeakingDetector, grid_cells, names_phrase, strip_cells
from gui.core.peer_channel import ChatMessage, ChatUnavailable
from gui.core.peer_link import AUDIO, CAMERA, SCREEN
from gui.core.quality import QualitySample
from gui.media.analysis import AudioReceiver, TrackConsumer
from gui.media.tap import TappedTrack

#: What the window says about who can read the media.
SECURITY_TEXT = {
    "mesh": "End-to-end encrypted",
    "sfu": "Encrypted to the meeting server",
}
SECURITY_TIP = {
    "mesh": "Every participant's audio and video goes straight to every other participant, "
    "encrypted: nobody in between, the server included, can see or hear it.",
    "sfu": "Audio and video go through the meeting server, encrypted on the way there and "
    "from there; the server itself handles them.",
}
END_TEXT = {
    "left": "You left the meeting",
    "ended": "The meeting has ended",
    "empty": "The meeting has ended",
    "declined": "You declined the meeting",
    "meeting_full": "The meeting is full",
    "forbidden": "You are not invited to this meeting",
    "not_found": "This meeting has ended",
    "busy": "You are in another call",
    "unreachable": "The server cannot be reached",
}
#: How often the speaking rings are updated (ms), and how much audio each look measures (s).
LEVEL_INTERVAL_MS = 150
LEVEL_WINDOW_S = 0.15


class MeetingWindow(QWidget):
    """One meeting's window. It closes itself shortly after this end is out of the meeting."""

    settingsRequested = Signal()

    def __init__(self, controller: AppController, session: MeetingSession) -> None:
        super().__init__()
        self.controller = controller
        self.session = session
        self.me = session.machine.me
        self.setObjectName("callWindow")  # the call window's look (background, theme)
        self.setWindowIcon(app_icon())
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(QSize(1040, 640))
        self.model = TilesModel()
        self.detector = SpeakingDetector()
        self.tile_views: dict[str, TileView] = {}
        self.connected_at: float | None = None
        self.was_joined = False
        self.link_state = "online"
        #: Through a media server: ``connecting``, ``connected`` or ``reconnecting``.
        self.media_server: str | None = None
        self.screen_owner: str | None = None
        self._screen_receivers: dict[str, TrackConsumer] = {}
        self._screen_listeners: dict[str, Callable[[Any], None]] = {}
        self._camera_receivers: dict[str, TrackConsumer] = {}
        #: Whose videos come, through a media server (``None``: everyone's, a mesh).
        self._receiving: set[str] | None = None
        self._audio_seen: dict[str, int] = {}
        self._grades: dict[str, str] = {}
        self._preview_camera: MediaStreamTrack | None = None

        # Top bar: security, status, timer, quality.
        self.security_icon = QLabel()
        self.security = QLabel()
        self.security.setAccessibleName("Encryption")
        self.status = plain_label()
        self.status.setObjectName("callStatus")
        self.status.setAccessibleName("Meeting status")
        self.timer_label = QLabel("00:00")
        self.timer_label.setAccessibleName("Meeting duration")
        self.quality = QLabel()
        self.quality.setAccessibleName("Connection quality")
        self.quality.setPixmap(icon("signal-bars", "#9aa0a6", 18).pixmap(18, 18))
        self.quality.setToolTip("Connection quality: waiting for figures")
        top = QHBoxLayout()
        top.addWidget(self.timer_label)
        top.addWidget(self.quality)
        top.addSpacing(12)
        top.addWidget(self.status, 1)
        top.addWidget(self.security_icon)
        top.addWidget(self.security)

        # The stage: tiles, or a shared screen large and the tiles in a strip.
        self.stage = Stage()
        self.stage.setObjectName("stage")
        self.stage.resized.connect(self._layout_stage)
        self.screen_view = VideoView(self.stage)
        self.screen_view.setObjectName("sharedScreen")
        self.screen_view.hide()
        self.screen_view.started.connect(self._layout_stage)
        self.screen_label = plain_label(parent=self.stage)
        self.screen_label.setStyleSheet(
            "background: rgba(0, 0, 0, 150); color: white; padding: 2px 6px; border-radius: 4px;"
        )
        self.screen_label.hide()
        self.sharing_note = plain_label()
        self.sharing_note.setProperty("role", "banner")
        self.sharing_note.setAccessibleName("Screen sharing")
        self.sharing_note.hide()
        self.out_of_the_share = OutOfTheShare(self, self.sharing_note, lambda: self.sharing_screen)
        self.muted_hint = MutedHint(
            SHORTCUTS["microphone"],
            self.stage,
            lambda: self.session.shared.media.audio,
            lambda: self.session.machine.ended,
            self._layout_stage,
        )

        # The participant panel.
        self.people_view = QListView()
        self.people_view.setModel(self.model)
        self.people_view.setItemDelegate(PersonDelegate(self.people_view, show_presence=False))
        self.people_view.setAccessibleName("Participants")
        self.people_view.setUniformItemSizes(True)
        self.invited_label = plain_label()
        self.invited_label.setWordWrap(True)
        self.invited_label.setProperty("role", "muted")
        self.invite_button = QPushButton("Invite…")
        self.invite_button.setIcon(icon("add-contact", "#ffffff"))
        self.invite_button.setProperty("role", "primary")
        self.invite_button.setAccessibleName("Invite people")
        self.invite_button.clicked.connect(self._invite)
        self.picker_dialog: ContactPicker | None = None
        self.people_panel = QWidget()
        self.people_panel.setObjectName("peoplePanel")
        self.people_panel.setFixedWidth(280)
        people_layout = QVBoxLayout(self.people_panel)
        self.people_title = QLabel("People")
        people_layout.addWidget(self.people_title)
        people_layout.addWidget(self.people_view, 1)
        people_layout.addWidget(self.invited_label)
        people_layout.addWidget(self.invite_button)
        self.guests = MeetingGuests(controller, session.meeting_id, self.people_view)
        people_layout.addWidget(self.guests)
        self.people_panel.hide()

        # The chat panel (the call window's).
        self.chat = ChatPanel()
        self.chat_model = self.chat.model
        self.chat.input.returnPressed.connect(self._send_chat)
        self.chat.send.clicked.connect(self._send_chat)
        self.chat.hide()

        # Controls.
        self.mic_button, self.camera_button, self.screen_button, self.chat_button = media_controls(
            SHORTCUTS
        )
        self.picker: ScreenPicker | None = None
        self.people_button = control_button("add-contact", "Participants", checkable=True)
        self.devices_button = control_button("settings", "Devices")
        self.devices_menu = QMenu(self)
        self.devices_button.setMenu(self.devices_menu)
        self.devices_menu.aboutToShow.connect(self._fill_devices)
        self.leave_button = control_button(
            "hang-up", f"Leave ({SHORTCUTS['hang_up']})", role="danger", size=56
        )
        self.end_button = QPushButton("End for everyone")
        self.end_button.setProperty("role", "danger")
        self.end_button.setAccessibleName("End the meeting for everyone")
        self.end_button.hide()
        self.mic_button.toggled.connect(self._mute)
        self.camera_button.toggled.connect(self._camera_off)
        self.screen_button.toggled.connect(self._toggle_share)
        self.chat_button.toggled.connect(self._toggle_chat)
        self.people_button.toggled.connect(self.people_panel.setVisible)
        self.leave_button.clicked.connect(self._leave)
        self.end_button.clicked.connect(self._end_for_all)
        controls = QHBoxLayout()
        controls.addStretch()
        for button in (
            self.mic_button,
            self.camera_button,
            self.screen_button,
            self.chat_button,
            self.people_button,
            self.devices_button,
            self.leave_button,
        ):
            controls.addWidget(button)
        controls.addWidget(self.end_button)
        controls.addStretch()

        middle = QHBoxLayout()
        middle.addWidget(self.stage, 1)
        middle.addWidget(self.people_panel)
        middle.addWidget(self.chat)
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
                "hang_up": self._leave,
            },
        )

        self.model.rowsInserted.connect(self._rows_changed)
        self.model.rowsRemoved.connect(self._rows_changed)
        self.model.dataChanged.connect(self._row_data)
        self._levels = QTimer(self)
        self._levels.setInterval(LEVEL_INTERVAL_MS)
        self._levels.timeout.connect(self._measure_levels)
        self._levels.start()
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)
        self._clock.start()
        self._closing = QTimer(self)
        self._closing.setSingleShot(True)
        self._closing.setInterval(1500)
        self._closing.timeout.connect(self.close)

        session.on("state", self._state)
        session.on("participants", self._participants)
        session.on("remote_track", self._remote_track)
        session.on("link_stats", self._stats)
        session.on("chat", self._chat)
        session.on("chat_history", self._chat_history)
        session.on("delivered", self.chat_model.mark_delivered)
        session.on("request_failed", self._request_failed)
        session.on("sfu", self._media_server_state)
        session.on("videos", self._videos)
        controller.linkStateChanged.connect(self._link_state)
        for username in session.history:
            for slot, receiver in session.receivers(username).items():
                self._remote_track(username, slot, receiver)
        for entry in session.chat_log.past():  # what came before this window listened
            self._chat_history(entry.sender, entry.message)
        self._attach_preview()
        self._show_people()
        self._state(session.state, session.machine.reason)

    # Who is in it ----------------------------------------------------------------

    @property
    def topology(self) -> str:
        """``mesh`` or ``sfu``, as the meeting state says (mesh when it does not say)."""
        value = getattr(self.session.machine, "topology", None)
        return value if value in SECURITY_TEXT else "mesh"

    def _my_tile(self) -> Tile:
        user = self.controller.user or {}
        enabled = self.session.shared.enabled
        return Tile(
            username=self.me,
            display_name=str(user.get("display_name") or self.me),
            me=True,
            host=self.session.machine.host == self.me,
            audio=enabled[AUDIO],
            video=enabled[CAMERA],
            screen=enabled[SCREEN],
        )

    def _show_people(self) -> None:
        """The model from the machine's participants (and this end)."""
        machine = self.session.machine
        others = [tile_of(p, machine.host) for p in machine.participants.values()]
        self.model.set_tiles([self._my_tile(), *others])
        names = []
        for username in machine.invited:
            contact = self.controller.contacts.contact(username)
            names.append(contact.display_name if contact else username)
        set_plain(self.invited_label, f"Invited: {names_phrase(names, 3)}" if names else "")
        self.invited_label.setVisible(bool(names))
        self.people_title.setText(f"People ({self.model.rowCount()})")
        topology = self.topology
        self.security.setText(SECURITY_TEXT[topology])
        self.security.setToolTip(SECURITY_TIP[topology])
        colour = "#2fb344" if topology == "mesh" else "#3a76f0"
        self.security_icon.setPixmap(icon("shield", colour, 16).pixmap(16, 16))
        self.end_button.setVisible(machine.host == self.me and machine.joined)
        if not machine.ended:
            self._show_status()
        title = machine.title or (
            f"Meeting with {names_phrase([t.display_name for t in others])}"
            if others
            else "Meeting"
        )
        self.setWindowTitle(plain_title(f"{title} — Parley"))
        self._choose_screen()

    def _participants(self, change: ParticipantsChanged) -> None:
        for username in list(self._camera_receivers):
            if username not in self.session.machine.participants:
                self._forget(username)
        self._show_people()

    def _forget(self, username: str) -> None:
        camera = self._camera_receivers.pop(username, None)
        view = self.tile_views.get(username)
        if camera is not None and view is not None and view.video.show_frame in camera.listeners:
            camera.listeners.remove(view.video.show_frame)
        self._unlisten_screen(username)
        self.detector.forget(username)
        self._audio_seen.pop(username, None)
        self._grades.pop(username, None)

    def _rows_changed(self, *_: Any) -> None:
        """Tiles for new rows, none for rows gone."""
        present = {t.username for t in self.model.tiles()}
        for username in list(self.tile_views):
            if username not in present:
                gone = self.tile_views.pop(username)
                gone.hide()
                gone.deleteLater()
        for tile in self.model.tiles():
            view = self.tile_views.get(tile.username)
            if view is None:
                view = self.tile_views[tile.username] = TileView(self.stage)
                if self._receiving is not None and not tile.me:
                    view.video.pause(tile.username not in self._receiving)
                receiver = self._camera_receivers.get(tile.username)
                if receiver is not None:
                    receiver.listeners.append(view.video.show_frame)
                if tile.me and isinstance(self._preview_camera, TappedTrack):
                    self._preview_camera.frame_listeners.append(view.video.show_frame)
                view.video.mirrored = tile.me
                view.show()
            view.show_tile(tile)
        self._layout_stage()

    def _row_data(self, first: QModelIndex, last: QModelIndex) -> None:
        for row in range(first.row(), last.row() + 1):
            tile = self.model.tiles()[row]
            view = self.tile_views.get(tile.username)
            if view is not None:
                view.show_tile(tile)
        self._choose_screen()

    # Media ---------------------------------------------------------------------------

    def _remote_track(self, username: str, slot: str, receiver: TrackConsumer) -> None:
        if slot == CAMERA:
            self._camera_receivers[username] = receiver
            view = self.tile_views.get(username)
            if view is not None:
                view.video.clear()
                receiver.listeners.append(view.video.show_frame)
        elif slot == SCREEN:
            self._unlisten_screen(username)
            self._screen_receivers[username] = receiver

            def listener(frame: Any, who: str = username) -> None:
                self._screen_frame(who, frame)

            self._screen_listeners[username] = listener
            receiver.listeners.append(listener)
        elif slot == AUDIO:
            self._audio_seen[username] = 0
            player = getattr(self.controller, "devices", None)
            play = getattr(player, "play_meeting_audio", None)
            if play is not None:
                play(self.session, username, receiver)

    def _videos(self, usernames: list[str]) -> None:
        """Through a media server, only the most recent speakers' videos come (Last-N,
        ``sfu_session.video_limit``): the other tiles show their name, not a frozen picture.
        Their tiles are paused, not only cleared: frames the server sent before it stopped
        still come in after this (seen in tests/ui/test_meeting_window_sfu.py, 2 runs of 3)."""
        self._receiving = set(usernames)
        for username, view in self.tile_views.items():
            if username != self.me:
                view.video.pause(username not in self._receiving)

    def _unlisten_screen(self, username: str) -> None:
        receiver = self._screen_receivers.pop(username, None)
        listener = self._screen_listeners.pop(username, None)
        if receiver is not None and listener in receiver.listeners:
            receiver.listeners.remove(listener)

    def _screen_frame(self, username: str, frame: Any) -> None:
        if username == self.screen_owner:
            self.screen_view.show_frame(frame)
        elif self.screen_owner is None:
            self._choose_screen()

    def _choose_screen(self) -> None:
        """The large place goes to the participant sharing (the newest to start, if several)."""
        sharing = [
            t.username
            for t in self.model.tiles()
            if t.screen and not t.me and self._screen_receivers.get(t.username) is not None
        ]
        owner = self.screen_owner if self.screen_owner in sharing else None
        if owner is None and sharing:
            owner = sharing[-1]
        if owner != self.screen_owner:
            self.screen_owner = owner
            self.screen_view.clear()
            tile = self.model.tile(owner) if owner else None
            if tile is not None:
                set_plain(self.screen_label, f"{tile.display_name}'s screen")
                self.screen_view.setAccessibleName(f"Screen shared by {tile.display_name}")
        self._layout_stage()

    def _measure_levels(self) -> None:
        """Who speaks: the level of what arrived from each participant since the last look,
        and this end's processed microphone while it is sent (muted: no ring)."""
        now = time.monotonic()
        for tile in self.model.tiles():
            level = 0.0
            if tile.me:
                meter = meter_of(self.session.shared.media.audio)
                level = own_level(meter, LEVEL_WINDOW_S, now) if tile.audio else 0.0
            else:
                receiver = self.session.receivers(tile.username).get(AUDIO)
                if isinstance(receiver, AudioReceiver):
                    seen = self._audio_seen.get(tile.username, 0)
                    if receiver.frames > seen and tile.audio:
                        level = receiver.rms(LEVEL_WINDOW_S)
                    self._audio_seen[tile.username] = receiver.frames
            speaking = self.detector.feed(tile.username, level, now)
            self.model.set_speaking(tile.username, speaking)

    def _unpreview(self) -> None:
        """The camera's frames no longer reach this end's tile."""
        camera, mine = self._preview_camera, self.tile_views.get(self.me)
        if (
            isinstance(camera, TappedTrack)
            and mine is not None
            and mine.video.show_frame in camera.frame_listeners
        ):
            camera.frame_listeners.remove(mine.video.show_frame)

    def _attach_preview(self) -> None:
        """This end's camera in its own tile (again after a device change)."""
        camera = self.session.shared.media.camera
        mine = self.tile_views.get(self.me)
        if camera is not self._preview_camera:
            self._unpreview()
            if isinstance(camera, TappedTrack) and mine is not None:
                camera.frame_listeners.append(mine.video.show_frame)
            self._preview_camera = camera
        self.camera_button.setEnabled(camera is not None)
        self.mic_button.setEnabled(self.session.shared.media.audio is not None)

    # The session ---------------------------------------------------------------------

    def _state(self, state: MeetingState, reason: str | None) -> None:
        if state is MeetingState.JOINED:
            self.was_joined = True
            if self.connected_at is None:
                self.connected_at = time.monotonic()
            self._offer_sharing()
            if self.session.machine.end_to_end_before:  # its chat from before is not here
                self.chat.show_notice(NOT_SHOWN_END_TO_END)
        if state is MeetingState.ENDED:
            text = END_TEXT.get(reason or "", "You left the meeting")
            set_plain(self.status, text)
            for button in (
                self.mic_button,
                self.camera_button,
                self.screen_button,
                self.chat_button,
                self.leave_button,
                self.end_button,
                self.invite_button,
            ):
                button.setEnabled(False)
            if self.picker is not None:
                self.picker.close()
            self.muted_hint.set_muted(False)
            self.out_of_the_share.stop()
            self._levels.stop()
            self._clock.stop()
            self._closing.setInterval(1500 if reason in ("left", "ended", "empty") else 4000)
            self._closing.start()
        else:
            self._show_status()
        self._show_people()

    def _media_server_state(self, state: str) -> None:
        self.media_server = state
        if not self.session.machine.ended:
            self._show_status()

    def _link_state(self, state: str) -> None:
        self.link_state = state
        if not self.session.machine.ended:
            self._show_status()

    @property
    def reconnecting(self) -> bool:
        """Whether this end is getting back into the meeting (signaling or media server)."""
        machine = self.session.machine
        return (
            self.link_state == "reconnecting"
            or self.media_server == "reconnecting"
            or (self.was_joined and machine.state is MeetingState.JOINING)
        )

    def _show_status(self) -> None:
        machine = self.session.machine
        if self.reconnecting:
            text = "Reconnecting…"
        elif machine.state is MeetingState.JOINING:
            text = "Joining…"
        elif self.media_server == "connecting":
            text = "Connecting to the meeting server…"
        elif not machine.participants:
            text = "Waiting for others to join…"
        else:
            text = ""
        set_plain(self.status, text)

    def _request_failed(self, kind: str, code: str, message: str) -> None:
        if kind == "meeting.invite":
            texts = {
                "forbidden": "You can only invite people who accepted you as a contact.",
                "not_found": "There is no such user.",
            }
            set_plain(self.status, texts.get(code, f"The invitation failed: {message}"))

    def _stats(self, username: str, sample: QualitySample) -> None:
        self._grades[username] = sample.grade
        grades = list(self._grades.values())
        worst = next((g for g in ("poor", "fair", "good") if g in grades), "good")
        self.quality.setPixmap(icon("signal-bars", GRADE_COLORS[worst], 18).pixmap(18, 18))
        lines = [f"Quality: {worst}"]
        for name, grade in sorted(self._grades.items()):
            tile = self.model.tile(name)
            lines.append(f"{tile.display_name if tile else name}: {grade}")
        self.quality.setToolTip("\n".join(lines))
        self.quality.setAccessibleDescription(", ".join(lines))

    def _tick(self) -> None:
        if self.connected_at is None:
            return
        seconds = int(time.monotonic() - self.connected_at)
        hours, rest = divmod(seconds, 3600)
        text = f"{rest // 60:02d}:{rest % 60:02d}"
        self.timer_label.setText(f"{hours}:{text}" if hours else text)

    # Chat ------------------------------------------------------------------------------

    def _sender_name(self, username: str) -> str:
        """Who wrote a message: their name in the meeting, as a contact, or their username."""
        tile = self.model.tile(username)
        if tile is not None:
            return tile.display_name
        contact = self.controller.contacts.contact(username)
        return contact.display_name if contact is not None else username

    def _chat(self, username: str, message: ChatMessage) -> None:
        sender = self._sender_name(username)
        line = ChatLine(message.id, message.text, mine=False, sender=sender, at=message.sent_at)
        self.chat_model.add(line)
        if not self.chat_button.isChecked():
            self.chat_button.setChecked(True)

    def _chat_history(self, username: str, message: ChatMessage) -> None:
        """A message from before this end joined (or while it was away), in its place; the
        panel is not opened for it, the button's tooltip counts them."""
        mine = message.outgoing
        line = ChatLine(
            message.id,
            message.text,
            mine=mine,
            delivered=mine,
            sender="" if mine else self._sender_name(username),
            at=message.sent_at,
        )
        self.chat_model.add_earlier(line)
        if not self.chat_button.isChecked():
            count = self.chat_model.rowCount()
            self.chat_button.setToolTip(
                f"Chat ({SHORTCUTS['chat']}): {count} message{'s' if count != 1 else ''}"
            )

    def _send_chat(self) -> None:
        text = self.chat.input.text().strip()
        if not text:
            return
        try:
            message = self.session.send_chat(text)
        except ChatUnavailable:
            self.chat.input.setPlaceholderText("Nobody can receive chat yet")
            return
        except ValueError:
            return
        self.chat_model.add(ChatLine(message.id, message.text, mine=True, at=message.sent_at))
        self.chat.input.clear()
        self.chat.view.scrollToBottom()

    def _toggle_chat(self, shown: bool) -> None:
        self.chat.setVisible(shown)
        if shown:
            self.chat_button.setToolTip(f"Chat ({SHORTCUTS['chat']})")  # (no count: read)
            self.chat.input.setFocus()

    # Controls --------------------------------------------------------------------------

    @staticmethod
    def _look(button: QPushButton, icon_name: str, tip: str, shortcut: str) -> None:
        """A control's icon, tooltip (with its shortcut) and accessible name."""
        button.setIcon(icon(icon_name, "#ffffff", 24))
        button.setToolTip(f"{tip} ({SHORTCUTS[shortcut]})")
        button.setAccessibleName(tip)

    def _mute(self, muted: bool) -> None:
        self.session.set_audio_enabled(not muted)
        self._look(
            self.mic_button,
            "mic-off" if muted else "mic",
            "Unmute" if muted else "Mute",
            "microphone",
        )
        self.muted_hint.set_muted(muted)
        self._show_people()

    def _camera_off(self, off: bool) -> None:
        self.session.set_video_enabled(not off)
        tip = "Turn camera on" if off else "Turn camera off"
        self._look(self.camera_button, "camera-off" if off else "camera", tip, "camera")
        self._show_people()

    def _offer_sharing(self) -> None:
        from gui.devices.screen import capture_supported

        support = capture_supported()
        if support.supported:
            self.screen_button.setEnabled(True)
        else:
            self.screen_button.setToolTip(f"Screen sharing does not work here: {support.reason}")

    @property
    def sharing_screen(self) -> bool:
        """Whether this end sends a screen now."""
        return self.session.shared.media.screen is not None

    def _toggle_share(self, on: bool) -> None:
        if on and not self.sharing_screen:
            from gui.devices.screen import capture_supported

            if capture_supported().system_picker:
                # The desktop portal shows the system's own picker when the capture starts:
                # ours would only ask the same question twice.
                self.share(None)
                return
            self.picker = ScreenPicker(self)
            self.picker.chosen.connect(self.share)
            self.picker.finished.connect(lambda _: self._set_share_button(self.sharing_screen))
            self.picker.show()
        elif not on and self.sharing_screen:
            self.stop_sharing()

    def share(self, source: object) -> None:
        """Send ``source`` (a screen or a window of the picker; ``None``: what the system's
        picker chooses) to everyone. Sharing the whole screen, the window leaves it."""
        from gui.devices.screen import ScreenTrack

        track = ScreenTrack(source)  # type: ignore[arg-type]
        track.on("lost", self._sharing_lost)
        self.session.replace_track(SCREEN, track)
        note, whole = share_note(track)
        set_plain(self.sharing_note, note)
        self.sharing_note.show()
        if whole:
            self.out_of_the_share.start()
        else:
            self.out_of_the_share.stop()
        self._set_share_button(True)
        self._show_people()

    def stop_sharing(self) -> None:
        """Stop sending the screen."""
        self.session.replace_track(SCREEN, None)
        self.out_of_the_share.stop()
        self.sharing_note.hide()
        self._set_share_button(False)
        self._show_people()

    def _sharing_lost(self, reason: str) -> None:
        self.stop_sharing()
        set_plain(self.sharing_note, f"Screen sharing stopped: {reason}")
        self.sharing_note.show()

    def _set_share_button(self, on: bool) -> None:
        self.screen_button.blockSignals(True)
        self.screen_button.setChecked(on)
        self.screen_button.blockSignals(False)
        tip = "Stop sharing" if on else "Share screen"
        self._look(self.screen_button, "screen-share-stop" if on else "screen-share", tip, "screen")

    def _fill_devices(self) -> None:
        self.devices_menu.clear()
        provider = getattr(self.controller, "devices", None)
        fill = getattr(provider, "fill_meeting_menu", None)
        if fill is None:
            action = self.devices_menu.addAction("No devices to choose from")
            action.setEnabled(False)
            return
        fill(self.devices_menu, self.session, self._attach_preview)

    def _invite(self) -> None:
        """Pick accepted contacts who are not in the meeting yet."""
        machine = self.session.machine
        present = {self.me, *machine.participants, *machine.invited}
        self.picker_dialog = ContactPicker(
            self.controller.contacts, exclude=present, action="Invite", parent=self
        )
        self.picker_dialog.setWindowTitle("Invite to the meeting")
        self.picker_dialog.chosen.connect(self.session.invite)
        self.picker_dialog.open()

    def _leave(self) -> None:
        self.session.leave()

    def _end_for_all(self) -> None:
        self.session.end()

    # Layout ----------------------------------------------------------------------------

    def _layout_stage(self) -> None:
        area = self.stage.rect()
        tiles = self.model.tiles()
        views = [self.tile_views[t.username] for t in tiles if t.username in self.tile_views]
        screen = self.screen_owner is not None and self.screen_view.frame is not None
        self.screen_view.setVisible(screen)
        self.screen_label.setVisible(screen)
        if screen:
            strip = max(90, min(160, area.height() // 5))
            self.screen_view.setGeometry(0, 0, area.width(), area.height() - strip - 6)
            self.screen_label.adjustSize()
            self.screen_label.move(8, 8)
            self.screen_label.raise_()
            cells = strip_cells(len(views), area.width(), area.height())
            cells = [(x, y, w, min(h, strip)) for x, y, w, h in cells]
            cells = [(x, area.height() - h, w, h) for x, _, w, h in cells]
        else:
            cells = grid_cells(len(views), area.width(), area.height())
        for view, (x, y, w, h) in zip(views, cells, strict=True):
            view.setGeometry(QRect(x, y, w, h))
        self.muted_hint.place(area)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Lay the tiles out again."""
        super().resizeEvent(event)
        self._layout_stage()

    def showEvent(self, event: object) -> None:
        """Lay out once the window has its size."""
        super().showEvent(event)  # type: ignore[arg-type]
        QTimer.singleShot(0, self._layout_stage)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window leaves the meeting."""
        if not self.session.machine.ended:
            self.session.leave()
        self._levels.stop()
        self._clock.stop()
        self.muted_hint.stop()
        self._unpreview()
        for username in list(self._camera_receivers) + list(self._screen_receivers):
            self._forget(username)
        super().closeEvent(event)
