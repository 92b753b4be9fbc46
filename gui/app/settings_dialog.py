"""Settings: devices with a live preview and a level meter, server, ICE servers, theme, tray.

The microphone's preview runs through the audio processing with the boxes as they are ticked
(a processor of its own, so that nothing changes before Save): the level meter shows what
the other side would get, and "Test microphone" records a few seconds of it and plays them
back on the chosen speaker, so people hear themselves as others will.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import av
from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtMultimedia import QSoundEffect
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui.app.account_page import AccountPage
from gui.app.controller import AppController
from gui.app.media import AppMedia
from gui.app.resources import sound_path
from gui.app.video_view import VideoView
from gui.core.profile import IceServerSetting, Profile
from gui.core.servers import parse_servers
from gui.core.signaling_client import tls_context
from gui.media.analysis import AudioReceiver, VideoReceiver
from gui.media.processing import AudioProcessor, ProcessingOptions

log = logging.getLogger("parley.app.settings")

#: How long "Test microphone" records before playing it back.
TEST_RECORDING_MS = 4000
#: The processing boxes: (setting, label, tooltip).
PROCESSING_BOXES = (
    (
        "echo_cancellation",
        "Cancel echo",
        "Keeps the other side from hearing themselves when you use speakers, not a headset",
    ),
    ("noise_suppression", "Reduce background noise", "Fans, traffic, keyboards"),
    ("high_pass_filter", "Filter out low rumble", "Hum, wind, bumps on the desk"),
    ("auto_gain_control", "Adjust my volume automatically", "Others hear you at an even level"),
)


def parse_ice_servers(text: str) -> list[IceServerSetting]:
    """One server per line: ``URL`` or ``URL USERNAME CREDENTIAL``; raises ValueError."""
    servers = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        url = parts[0]
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise ValueError(f"line {number}: a server URL starts with stun: or turn:")
        if url.startswith("turn") and len(parts) != 3:
            raise ValueError(f"line {number}: a TURN server needs a username and a credential")
        if len(parts) not in (1, 3):
            raise ValueError(f"line {number}: write URL, or URL USERNAME CREDENTIAL")
        servers.append(
            IceServerSetting(
                [url], parts[1] if len(parts) == 3 else None, parts[2] if len(parts) == 3 else None
            )
        )
    return servers


def format_ice_servers(servers: list[IceServerSetting]) -> str:
    """The text form of :func:`parse_ice_servers`."""
    lines = []
    for server in servers:
        for url in server.urls:
            extra = f" {server.username} {server.credential}" if server.username else ""
            lines.append(url + extra)
    return "\n".join(lines)


class SettingsDialog(QDialog):
    """Shown with ``show()`` (never ``exec()``), saved with Save."""

    applied = Signal()

    def __init__(self, profile: Profile, media: AppMedia, controller: AppController) -> None:
        super().__init__()
        self.profile = profile
        self.media = media
        self.controller = controller
        self.setWindowTitle("Settings — Parley")
        self.resize(560, 520)
        self._preview_tasks: list[Any] = []

        # Audio & video.
        self.camera = QComboBox()
        self.camera.setAccessibleName("Camera")
        self.microphone = QComboBox()
        self.microphone.setAccessibleName("Microphone")
        self.speaker = QComboBox()
        self.speaker.setAccessibleName("Speaker")
        self.synthetic = QCheckBox("Send a test pattern and tone instead (no camera needed)")
        self.preview = VideoView(mirrored=True)
        self.preview.setMinimumHeight(180)
        self.preview.setAccessibleName("Camera preview")
        self.level = QProgressBar()
        self.level.setRange(0, 100)
        self.level.setTextVisible(False)
        self.level.setAccessibleName("Microphone level")
        self.test_microphone = QPushButton("Test microphone")
        self.test_microphone.setToolTip(
            "Records a few seconds and plays them back, as others will hear you"
        )
        self.test_microphone.clicked.connect(self._test_microphone)
        self.processing: dict[str, QCheckBox] = {}
        processing = QVBoxLayout()
        for name, label, tip in PROCESSING_BOXES:
            box = QCheckBox(label)
            box.setToolTip(tip)
            box.toggled.connect(lambda _: self._processing_changed())
            self.processing[name] = box
            processing.addWidget(box)
        self.test_sound = QPushButton("Play a test sound")
        self.test_sound.clicked.connect(self._play_test_sound)
        self.effect: QSoundEffect | None = None  # made when there is a speaker to play on
        devices = QWidget()
        form = QFormLayout(devices)
        form.addRow("Camera", self.camera)
        form.addRow(self.preview)
        form.addRow("Microphone", self.microphone)
        level_row = QHBoxLayout()
        level_row.addWidget(self.level, 1)
        level_row.addWidget(self.test_microphone)
        form.addRow("Level", level_row)
        form.addRow("Sound", processing)
        form.addRow("Speaker", self.speaker)
        form.addRow("", self.test_sound)
        form.addRow(self.synthetic)
        self.camera.currentIndexChanged.connect(lambda _: self._restart_preview())
        self.microphone.currentIndexChanged.connect(lambda _: self._restart_preview())
        self.synthetic.toggled.connect(lambda _: self._restart_preview())

        # Server: one address, or several of one service (its instances), one per line.
        self.server = QPlainTextEdit()
        self.server.setPlaceholderText(
            "Empty: the built-in server on this computer.\n"
            "Several addresses of one service, one per line: Parley moves to another when one "
            "is gone."
        )
        self.server.setAccessibleName("Server addresses")
        self.server.setTabChangesFocus(True)
        self.server.setFixedHeight(self.server.fontMetrics().lineSpacing() * 4 + 12)
        self.share = QCheckBox("Let other computers on my network use my built-in server")
        self.share_note = QLabel()
        self.share_note.setWordWrap(True)
        self.share_note.setProperty("role", "muted")
        self.share_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.trust_cert = QLineEdit()
        self.trust_cert.setPlaceholderText("None: only what this computer trusts")
        self.trust_cert.setAccessibleName("Trusted server certificate")
        self.trust_cert.setToolTip(
            "For a wss:// server with its own (self-signed) certificate: the PEM file of that "
            "certificate, or of the authority that signed it. Only choose one you got from the "
            "server's owner."
        )
        choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose_certificate)
        trust_row = QHBoxLayout()
        trust_row.addWidget(self.trust_cert)
        trust_row.addWidget(choose)
        server_page = QWidget()
        server_form = QFormLayout(server_page)
        server_form.addRow("Servers", self.server)
        server_form.addRow("Trust certificate", trust_row)
        server_form.addRow(self.share)
        server_form.addRow(self.share_note)

        # Network.
        self.ice = QPlainTextEdit()
        self.ice.setAccessibleName("STUN and TURN servers")
        self.ice.setPlaceholderText(
            "One per line:\nstun:stun.example.org:3478\nturn:turn.example.org:3478 USER PASSWORD"
        )
        network_page = QWidget()
        network = QVBoxLayout(network_page)
        note = QLabel(
            "STUN and TURN servers help calls connect across networks. With none, "
            "Parley contacts nobody but the other person."
        )
        note.setWordWrap(True)
        network.addWidget(note)
        network.addWidget(self.ice)

        # Appearance and general.
        self.theme = QComboBox()
        self.theme.setAccessibleName("Theme")
        for value, text in (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
            self.theme.addItem(text, value)
        self.tray = QCheckBox("Keep running in the tray when the window is closed")
        self.notifications = QCheckBox("Show notifications for calls and requests")
        self.keep = QCheckBox("Keep me signed in")
        general_page = QWidget()
        general = QFormLayout(general_page)
        general.addRow("Theme", self.theme)
        general.addRow(self.tray)
        general.addRow(self.notifications)
        general.addRow(self.keep)

        self.tabs = QTabWidget()
        self.tabs.addTab(devices, "Audio && video")
        self.tabs.addTab(server_page, "Server")
        self.tabs.addTab(network_page, "Network")
        self.tabs.addTab(general_page, "General")
        self.account = AccountPage(controller)
        self.tabs.addTab(self.account, "Account")
        self.tabs.currentChanged.connect(
            lambda _: self.account.refresh() if self.tabs.currentWidget() is self.account else None
        )
        self.error = QLabel()
        self.error.setProperty("role", "error")
        self.error.hide()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._level_timer = QTimer(self)
        self._level_timer.setInterval(50)
        self._level_timer.timeout.connect(self._show_level)
        self._audio_probe: AudioReceiver | None = None
        #: The preview's processing (the boxes as ticked, not yet saved).
        self._preview_processor: AudioProcessor | None = None
        #: "Test microphone": frames recorded, then played back on this speaker.
        self._recording: list[av.AudioFrame] | None = None
        self._playback: Any = None
        self._tail_ticks = 0
        self._test_timer = QTimer(self)
        self._test_timer.timeout.connect(self._feed_playback)

    # Loading and saving -------------------------------------------------------------------

    def _fill(self, combo: QComboBox, devices: list[Any], current: str | None) -> None:
        combo.blockSignals(True)
        combo.clear()
        if not devices:
            combo.addItem("None found", None)
        for device in devices:
            combo.addItem(device.description, device.id)
            if device.id == current or (not current and device.is_default):
                combo.setCurrentIndex(combo.count() - 1)
        combo.blockSignals(False)

    def load(self) -> None:
        """Show the current settings."""
        settings = self.profile.settings
        catalog = self.media.catalog
        self._fill(self.camera, catalog.cameras(), settings.camera_id)
        self._fill(self.microphone, catalog.audio_inputs(), settings.microphone_id)
        self._fill(self.speaker, catalog.audio_outputs(), settings.speaker_id)
        self.test_sound.setEnabled(bool(catalog.audio_outputs()))
        self.synthetic.setChecked(settings.synthetic_media)
        for name, box in self.processing.items():
            box.blockSignals(True)
            box.setChecked(getattr(settings, name))
            box.blockSignals(False)
        self.server.setPlainText("\n".join(settings.server_urls))
        self.trust_cert.setText(settings.trust_cert or "")
        self.share.setChecked(settings.share_on_lan)
        urls = self.controller.embedded.shared_urls or (
            [self.controller.embedded.url] if self.controller.embedded.url else []
        )
        note = (
            "Give others this address: " + ", ".join(urls)
            if urls
            else "The built-in server is not running in this window."
        )
        certificate = self.controller.embedded.certificate
        if certificate is not None and urls:
            # Shared on the network: TLS with this profile's certificate, pinned on first use.
            note += (
                ". It is encrypted; the first time someone connects, their Parley shows "
                "these words, which must be the same: " + " ".join(certificate.words)
            )
        self.share_note.setText(note)
        self.ice.setPlainText(format_ice_servers(settings.ice_servers))
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))
        self.tray.setChecked(settings.start_in_tray)
        self.notifications.setChecked(settings.notifications)
        self.keep.setChecked(settings.keep_signed_in)
        self.error.hide()

    def save(self) -> None:
        """Check and store the settings, then apply them."""
        try:
            ice = parse_ice_servers(self.ice.toPlainText())
        except ValueError as exc:
            self._refuse(str(exc), 2)
            return
        try:
            servers = parse_servers(self.server.toPlainText())
        except ValueError as exc:
            self._refuse(str(exc)[:1].upper() + str(exc)[1:] + ".", 1)
            return
        trust_cert = self.trust_cert.text().strip() or None
        if trust_cert is not None:
            try:
                tls_context(trust_cert)
            except ValueError as exc:
                self._refuse(str(exc)[:1].upper() + str(exc)[1:] + ".", 1)
                return
        settings = self.profile.settings
        settings.camera_id = self.camera.currentData()
        settings.microphone_id = self.microphone.currentData()
        settings.speaker_id = self.speaker.currentData()
        settings.synthetic_media = self.synthetic.isChecked()
        for name, box in self.processing.items():
            setattr(settings, name, box.isChecked())
        settings.server_urls = servers
        settings.trust_cert = trust_cert
        settings.share_on_lan = self.share.isChecked()
        settings.ice_servers = ice
        settings.theme = self.theme.currentData()
        settings.start_in_tray = self.tray.isChecked()
        settings.notifications = self.notifications.isChecked()
        settings.keep_signed_in = self.keep.isChecked()
        self.profile.save_settings()
        self.applied.emit()
        self.close()

    def _refuse(self, text: str, tab: int) -> None:
        """Not saved: say why, on the tab of what is wrong."""
        self.error.setText(text)
        self.error.show()
        self.tabs.setCurrentIndex(tab)

    def _choose_certificate(self) -> None:
        """A file dialog for the certificate to trust (opened, never exec'd, under qasync)."""
        dialog = QFileDialog(self, "The server's certificate")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["Certificates (*.pem *.crt *.cer)", "All files (*)"])
        dialog.fileSelected.connect(self.trust_cert.setText)
        dialog.open()

    # Live preview -------------------------------------------------------------------------

    def showEvent(self, event: Any) -> None:
        """Start the preview while the window is open."""
        super().showEvent(event)
        self._restart_preview()

    def closeEvent(self, event: Any) -> None:
        """Stop the preview: no device stays open behind a closed window."""
        self._stop_preview_now()
        super().closeEvent(event)

    def hideEvent(self, event: Any) -> None:
        """Hidden counts as closed."""
        self._stop_preview_now()
        super().hideEvent(event)

    def _restart_preview(self) -> None:
        self._stop_preview_now()
        if not self.isVisible() or self.controller.call is not None:
            return  # during a call the devices belong to the call
        saved = self.profile.settings.synthetic_media
        self.profile.settings.synthetic_media = self.synthetic.isChecked()
        self._preview_processor = AudioProcessor(self._chosen_processing())
        try:
            camera = self.media.camera(self.camera.currentData())
            microphone = self.media.microphone(
                self.microphone.currentData(), processor=self._preview_processor
            )
        finally:
            self.profile.settings.synthetic_media = saved
        if camera is not None:
            video = VideoReceiver(camera, decode_numbers=False)
            video.listeners.append(self.preview.show_frame)
            video.start()
            self._preview_tasks.append(video)
        if microphone is not None:
            self._audio_probe = AudioReceiver(microphone, buffer_seconds=0.2)
            self._audio_probe.start()
            self._preview_tasks.append(self._audio_probe)
            self._level_timer.start()
            self.test_microphone.setEnabled(bool(self.media.catalog.audio_outputs()))

    def _stop_preview_now(self) -> None:
        self._stop_test()
        self._level_timer.stop()
        self.level.setValue(0)
        for consumer in self._preview_tasks:
            consumer.track.stop()
            asyncio.ensure_future(consumer.stop())  # noqa: RUF006 (it finishes by itself)
        self._preview_tasks.clear()
        self._audio_probe = None
        self._preview_processor = None
        self.preview.clear()
        self.test_microphone.setEnabled(False)

    def _show_level(self) -> None:
        if self._audio_probe is not None:
            self.level.setValue(min(100, int(self._audio_probe.rms(0.05) * 300)))

    # The microphone's processing and its test --------------------------------------------

    def _chosen_processing(self) -> ProcessingOptions:
        return ProcessingOptions(**{n: box.isChecked() for n, box in self.processing.items()})

    def _processing_changed(self) -> None:
        """A box was ticked: the preview (meter, test) follows at once; Save keeps it."""
        if self._preview_processor is not None:
            self._preview_processor.configure(self._chosen_processing())

    def _test_microphone(self) -> None:
        """Record a few seconds of the processed microphone, then play them back."""
        probe = self._audio_probe
        if probe is None or self._recording is not None or self._playback is not None:
            return
        self._recording = []
        probe.listeners.append(self._record)
        self.test_microphone.setEnabled(False)
        self.test_microphone.setText("Recording… say something")
        QTimer.singleShot(TEST_RECORDING_MS, self, self._play_back)

    def _record(self, frame: av.frame.Frame) -> None:
        if self._recording is not None and isinstance(frame, av.AudioFrame):
            self._recording.append(frame)

    def _play_back(self) -> None:
        from gui.devices import SpeakerSink

        recorded, self._recording = self._recording, None
        probe = self._audio_probe
        if recorded is None or probe is None:
            return
        if self._record in probe.listeners:
            probe.listeners.remove(self._record)
        device = self.media.catalog.audio_output(self.speaker.currentData() or "")
        sink = SpeakerSink(device, catalog=self.media.catalog, parent=self)
        if self._preview_processor is not None:  # what plays back is echo, not you
            sink.played_listeners.append(self._preview_processor.played)
        self._playback = (sink, recorded)
        self.test_microphone.setText("Playing back…")
        self._test_timer.start(20)  # the frames' own pace; the sink's buffer absorbs jitter

    def _feed_playback(self) -> None:
        if self._playback is None:
            self._test_timer.stop()
            return
        sink, frames = self._playback
        if frames:
            sink.feed(frames.pop(0))
            self._tail_ticks = 15  # then 300 ms for the sink's queue to play out
        else:
            self._tail_ticks -= 1
            if self._tail_ticks <= 0:
                self._stop_test()

    def _stop_test(self) -> None:
        """End a test under way (finished, or the preview stops)."""
        self._test_timer.stop()
        probe = self._audio_probe
        if probe is not None and self._record in probe.listeners:
            probe.listeners.remove(self._record)
        self._recording = None
        if self._playback is not None:
            self._playback[0].stop()
            self._playback = None
        self.test_microphone.setText("Test microphone")
        self.test_microphone.setEnabled(self._audio_probe is not None)

    def _play_test_sound(self) -> None:
        if not self.media.catalog.audio_outputs():
            return  # no speaker: the button is disabled, and Qt would only complain
        if self.effect is None:
            self.effect = QSoundEffect(self)
            self.effect.setSource(QUrl.fromLocalFile(str(sound_path("ringtone"))))
        device = self.media.catalog.audio_output(self.speaker.currentData() or "")
        if device is not None:
            self.effect.setAudioDevice(device)
        self.effect.play()
