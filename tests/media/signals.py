"""Deterministic test signals for the audio processing: speech-like voices, a room, a fan.

Made in numpy from a seed, so that the offline tests and ``bench/processing.py`` see the
same audio on every machine (no recording is committed, no speech engine is needed):

* :func:`speech`: syllables of a formant-filtered glottal pulse train (a pitch that moves,
  eight vowels), some fricatives (filtered noise), short gaps and phrase pauses;
* :func:`room`: the echo path of a laptop: a delay, the direct sound, a decaying tail;
* :func:`fan`: stationary noise with a pinkish spectrum and a hum at 120 Hz and harmonics;
* :func:`chirp`: a short windowed sweep, a marker that :func:`find_markers` locates to the
  sample in a recording, through the audio processing too (``bench/microphone_loss.py``).

Levels are in dBFS (full scale 1.0); the signals are float64, and :func:`run_processor`
carries them through an :class:`~gui.media.processing.AudioProcessor` as a call would.
"""

from __future__ import annotations

import av
import numpy as np

from gui.media.processing import AudioProcessor

RATE = 48000
#: (F1, F2, F3) of eight vowels, Hz.
VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (660, 1720, 2410),
    (570, 840, 2410),
    (440, 1020, 2240),
    (490, 1350, 1690),
)


def _resonances(formants: tuple[float, ...], length: int) -> np.ndarray:
    """Impulse response of a vocal tract with these formants (unit energy)."""
    t = np.arange(length) / RATE
    response = np.zeros(length)
    for index, frequency in enumerate(formants):
        bandwidth = 60 + 40 * index
        response += np.exp(-np.pi * bandwidth * t) * np.sin(2 * np.pi * frequency * t) / (index + 1)
    return response / np.sqrt(np.sum(response**2))


def speech(
    seconds: float, seed: int, pitch: tuple[float, float] = (110, 160), level_db: float = -20.0
) -> np.ndarray:
    """A voice talking for ``seconds``: ``level_db`` is the RMS of its active parts."""
    rng = np.random.default_rng(seed)
    total = round(seconds * RATE)
    out = np.zeros(total + RATE)
    position = round(rng.uniform(0.05, 0.2) * RATE)
    while position < total:
        if rng.random() < 0.15:  # a pause between phrases
            position += round(rng.uniform(0.25, 0.6) * RATE)
            continue
        length = round(rng.uniform(0.12, 0.3) * RATE)
        if rng.random() < 0.2:  # a fricative
            excitation = rng.standard_normal(length)
            shape = _resonances((rng.uniform(3500, 6000),), 240)
            syllable = np.convolve(excitation, shape)[:length] * 0.3
        else:
            t = np.arange(length) / RATE
            f0 = rng.uniform(*pitch) * (
                1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6))
            )
            pulses = np.diff(np.floor(np.cumsum(f0 / RATE)), prepend=0.0)
            excitation = pulses + 0.02 * rng.standard_normal(length)
            vowel = VOWELS[rng.integers(len(VOWELS))]
            syllable = np.convolve(excitation, _resonances(vowel, 960))[:length]
        envelope = np.sin(np.pi * np.arange(length) / length) ** 0.6
        out[position : position + length] += syllable * envelope * rng.uniform(0.5, 1.0)
        position += length + round(rng.uniform(0.01, 0.06) * RATE)
    out = out[:total]
    active = np.abs(out) > 1e-6
    return out * (10 ** (level_db / 20) / np.sqrt(np.mean(out[active] ** 2)))


def room(
    delay_ms: float = 40.0, tail_ms: float = 150.0, gain_db: float = -6.0, seed: int = 7
) -> np.ndarray:
    """An echo path: ``delay_ms`` of nothing, the direct sound, a tail decaying by 60 dB over
    ``tail_ms``; ``gain_db`` is its total energy gain."""
    rng = np.random.default_rng(seed)
    length = round(tail_ms * RATE / 1000)
    tail = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 6.9))
    tail[0] = 4.0  # the direct path from the speaker to the microphone
    response = np.concatenate([np.zeros(round(delay_ms * RATE / 1000)), tail])
    return response / np.sqrt(np.sum(response**2)) * 10 ** (gain_db / 20)


def fan(seconds: float, seed: int, level_db: float = -35.0) -> np.ndarray:
    """A fan: pinkish broadband noise and a 120 Hz hum with harmonics, at ``level_db`` RMS."""
    rng = np.random.default_rng(seed)
    count = round(seconds * RATE)
    frequencies = np.fft.rfftfreq(count, 1 / RATE)
    shape = 1 / np.maximum(frequencies, 50) ** 0.8
    shape[frequencies > 8000] *= 0.3
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(count)) * shape, count)
    t = np.arange(count) / RATE
    hum = sum(np.sin(2 * np.pi * 120 * k * t + k) / k for k in range(1, 5))
    mixed = noise / np.std(noise) + 0.3 * hum / np.std(hum)
    return mixed / np.sqrt(np.mean(mixed**2)) * 10 ** (level_db / 20)


def echo_of(far: np.ndarray, path: np.ndarray) -> np.ndarray:
    """What the microphone hears of ``far`` through ``path`` (same length as ``far``)."""
    size = far.size + path.size - 1
    n = 1 << (size - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(far, n) * np.fft.rfft(path, n), n)[: far.size]


def to_s16(signal: np.ndarray) -> np.ndarray:
    """Float -1..1 to int16."""
    return np.clip(np.rint(signal * 32767), -32768, 32767).astype(np.int16)


def frame_of(mono: np.ndarray, pts: int) -> av.AudioFrame:
    """A float mono block as the microphone gives it: s16 stereo 48 kHz."""
    frame = av.AudioFrame.from_ndarray(
        np.repeat(to_s16(mono), 2).reshape(1, -1), format="s16", layout="stereo"
    )
    frame.sample_rate = RATE
    frame.pts = pts
    return frame


def run_processor(
    processor: AudioProcessor,
    microphone: np.ndarray,
    far: np.ndarray | None = None,
    frame_samples: int = 960,
) -> np.ndarray:
    """The processed microphone (float mono), played and captured 20 ms at a time as in a
    call: the speaker hands each block of ``far`` to its device, then the microphone's
    frame of the same moment is processed."""
    out = []
    for start in range(0, microphone.size - frame_samples + 1, frame_samples):
        block = slice(start, start + frame_samples)
        if far is not None:
            processor.played(to_s16(far[block]).reshape(-1, 1), RATE, 0.0)
        processed = processor.process(frame_of(microphone[block], start))
        if processed is not None:
            out.append(processed.to_ndarray().reshape(-1, 2)[:, 0])
    return np.concatenate(out).astype(np.float64) / 32767


def power(signal: np.ndarray) -> float:
    """Mean square (never zero, so that ratios in dB stay finite)."""
    return float(np.mean(np.square(signal))) + 1e-20


def db(ratio: float) -> float:
    """A power ratio in dB."""
    return float(10 * np.log10(ratio))


def erle_db(echo: np.ndarray, residual: np.ndarray, start: int, floor_db: float = -50.0) -> float:
    """Echo return loss enhancement from sample ``start`` on: the echo's energy over what is
    left of it, counted on the 10 ms blocks where the echo is above ``floor_db`` (the far
    end's pauses would otherwise measure the microphone's own noise)."""
    count = (min(echo.size, residual.size) - start) // 480
    e = echo[start : start + count * 480].reshape(count, 480)
    r = residual[start : start + count * 480].reshape(count, 480)
    echo_power, residual_power = np.mean(e**2, axis=1), np.mean(r**2, axis=1)
    active = echo_power > 10 ** (floor_db / 10)
    return db(float(echo_power[active].sum()) / (float(residual_power[active].sum()) + 1e-20))


def lag_of(output: np.ndarray, reference: np.ndarray, most: int = 4800) -> int:
    """How many samples ``output`` lags ``reference`` (their cross-correlation's peak)."""
    n = 1 << (output.size + reference.size).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(output, n) * np.conj(np.fft.rfft(reference, n)), n)
    return int(np.argmax(np.abs(correlation[:most])))


def chirp(
    seconds: float = 0.1, low: float = 300.0, high: float = 4000.0, level_db: float = -12.0
) -> np.ndarray:
    """A Hann-windowed linear sweep from ``low`` to ``high`` Hz; ``level_db`` is the peak
    level of its carrier. Its autocorrelation has one sharp peak, and the noise suppressor
    passes it (it is not stationary): a marker to find by correlation."""
    t = np.arange(round(seconds * RATE)) / RATE
    phase = 2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds))
    return np.sin(phase) * np.hanning(t.size) * 10 ** (level_db / 20)


def marker_scores(stream: np.ndarray, marker: np.ndarray) -> np.ndarray:
    """For each start ``i`` of ``marker`` in ``stream``: their normalised correlation (1: the
    stream there is the marker times a positive gain; about 0: unrelated). Silence scores 0,
    not noise divided by nothing: the stream's energy is floored at a millionth of the
    marker's."""
    if stream.size < marker.size:
        return np.zeros(0)
    n = 1 << (stream.size + marker.size).bit_length()
    spectrum = np.fft.rfft(stream, n) * np.conj(np.fft.rfft(marker, n))
    correlation = np.fft.irfft(spectrum, n)[: stream.size - marker.size + 1]
    energy = np.concatenate(([0.0], np.cumsum(stream.astype(np.float64) ** 2)))
    window = energy[marker.size :] - energy[: -marker.size]
    floor = 1e-6 * float(np.dot(marker, marker))
    norm = np.sqrt(float(np.dot(marker, marker)) * np.maximum(window, floor))
    return correlation / norm


def find_markers(
    stream: np.ndarray, marker: np.ndarray, min_score: float = 0.5
) -> list[tuple[int, float]]:
    """Where copies of ``marker`` start in ``stream`` (to the sample), with their scores
    (:func:`marker_scores`), in stream order: the best match, then the best one that does not
    overlap it, and so on while the score is at least ``min_score``."""
    scores = marker_scores(stream, marker)
    found: list[tuple[int, float]] = []
    while scores.size:
        best = int(np.argmax(scores))
        if scores[best] < min_score:
            break
        found.append((best, float(scores[best])))
        scores[max(0, best - marker.size + 1) : best + marker.size] = -np.inf
    return sorted(found)


def kept_db(output: np.ndarray, reference: np.ndarray) -> float:
    """How much of ``reference`` is in ``output`` (dB, 0 = all of it): the output's projection
    on the reference after aligning them. What else is in the output does not count."""
    lag = lag_of(output, reference)
    aligned = output[lag : lag + reference.size]
    reference = reference[: aligned.size]
    gain = float(np.dot(aligned, reference) / np.dot(reference, reference))
    return float(20 * np.log10(max(abs(gain), 1e-10)))
