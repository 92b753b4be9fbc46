"""The meeting's audio mixer: every participant heard at once, nobody holding the others back."""

from __future__ import annotations

import av
import numpy as np

from gui.media.mixer import RATE, AudioMixer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tone_frame(hz: float, start: int, samples: int = 960, rate: int = RATE) -> av.AudioFrame:
    """20 ms (at 48 kHz) of a tone at -12 dBFS, s16 mono, from sample ``start`` on."""
    t = (start + np.arange(samples)) / rate
    pcm = (0.25 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = start
    return frame


def strongest(samples: np.ndarray, count: int) -> list[int]:
    """The ``count`` strongest frequencies (Hz, 10 Hz apart at least) of ``samples``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    freqs = np.fft.rfftfreq(samples.size, 1 / RATE)
    found: list[int] = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[index] - f) > 10 for f in found):
            found.append(round(float(freqs[index])))
        if len(found) == count:
            break
    return found


def collect(mixer: AudioMixer) -> list[np.ndarray]:
    out: list[np.ndarray] = []

    def keep(frame: av.frame.Frame) -> None:
        assert isinstance(frame, av.AudioFrame)
        out.append(frame.to_ndarray().reshape(-1, 2))

    mixer.listeners.append(keep)
    return out


def test_one_input_passes_at_once_and_unchanged() -> None:
    """What a call's audio decodes to (s16 stereo, 48 kHz) goes out as it came."""
    mixer = AudioMixer(clock=Clock())
    out = collect(mixer)
    pcm = tone_frame(440, 0).to_ndarray().reshape(-1).astype(np.int16)
    stereo = av.AudioFrame.from_ndarray(np.repeat(pcm, 2).reshape(1, -1), "s16", "stereo")
    stereo.sample_rate = RATE
    mixer.feed("ada", stereo)
    assert len(out) == 1 and len(out[0]) == 960  # no frame held back
    assert np.array_equal(out[0][:, 0], pcm) and np.array_equal(out[0][:, 1], pcm)


def test_two_inputs_are_summed_and_both_heard() -> None:
    clock = Clock()
    mixer = AudioMixer(clock=clock)
    out = collect(mixer)
    for i in range(50):  # one second, both 20 ms apart, interleaved
        clock.now = i * 0.02
        mixer.feed("ada", tone_frame(500, i * 960))
        mixer.feed("bob", tone_frame(1300, i * 320, 320, 16000))  # another rate
    mix = np.concatenate(out)[:, 0].astype(np.float64) / 32768
    assert abs(len(mix) - 50 * 960) <= 960  # the pace of one stream, not of two
    peaks = sorted(strongest(mix, 2))
    assert abs(peaks[0] - 500) <= 2 and abs(peaks[1] - 1300) <= 2, peaks
    assert np.max(np.abs(mix)) > 0.3  # summed (each alone peaks at 0.25), not averaged


def test_a_silent_input_stops_holding_the_mix_back() -> None:
    clock = Clock()
    mixer = AudioMixer(stall_ms=60, clock=clock)
    out = collect(mixer)
    mixer.feed("ada", tone_frame(500, 0))  # alone: out at once
    mixer.feed("bob", tone_frame(700, 0))  # joins where the mix stands (960)
    clock.now = 0.02
    mixer.feed("ada", tone_frame(500, 960))  # both have written up to 1920
    assert sum(map(len, out)) == 1920
    clock.now = 0.04
    mixer.feed("ada", tone_frame(500, 1920))  # bob is late: the mix waits for him
    assert sum(map(len, out)) == 1920
    clock.now = 0.1  # bob silent for 100 ms: ada's audio goes on without him
    mixer.feed("ada", tone_frame(500, 2880))
    assert sum(map(len, out)) == 3840
    clock.now = 0.12  # bob comes back: placed where the mix stands, nothing held
    mixer.feed("bob", tone_frame(700, 960))
    mixer.feed("ada", tone_frame(500, 3840))
    assert sum(map(len, out)) == 4800


def test_an_input_far_ahead_is_trimmed_and_removal_releases() -> None:
    clock = Clock()
    mixer = AudioMixer(max_lead_ms=100, clock=clock)
    out = collect(mixer)
    mixer.feed("ada", tone_frame(500, 0))
    mixer.feed("bob", tone_frame(700, 0))
    for i in range(1, 20):  # bob bursts 380 ms while ada stays at 20 ms
        mixer.feed("bob", tone_frame(700, i * 960))
    assert mixer.dropped > 0
    assert sum(map(len, out)) == 960
    mixer.remove("ada")  # ada left: bob's queued audio goes out
    assert mixer.keys == ["bob"]
    assert sum(map(len, out)) == 960 + round(0.1 * RATE)


def test_video_frames_and_broken_listeners_do_not_stop_the_mix() -> None:
    mixer = AudioMixer(clock=Clock())
    out = collect(mixer)

    def broken(frame: av.frame.Frame) -> None:
        raise RuntimeError("a listener that fails")

    mixer.listeners.insert(0, broken)
    mixer.feed("ada", av.VideoFrame(16, 16, "yuv420p"))
    mixer.feed("ada", tone_frame(440, 0))
    assert len(out) == 1
