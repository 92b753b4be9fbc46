"""MicrophoneTrack on a real (virtual) PulseAudio source that hears a 440 Hz tone."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from PySide6.QtMultimedia import QAudioFormat, QtAudio

from gui.devices import DeviceCatalog, MicrophoneTrack
from gui.devices.audio import call_format
from gui.media.analysis import to_mono
from gui.media.tone import dominant_frequency
from tests.devices.conftest import (
    MIC_FREQUENCY,
    MICROPHONE,
    SPEAKER,
    PulseServer,
    foreign_format,
)
from tests.devices.measure import read_frames, steady_pitch
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("qt_app")


def mono(frames: list[av.AudioFrame]) -> np.ndarray:
    return np.concatenate([to_mono(f) for f in frames])


async def read_with_drops(
    track: MicrophoneTrack, count: int
) -> tuple[list[av.AudioFrame], list[float], list[int]]:
    """``count`` frames, the ``time.monotonic()`` each came, and the track's dropped samples
    before the first and after each."""
    frames, times, dropped = [], [], [track.dropped_samples]
    for _ in range(count):
        frames.extend((await read_frames(track, 1))[0])
        times.append(time.monotonic())
        dropped.append(track.dropped_samples)
    return frames, times, dropped


def assert_timestamps_follow_capture(frames: list[av.AudioFrame], dropped: list[int]) -> None:
    """Consecutive frames are 960 apart, plus what the queue dropped between them: a loop
    stalled for more than its 200 ms drops the oldest audio (the design), and the
    timestamps jump over it. Without a drop (a quiet machine) that is exactly 960 each."""
    steps = [b.pts - a.pts for a, b in itertools.pairwise(frames)]
    assert steps == [960 + after - before for before, after in itertools.pairwise(dropped[1:])]


def assert_steady_tone(
    frames: list[av.AudioFrame], at_least: float = 0.5, within: float = 0.5
) -> None:
    """The microphone's pitch where the tone is unbroken (at least ``at_least`` seconds) is
    within ``within`` Hz: audio dropped (ours, or Qt's when its PulseAudio thread is
    starved) puts phase jumps in it, which move one FFT's peak."""
    pitch, breaks, stretch = steady_pitch(mono(frames), MIC_FREQUENCY)
    assert stretch > at_least, f"the tone broke {breaks} times"
    assert abs(pitch - MIC_FREQUENCY) < within


async def test_frames_are_20ms_48k_stereo_with_the_microphones_tone(pulse: PulseServer) -> None:
    track = MicrophoneTrack()
    try:
        assert track.device_id == MICROPHONE  # the default input
        assert track.converter.passthrough  # PulseAudio takes 48 kHz s16 stereo as is
        await read_frames(track, 10)  # settle
        frames, times, dropped = await read_with_drops(track, 100)
    finally:
        track.stop()
    for frame in frames:
        assert (frame.samples, frame.sample_rate) == (960, 48000)
        assert (frame.format.name, frame.layout.name) == ("s16", "stereo")
    assert_timestamps_follow_capture(frames, dropped)
    assert frames[0].time_base == fractions.Fraction(1, 48000)
    assert_steady_tone(frames)
    assert np.sqrt(np.mean(mono(frames) ** 2)) > 0.1  # a real tone, not silence

    # Frame timing: 100 frames take 2 s; each read returns what is already complete. The
    # spread of the intervals is a figure of bench/devices.py. Audio comes in pieces of a Qt
    # period (21 ms), which a stalled loop lets add up to Qt's own buffer (13 frames seen
    # for a stall of 1.5 s); a source or a reader that hands over blocks of a second or
    # more misses the bound on the frames one delivery completed, and frames that do not
    # follow the device's clock miss the elapsed time by seconds.
    elapsed = times[-1] - times[0]
    intervals = np.diff(times) * 1000
    deliveries = [len(list(same)) for _, same in itertools.groupby(track.ready_times)]
    print(
        f"microphone: 99 intervals over {elapsed * 1000:.0f} ms, mean {intervals.mean():.1f} ms,"
        f" p50 {np.percentile(intervals, 50):.1f}, p95 {np.percentile(intervals, 95):.1f},"
        f" max {intervals.max():.1f} ms; ready-time spacing p50"
        f" {np.percentile(np.diff(list(track.ready_times)) * 1000, 50):.1f} ms; most frames"
        f" completed at once {max(deliveries)};"
        f" dropped {1000 * (dropped[-1] - dropped[0]) / 48000:.0f} ms"
    )
    assert 1.5 < elapsed < 5
    assert max(deliveries) <= 25


async def test_other_device_formats_are_resampled_to_48k_stereo(pulse: PulseServer) -> None:
    track = MicrophoneTrack(audio_format=foreign_format())
    try:
        assert not track.converter.passthrough
        await read_frames(track, 10)
        frames, _, dropped = await read_with_drops(track, 50)
    finally:
        track.stop()
    assert all(f.samples == 960 and f.sample_rate == 48000 for f in frames)
    assert all(f.layout.name == "stereo" for f in frames)
    assert_timestamps_follow_capture(frames, dropped)
    assert_steady_tone(frames)


async def test_a_stalled_consumer_never_builds_delay(pulse: PulseServer) -> None:
    track = MicrophoneTrack(max_buffer_ms=200)
    try:
        await read_frames(track, 2)
        before = await track.recv()
        # Nobody reads while 800 ms are captured (counted in samples: a loaded machine can
        # take longer to capture them than the clock says).
        base = track.captured_samples
        await until(lambda: track.captured_samples - base >= 0.8 * 48000, 10, "800 ms captured")
        assert track.buffered_ms <= 200
        assert track.dropped_samples > 0.5 * 48000 * 0.6
        after = await track.recv()
        # Timestamps jump over what was dropped: they keep following the capture clock.
        # ``after`` is the oldest of the newest 200 ms kept: about 800 - 200 ms later (more
        # when the wait overshot).
        gap = after.pts - before.pts
        assert 0.5 * 48000 < gap < 5 * 48000
        frames, _ = await read_frames(track, 25)
        assert_steady_tone(frames, at_least=0.1, within=1)
    finally:
        track.stop()


async def test_stop_ends_recv_and_releases_the_device(pulse: PulseServer) -> None:
    track = MicrophoneTrack()
    await track.recv()
    assert any(True for _ in pulse.qt_streams())
    waiting = asyncio.ensure_future(track.recv())
    while track.buffered_ms >= 20:  # drain, so that the pending recv really waits
        await asyncio.sleep(0)
        if waiting.done():
            waiting = asyncio.ensure_future(track.recv())
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiting, 10)
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert track.source.state() == QtAudio.State.StoppedState
    # Closed by the sound server (its own process: later on a loaded machine).
    await until(lambda: pulse.qt_streams() == [], 10, "no Qt stream on the sound server")
    track.stop()


async def test_removed_microphone_does_not_break_the_track(pulse: PulseServer) -> None:
    """PulseAudio moves the stream to the fallback source and frames keep coming, now from
    the default microphone; Qt reports the removal only when the input list next changes
    (see the catalog canary), and the track then emits "lost"."""
    module = pulse.load_module(
        "module-remap-source", f"master={SPEAKER}.monitor", "source_name=parley_usb_mic"
    )
    catalog = DeviceCatalog()
    device = await until(lambda: catalog.audio_input("parley_usb_mic"), 5, "the new microphone")
    track = MicrophoneTrack(device, catalog=catalog)
    lost: list[str] = []
    track.on("lost", lost.append)
    other = None
    try:
        await read_frames(track, 5)
        pulse.unload_module(module)
        frames, _ = await read_frames(track, 50)  # from the fallback: the 440 Hz microphone
        assert abs(dominant_frequency(mono(frames[-25:]), 48000) - MIC_FREQUENCY) < 1
        assert track.source.error() == QtAudio.Error.NoError
        assert lost == []
        other = pulse.load_module(
            "module-remap-source", f"master={SPEAKER}.monitor", "source_name=parley_other_mic"
        )
        await until(lambda: lost, 5, "the lost event")
        assert lost == ["audio_input 'parley_usb_mic' was removed"]
        assert track.readyState == "live"  # the owner switches microphones
    finally:
        track.stop()
        if other is not None:
            pulse.unload_module(other)
    assert track.readyState == "ended"


async def test_missing_device_is_reported_as_lost() -> None:
    from PySide6.QtMultimedia import QAudioDevice

    track = MicrophoneTrack(QAudioDevice())
    reasons: list[str] = []
    track.on("lost", reasons.append)
    await asyncio.sleep(0.05)
    assert reasons == ["no microphone"]
    assert track.lost_reason == "no microphone"
    track.stop()


def test_call_format_is_what_aiortc_sends() -> None:
    fmt = call_format()
    assert (fmt.sampleRate(), fmt.channelCount()) == (48000, 2)
    assert fmt.sampleFormat() == QAudioFormat.SampleFormat.Int16
