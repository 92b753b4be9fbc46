"""The microphone's period: 10 ms (512 frames) when the audio is processed, and no audio lost
to a busy event loop with it (issue 11)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gui.app.media import AppMedia
from gui.core.profile import Profile
from gui.devices import PROCESSING_PERIOD_FRAMES, MicrophoneTrack
from gui.media.processing import ProcessedAudioTrack
from tests.devices.conftest import PulseServer

pytestmark = pytest.mark.usefixtures("qt_app")


@pytest.mark.parametrize("processing", [True, False])
async def test_processing_on_captures_in_10ms_periods(
    pulse: PulseServer, tmp_path: Path, processing: bool
) -> None:
    """What a call's microphone asks of Qt: 512 frames (10.7 ms at 48 kHz, the power of two
    nearest the processing's 10 ms chunks) with any processing on, Qt's default without."""
    profile = Profile("period", root=tmp_path)
    for part in ("echo_cancellation", "noise_suppression", "high_pass_filter", "auto_gain_control"):
        setattr(profile.settings, part, processing)
    media = AppMedia(profile)
    track = media.microphone()
    try:
        assert isinstance(track, ProcessedAudioTrack)
        assert isinstance(track.source, MicrophoneTrack)
        native = track.source.source.nativePeriodFrameCount()
        assert native == (PROCESSING_PERIOD_FRAMES if processing else -1)
        await asyncio.wait_for(track.recv(), 5)  # and it captures
    finally:
        track.stop()


async def test_10ms_capture_loses_nothing_to_a_loop_busy_in_bursts(pulse: PulseServer) -> None:
    """The loop blocked 20-50 ms every ~100 ms (a busy GUI: Python code holding the GIL) while
    a 512-frame microphone is read for 4 s. Qt's ring buffer (250 ms) and our queue (200 ms)
    hold the bursts: our queue drops nothing, and the samples captured keep up with the wall
    clock. The sound server's own buffer is one period, so a reader thread starved of CPU can
    still lose a little (measured: up to 4% at load 11-14, bench/microphone_loss.py); the
    bound, 85%, leaves that room on a loaded machine and catches a capture that stalls."""
    track = MicrophoneTrack(period_frames=PROCESSING_PERIOD_FRAMES)
    try:
        for _ in range(10):  # settle
            await asyncio.wait_for(track.recv(), 5)
        base, started = track.captured_samples, time.monotonic()
        frames = 0
        next_burst = started + 0.1
        burst = 0
        while time.monotonic() - started < 4:
            await asyncio.wait_for(track.recv(), 5)
            frames += 1
            now = time.monotonic()
            if now >= next_burst:
                end = now + (0.02, 0.035, 0.05)[burst % 3]
                while time.monotonic() < end:  # busy, as Python code is
                    pass
                burst += 1
                next_burst = time.monotonic() + 0.1
        elapsed = time.monotonic() - started
        captured = track.captured_samples - base
    finally:
        track.stop()
    ratio = captured / (48000 * elapsed)
    print(f"512-frame microphone, {burst} bursts in {elapsed:.2f} s: captured {100 * ratio:.1f}%")
    assert burst >= 20
    assert track.dropped_samples == 0
    assert 0.85 < ratio < 1.05
    assert frames >= 0.85 * elapsed * 50
