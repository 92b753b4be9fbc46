"""Timings of the sound devices: the device tests bound them, ``bench/devices.py`` reports them.

Each function creates the condition it measures on the private PulseAudio of
:mod:`tests.devices.pulse` (the microphone's tone switched on, a tone fed to the speaker)
and returns what it saw. On a shared machine these are figures, not pass marks: a test keeps
only a bound that a broken pipeline misses by seconds, and the benchmark prints the number.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from gui.core import udp_reading
from gui.devices import MicrophoneTrack, SpeakerSink
from gui.media.analysis import AudioReceiver, VideoReceiver, to_mono
from gui.media.tone import ToneAudioTrack, dominant_frequency
from tests.devices.pulse import MIC_FREQUENCY, RECORD_RATE, MonitorRecorder, PulseServer
from tests.media.loopback import Loopback, loopback
from tests.waiting import until

#: A sample above this (full scale 1) is sound; the test tones play at 0.3.
LOUD = 0.05


async def read_frames(
    track: MicrophoneTrack, count: int
) -> tuple[list[av.AudioFrame], list[float]]:
    """``count`` frames from ``track`` and the ``time.monotonic()`` each one came (each
    within 10 s: a hang bound, as a loaded machine can hold the loop for a second)."""
    frames, times = [], []
    for _ in range(count):
        frames.append(await asyncio.wait_for(track.recv(), 10))
        times.append(time.monotonic())
    return frames, times


async def first_loud_frame_at(
    track: MicrophoneTrack, threshold: float = LOUD, timeout: float = 10.0
) -> float:
    """When ``recv()`` gave the first frame with sound in it (within ``timeout`` seconds, a
    hang bound: frames of silence alone would keep this waiting for ever)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = await asyncio.wait_for(track.recv(), timeout)
        if np.max(np.abs(to_mono(frame))) > threshold:
            return time.monotonic()
    raise AssertionError(f"no sound from the microphone within {timeout:g} s")


async def microphone_latency(pulse: PulseServer, track: MicrophoneTrack) -> float:
    """Seconds from the microphone's tone switched on in the sound server to the first loud
    frame out of ``recv()``. Leaves the tone on."""
    pulse.mute_microphone(True)
    await asyncio.sleep(0.3)
    while track.buffered_ms >= 20:  # nothing old left queued
        await track.recv()
    switched = time.monotonic()
    pulse.mute_microphone(False)
    return await first_loud_frame_at(track) - switched


async def mouth_to_ear_delay(pulse: PulseServer, timeout: float = 10.0) -> float:
    """Seconds from the microphone's tone switched on to its sound recorded from the speaker,
    with whatever carries the microphone to the speaker running. Leaves the tone on.

    The silence is awaited on the speaker before the tone is switched on (a loaded machine
    can still be playing tone from before it), and the tone's return for up to ``timeout``
    seconds: on a loaded machine both take longer than the half second of a quiet one.
    """
    monitor = pulse.monitor
    pulse.mute_microphone(True)
    await asyncio.sleep(0.5)
    quiet = RECORD_RATE * 3 // 10  # 0.3 s with no tone in it

    def silent() -> bool:
        end = monitor.position
        return end >= quiet and not np.any(np.abs(monitor.samples(end - quiet, end)) > LOUD)

    await until(silent, timeout, "the speaker silent with the microphone muted")
    mark = monitor.position
    switched = time.monotonic()
    pulse.mute_microphone(False)

    def first_loud() -> int | None:
        loud = np.flatnonzero(np.abs(monitor.samples(mark)) > LOUD)
        return mark + int(loud[0]) if loud.size else None

    try:
        index = await until(first_loud, timeout, "the tone back through the speaker")
    except TimeoutError:
        raise AssertionError(
            f"the tone never came back through the speaker ({timeout:g} s)"
        ) from None
    assert index is not None
    return monitor.arrival_of(index) - switched


@dataclass
class LoopbackCall(Loopback):
    """What arrives on the answering side of :func:`loopback_call`, and its speaker."""

    speaker: SpeakerSink | None = None


@contextlib.asynccontextmanager
async def loopback_call(*tracks: MediaStreamTrack) -> AsyncIterator[LoopbackCall]:
    """Two aiortc peers in this process (:func:`tests.media.loopback.loopback`): ``tracks`` go
    from one to the other, which plays the audio on a new SpeakerSink (the default output).
    Closes both peers, the receivers and the speaker at the end; the tracks stay the caller's.

    The sockets are read as a call's are (:mod:`gui.core.udp_reading`, which ``PeerLink``
    installs): every datagram waiting when the loop comes to them, so that a loop a loaded
    machine held does not leave the media late in the kernel's buffer for good."""
    udp_reading.install()
    speaker = SpeakerSink()
    call = LoopbackCall(speaker=speaker)

    def play(receiver: AudioReceiver | VideoReceiver) -> None:
        if isinstance(receiver, AudioReceiver):
            speaker.attach(receiver)

    try:
        async with loopback(*tracks, into=call, on_receiver=play):
            yield call
    finally:
        speaker.stop()


class Feeder:
    """A ToneAudioTrack drained in real time by an AudioReceiver, played by a SpeakerSink."""

    def __init__(self, sink: SpeakerSink, frequency: float = 1000.0) -> None:
        self.tone = ToneAudioTrack(frequency)
        self.receiver = AudioReceiver(self.tone)
        sink.attach(self.receiver)
        self.receiver.start()

    async def stop(self) -> None:
        """End the tone and its receiver."""
        self.tone.stop()
        await self.receiver.stop()


async def onset_delay(monitor: MonitorRecorder, tone: ToneAudioTrack, start: int) -> float:
    """Seconds from the first loud frame made to its first loud sample in the recording."""
    recorded = await monitor.wait_for(start, RECORD_RATE // 2)
    loud = np.flatnonzero(np.abs(recorded) > LOUD)
    if not loud.size:
        raise AssertionError("the tone never reached the sink")
    assert tone.sound_started_at is not None
    return monitor.arrival_of(start + int(loud[0])) - tone.sound_started_at


async def speaker_delay(pulse: PulseServer, feeder: Feeder) -> float:
    """Seconds from a frame fed to the speaker to its sound recorded from the sink's monitor
    (the recorder's own latency included): the tone is muted, then switched on."""
    feeder.tone.muted = True
    await asyncio.sleep(0.4)
    start = pulse.monitor.position
    feeder.tone.muted = False
    return await onset_delay(pulse.monitor, feeder.tone, start)


def recent_queue(sink: SpeakerSink, seconds: float) -> list[float]:
    """The speaker's queue (ms) as sampled over the last ``seconds``."""
    since = time.monotonic() - seconds
    return [queued for at, queued in sink.queue_history if at > since]


def glitched_windows(recorded: np.ndarray, level: float = 0.2) -> int:
    """How many 1 ms windows of a steady tone (0.3 amplitude: 0.212 rms) fall below ``level``."""
    usable = recorded[: recorded.size - recorded.size % 48]
    levels = np.sqrt(np.mean(usable.reshape(-1, 48) ** 2, axis=1))
    return int(np.sum(levels < level))


def _broken(mono: np.ndarray, frequency: float, rate: int, tolerance: float = 0.1) -> np.ndarray:
    """Per sample triple ``i, i+1, i+2``: does the sine recurrence
    ``x[n] = 2 cos(w) x[n-1] - x[n-2]`` miss there by more than ``tolerance`` of the
    amplitude?"""
    if len(mono) < 3:
        return np.zeros(0, dtype=bool)
    amplitude = float(np.percentile(np.abs(mono), 99.9))
    if amplitude < 1e-3:
        return np.zeros(len(mono) - 2, dtype=bool)
    residual = np.abs(
        mono[2:] - 2 * math.cos(2 * math.pi * frequency / rate) * mono[1:-1] + mono[:-2]
    )
    return residual > tolerance * amplitude


def gap_starts(
    mono: np.ndarray, frequency: float = MIC_FREQUENCY, rate: int = RECORD_RATE
) -> np.ndarray:
    """Where a captured pure tone ``mono`` (float, -1..1) breaks: the first sample of each
    run of triples that miss the sine recurrence by more than a tenth of the amplitude.

    A tone off ``frequency`` by a rate error of even a few percent leaves the recurrence
    within a hundredth of the amplitude: only a jump (samples dropped, repeated or padded)
    counts, never a steady wrong pitch."""
    bad = _broken(mono, frequency, rate)
    return np.flatnonzero(bad & ~np.concatenate(([False], bad[:-1])))


def count_gaps(mono: np.ndarray, frequency: float = MIC_FREQUENCY, rate: int = RECORD_RATE) -> int:
    """Discontinuities in a captured pure tone ``mono``: see :func:`gap_starts`."""
    return int(gap_starts(mono, frequency, rate).size)


def steady_pitch(
    mono: np.ndarray, frequency: float, rate: int = RECORD_RATE
) -> tuple[float, int, float]:
    """The pitch of a recorded tone where it plays without a break: (the dominant frequency
    of the longest gap-free stretch, how many breaks there were, that stretch in seconds).

    One FFT over a recording with a break in it measures the break, not the pitch: a few
    milliseconds of silence the sound server pads in when a loaded machine stalls the
    player shift the phase, and the peak of one second moves by up to 1.3 Hz (700 and
    1000 Hz, one random pad of 1-480 samples; 0.6 Hz in one case of ten). The stretch is
    the player's true rate: samples dropped, repeated or padded show as breaks, a steady
    rate error as a wrong pitch (a Hann-windowed peak of a clean stretch of ``s`` seconds is
    within about 0.016 / s Hz: 0.08 Hz for 0.2 s). Breaks count here from 2% of the
    amplitude, not 10%: one sample padded into a 700 Hz tone misses the recurrence by 9%,
    and its phase step left inside a stretch moved the peak by 0.7 Hz. Zeros padded in fit
    the recurrence too: a stretch of silence gives a pitch of 0."""
    bad = _broken(mono, frequency, rate, tolerance=0.02)
    flags = np.concatenate(([True], bad, [True])).astype(np.int8)
    good_starts = np.flatnonzero(np.diff(flags) == -1)  # first good triple of each run
    good_ends = np.flatnonzero(np.diff(flags) == 1)  # one past its last
    breaks = int(np.count_nonzero(bad & ~np.concatenate(([False], bad[:-1]))))
    if not good_starts.size:
        return 0.0, breaks, 0.0
    longest = int(np.argmax(good_ends - good_starts))
    # Triples good_starts .. good_ends - 1 cover samples good_starts .. good_ends + 1.
    stretch = mono[good_starts[longest] : good_ends[longest] + 2]
    pitch = dominant_frequency(stretch, rate) if stretch.size >= 4 else 0.0
    return pitch, breaks, stretch.size / rate
