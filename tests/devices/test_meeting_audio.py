"""The app plays everyone in a meeting at once: two participants mixed on one speaker.

The app (``ParleyUi``, in this process, with this folder's private PulseAudio) starts a
meeting with two ``parley-cli`` child processes that answer, one sending 880 Hz, the other
1320 Hz (pitches nothing else here makes: the test microphone hears 440 Hz). The speaker's
monitor must carry both at once, each at a clear level: the meeting's mixer sums them
(played one after the other, each would come at half its pace, and garbled).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from gui.app.ui import ParleyUi
from gui.core.meeting_machine import LinkState, MeetingState
from signaling.server import SignalingServer
from tests.cli.procs import Launcher
from tests.devices.conftest import RECORD_RATE, PulseServer
from tests.waiting import until
from tests.wire import befriend

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_home")]

TONES = {"tony": 880.0, "uma": 1320.0}


def level_at(recorded: np.ndarray, hz: float) -> float:
    """The amplitude of ``hz`` in ``recorded`` (a sine of amplitude A reads about A)."""
    window = np.hanning(recorded.size)
    spectrum = np.abs(np.fft.rfft(recorded * window)) * 2 / window.sum()
    freqs = np.fft.rfftfreq(recorded.size, 1 / RECORD_RATE)
    band = (freqs > hz - 5) & (freqs < hz + 5)
    return float(spectrum[band].max())


async def test_the_app_mixes_every_participant_on_the_speaker(
    qt_app: QApplication,
    pulse: PulseServer,
    server: SignalingServer,
) -> None:
    for client in await befriend(server.url, "hana", *TONES):
        await client.request("logout")
        await client.close()
    launcher = Launcher(server.url)
    ui = ParleyUi(qt_app, "hana", server.url)
    ui.profile.settings.keep_signed_in = False
    try:
        peers = [
            launcher.cli(
                name,
                "meet",
                "answer",
                "--audio",
                f"tone:{tone:.0f}",
                "--video",
                "none",
                "--wait",
                "60",
                password="correct horse",
            )
            for name, tone in TONES.items()
        ]
        await ui.controller.sign_in(None, "hana", "correct horse", keep=False)
        contacts = ui.controller.contacts
        await until(
            lambda: all(
                (c := contacts.contact(n)) is not None and c.presence == "online" for n in TONES
            ),
            30,
            "the parley-cli peers to sign in",
        )
        session = ui.controller.start_meeting(list(TONES), video=False)
        assert session is not None
        await until(
            lambda: (
                session.state is MeetingState.JOINED
                and set(session.machine.participants) == set(TONES)
                and all(
                    p.link is LinkState.CONNECTED for p in session.machine.participants.values()
                )
            ),
            30,
            "both participants connected",
        )
        await until(lambda: ui.media.speaker is not None, 5, "the speaker to open")
        await asyncio.sleep(1.5)  # past the start of playback
        start = pulse.monitor.position
        recorded = await pulse.monitor.wait_for(start, 2 * RECORD_RATE, timeout=10)
        mixer = ui.media.mixer
        assert mixer is not None and sorted(mixer.keys) == sorted(TONES)
        session.end()
        for peer in peers:
            await until(lambda p=peer: p.proc.poll() is not None, 20, "parley-cli to exit")
    finally:
        await ui.shutdown()
        launcher.cleanup()
    levels = {name: level_at(recorded, hz) for name, hz in TONES.items()}
    between = level_at(recorded, 1100.0)
    print(f"meeting speaker: {levels}, at 1100 Hz {between:.4f}, {mixer.frames} frames mixed")
    assert all(level > 0.05 for level in levels.values()), levels  # each sent at about 0.2-0.3
    assert between < min(levels.values()) / 10  # two clean tones, not a garble
    for peer in peers:
        assert peer.proc.returncode == 0, peer.describe()
