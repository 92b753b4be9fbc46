"""The app's microphone processing with real devices (this folder's private PulseAudio).

* Settings: the level meter follows the processed microphone, the boxes change the preview's
  processing at once, and "Test microphone" records what others would hear and plays it back
  on the speaker, whose monitor is recorded.
* A call (the app calls a ``parley-cli``): a person muted who talks is told so ("You are
  muted"), not one who stays quiet; the hint goes when the talking stops, or on unmute.

The microphone hears synthetic speech (:mod:`tests.media.signals`) played into its feed with
``pacat``; the feed's steady 440 Hz tone is muted meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from gui.app.settings_dialog import TEST_RECORDING_MS
from gui.app.ui import ParleyUi
from gui.media.processing import ProcessedAudioTrack
from signaling.server import SignalingServer
from tests.cli.procs import Launcher
from tests.devices.app_call import call_from_the_app
from tests.devices.conftest import RECORD_RATE, PulseServer
from tests.devices.pulse import MIC_FEED
from tests.media.signals import speech
from tests.waiting import until
from tests.wire import befriend

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_home")]


@pytest.fixture
def talking(pulse: PulseServer) -> Iterator[PulseServer]:
    """The microphone hears a voice talking (for 30 s) instead of its tone."""
    pulse.mute_microphone(True)
    player = pulse.play(MIC_FEED, speech(30, 17, level_db=-16))
    try:
        yield pulse
    finally:
        player.terminate()
        player.wait(timeout=5)
        pulse.mute_microphone(False)


async def test_settings_meter_boxes_and_test_microphone(
    qt_app: QApplication, talking: PulseServer
) -> None:
    ui = ParleyUi(qt_app, "processing", None)
    try:
        ui.open_settings()
        dialog = ui.settings_dialog
        assert dialog is not None
        assert all(box.isChecked() for box in dialog.processing.values())  # on by default
        await until(lambda: dialog.level.value() > 0, 10, "the level meter")
        processor = dialog._preview_processor
        assert processor is not None and processor.running
        probe = dialog._audio_probe
        assert probe is not None and isinstance(probe.track, ProcessedAudioTrack)
        assert probe.track.processor is processor  # the meter shows the processed signal

        dialog.processing["noise_suppression"].setChecked(False)
        assert not processor.options.noise_suppression  # the preview follows at once
        assert ui.profile.settings.noise_suppression  # nothing saved before Save

        assert dialog.test_microphone.isEnabled()
        dialog.test_microphone.click()
        assert "Recording" in dialog.test_microphone.text()
        await until(lambda: "Playing" in dialog.test_microphone.text(), 10, "the playback")
        start = talking.monitor.position
        await until(lambda: dialog.test_microphone.isEnabled(), 15, "the end of the test")
        played = talking.monitor.samples(start)
        # The playback went to the speaker, and its echo canceller was told (a reference).
        assert processor.render_chunks > 100
        dialog.save()
        assert ui.profile.settings.noise_suppression is False
    finally:
        await ui.shutdown()
    blocks = played[: played.size - played.size % 480].reshape(-1, 480)
    loud = np.sqrt(np.mean(blocks**2, axis=1)) > 10 ** (-40 / 20)
    print(f"test microphone: {loud.sum() / 100:.1f} s of {played.size / RECORD_RATE:.1f} s loud")
    # The voice talks most of the time; a broken recording or playback gives silence.
    assert loud.sum() / 100 > TEST_RECORDING_MS / 1000 / 3


async def test_a_muted_person_who_talks_is_told(
    qt_app: QApplication, pulse: PulseServer, server: SignalingServer
) -> None:
    for client in await befriend(server.url, "mira", "otto"):
        await client.request("logout")
        await client.close()
    launcher = Launcher(server.url)
    ui = ParleyUi(qt_app, "mira", server.url)
    ui.profile.settings.keep_signed_in = False
    player = None
    pulse.mute_microphone(True)  # a quiet room
    try:
        peer = launcher.cli(
            "otto", "answer", "--audio", "none", "--video", "none", "--wait", "60",
            password="correct horse",
        )  # fmt: skip
        session = await call_from_the_app(ui, "mira", "otto", "correct horse")
        window = ui.calls[0]
        assert isinstance(session.media.audio, ProcessedAudioTrack)
        window.mic_button.click()  # muted
        assert not session.audio_enabled
        await asyncio.sleep(2.5)
        assert not window.muted_hint.isVisible()  # quiet: nothing to say
        player = pulse.play(MIC_FEED, speech(20, 17, level_db=-16))
        await until(window.muted_hint.isVisible, 10, "the muted hint")
        player.terminate()
        await until(lambda: not window.muted_hint.isVisible(), 10, "the hint to go")
        player = pulse.play(MIC_FEED, speech(20, 18, level_db=-16))
        await until(window.muted_hint.isVisible, 10, "the muted hint again")
        window.mic_button.click()  # unmuted: heard now, so no hint
        assert not window.muted_hint.isVisible() and session.audio_enabled
        ui.controller.hang_up()
        await until(lambda: peer.proc.poll() is not None, 20, "parley-cli to exit")
    finally:
        if player is not None and player.poll() is None:
            player.terminate()
        pulse.mute_microphone(False)
        await ui.shutdown()
        launcher.cleanup()
