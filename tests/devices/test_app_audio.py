"""The app plays a call's audio on the speaker: end to end, into the sound server's null sink.

The app (``ParleyUi``, in this process, with its real devices: this folder's private
PulseAudio) calls a ``parley-cli`` child process that answers sending an 880 Hz tone, a
pitch nothing else here makes (the test microphone hears 440 Hz). The speaker's monitor,
recorded all session long, must then carry 880 Hz at a clear level.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from gui.app.ui import ParleyUi
from gui.media.tone import dominant_frequency
from signaling.server import SignalingServer
from tests.cli.procs import Launcher
from tests.devices.app_call import call_from_the_app
from tests.devices.conftest import RECORD_RATE, PulseServer
from tests.waiting import until
from tests.wire import befriend

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_home")]

TONE = 880.0


async def test_the_app_plays_the_other_side_on_the_speaker(
    qt_app: QApplication,
    pulse: PulseServer,
    server: SignalingServer,
) -> None:
    for client in await befriend(server.url, "hana", "tony"):
        await client.request("logout")
        await client.close()
    launcher = Launcher(server.url)
    ui = ParleyUi(qt_app, "hana", server.url)
    ui.profile.settings.keep_signed_in = False
    try:
        peer = launcher.cli(
            "tony",
            "answer",
            "--audio",
            f"tone:{TONE:.0f}",
            "--video",
            "none",
            "--wait",
            "60",
            password="correct horse",
        )
        await call_from_the_app(ui, "hana", "tony", "correct horse")
        await until(lambda: ui.media.speaker is not None, 5, "the speaker to open")
        await asyncio.sleep(1.0)  # past the start of playback
        start = pulse.monitor.position
        recorded = await pulse.monitor.wait_for(start, 2 * RECORD_RATE, timeout=10)
        speaker = ui.media.speaker
        assert speaker is not None
        ui.controller.hang_up()
        await until(lambda: peer.proc.poll() is not None, 20, "parley-cli to exit")
    finally:
        await ui.shutdown()
        launcher.cleanup()
    level = float(np.sqrt(np.mean(recorded**2)))
    frequency = dominant_frequency(recorded, RECORD_RATE)
    print(f"app speaker: {frequency:.1f} Hz at {level:.3f} rms, {speaker.underruns} underruns")
    assert abs(frequency - TONE) < 3, f"the sink played {frequency:.1f} Hz"
    assert level > 0.05  # the tone is sent at about 0.2 rms; silence is 0
    assert peer.proc.returncode == 0, peer.describe()
