"""A synthetic microphone (a steady sine tone) and a precise pitch estimator to check it arrived.

The tone is produced as s16 *stereo* 48 kHz frames of 960 samples (20 ms), which is exactly
what aiortc's Opus encoder converts everything to: its resampler then only re-frames, and
never remixes or resamples.
"""

from __future__ import annotations

import fractions
import math
import time

import av
import numpy as np
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError, MediaStreamTrack

from gui.media.pacing import RealtimePacer

#: What aiortc's Opus encoder works in; a tone in this format passes through unconverted.
OPUS_SAMPLE_RATE = 48000
CHANNELS = 2


class ToneAudioTrack(MediaStreamTrack):
    """A microphone stand-in: a phase-continuous sine tone in 20 ms frames, paced in real time.

    Set :attr:`muted` to send silence instead (the phase keeps running). The first frame with
    sound after silence records :attr:`sound_started_at` (``time.monotonic()``), which, with
    :class:`~gui.media.analysis.AudioReceiver`'s onset time, measures audio latency.
    """

    kind = "audio"

    def __init__(
        self, frequency: float = 440.0, sample_rate: int = OPUS_SAMPLE_RATE, amplitude: float = 0.3
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or sample_rate % 50:
            raise ValueError(f"sample rate must be a positive multiple of 50, got {sample_rate}")
        if not 0 <= amplitude <= 1:
            raise ValueError(f"amplitude must be within 0..1, got {amplitude}")
        if not 0 < frequency < sample_rate / 2:
            raise ValueError(f"frequency must be within 0..{sample_rate / 2}, got {frequency}")
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.amplitude = amplitude
        self.samples_per_frame = round(sample_rate * AUDIO_PTIME)
        #: When True, frames carry silence.
        self.muted = False
        #: time.monotonic() when the first frame with sound after silence (or at start) was made.
        self.sound_started_at: float | None = None
        #: How many frames recv() has returned.
        self.frames_made = 0
        self._phase = 0.0
        self._was_silent = True
        self._time_base = fractions.Fraction(1, sample_rate)
        self._pacer = RealtimePacer(self.samples_per_frame / sample_rate)
        self._steps = np.arange(self.samples_per_frame, dtype=np.float64)

    def make_samples(self) -> np.ndarray:
        """The next frame's mono samples as float64 in -1..1, advancing the phase."""
        increment = 2 * math.pi * self.frequency / self.sample_rate
        samples = np.sin(self._phase + increment * self._steps)
        self._phase = (self._phase + increment * self.samples_per_frame) % (2 * math.pi)
        return samples * self.amplitude

    def stop(self) -> None:
        """End the track; a recv() waiting for its next slot raises MediaStreamError at once."""
        super().stop()
        self._pacer.interrupt()

    async def recv(self) -> av.AudioFrame:
        """Return the next 20 ms frame when it is due; MediaStreamError once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._pacer.wait()
        if self.readyState != "live":
            raise MediaStreamError
        mono = self.make_samples()
        if self.muted:
            mono[:] = 0.0
            self._was_silent = True
        elif self._was_silent:
            self._was_silent = False
            self.sound_started_at = time.monotonic()
        pcm = np.round(mono * 32767).astype(np.int16)
        interleaved = np.repeat(pcm, CHANNELS).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
        frame.sample_rate = self.sample_rate
        frame.pts = slot * self.samples_per_frame
        frame.time_base = self._time_base
        self.frames_made += 1
        return frame


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """The frequency (Hz) of the strongest spectral peak, with sub-bin accuracy.

    Applies a Hann window, takes the real FFT, and fits a parabola through the log magnitudes
    of the peak bin and its neighbours (for a Hann window this is accurate to a small fraction
    of a bin: well under 0.1 Hz on one second of a clean tone). The DC bin is ignored. Takes
    a 1-D array of mono samples of any numeric type. Returns 0.0 for silence.
    """
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {np.shape(samples)}")
    if data.size < 4:
        raise ValueError("need at least 4 samples")
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    if spectrum[peak] <= 0.0:
        return 0.0
    offset = 0.0
    if 0 < peak < spectrum.size - 1:
        floor = spectrum[peak] * 1e-12
        left, centre, right = np.log(np.maximum(spectrum[peak - 1 : peak + 2], floor))
        denominator = left - 2 * centre + right
        if denominator < 0:
            offset = 0.5 * (left - right) / denominator
    return (peak + offset) * sample_rate / data.size
