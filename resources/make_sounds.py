"""Make Parley's sounds: the ringtone, the chat-message pop and the hang-up tone.

Run from anywhere with a Python that has numpy::

    python resources/make_sounds.py            # writes resources/sounds/*.wav
    python resources/make_sounds.py --output DIR

Every sound is synthesised here from sums of sines with soft envelopes (no samples, no noise,
so the output is the same on every run): 16-bit mono PCM at 22050 Hz, kept small because the
files are committed (Qt's ``QSoundEffect`` plays WAV files only, so they must exist at run time).

* ``ringtone.wav``, 2.5 s, loops: a soft bell "ding-dong, ding-dong" (E5 then C5, a falling
  major third) and then quiet until the loop starts again.
* ``message.wav``, 0.15 s: a short soft "pop", a sine gliding from 880 Hz down to 520 Hz.
* ``hangup.wav``, 0.6 s: two descending notes, G5 then C5.
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np

RATE = 22050
#: Peak level of every sound, as a fraction of full scale (about -4 dBFS): loud enough, never harsh.
PEAK = 0.6


def _time(duration: float) -> np.ndarray:
    return np.arange(round(duration * RATE)) / RATE


def _bell(freq: float, duration: float, decay: float) -> np.ndarray:
    """A soft bell note: a fundamental and two quiet partials, quick attack, exponential decay."""
    t = _time(duration)
    tone = (
        np.sin(2 * np.pi * freq * t)
        + 0.25 * np.sin(2 * np.pi * 2 * freq * t) * np.exp(-t / (decay * 0.5))
        + 0.08 * np.sin(2 * np.pi * 3 * freq * t) * np.exp(-t / (decay * 0.3))
    )
    return tone * _attack(t, 0.008) * np.exp(-t / decay) * _release(t, duration, 0.05)


def _attack(t: np.ndarray, length: float) -> np.ndarray:
    """Raised-cosine fade-in over ``length`` seconds (no click at the start)."""
    ramp = np.clip(t / length, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def _release(t: np.ndarray, duration: float, length: float) -> np.ndarray:
    """Raised-cosine fade-out over the last ``length`` seconds (no click at the end)."""
    ramp = np.clip((duration - t) / length, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def _mix(duration: float, notes: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Place each ``(start_seconds, samples)`` note on a silent track of ``duration`` seconds."""
    track = np.zeros(round(duration * RATE))
    for start, samples in notes:
        first = round(start * RATE)
        end = min(track.size, first + samples.size)
        track[first:end] += samples[: end - first]
    return track


def ringtone() -> np.ndarray:
    """Two bell pairs (E5 C5, E5 C5) in the first 1.5 s, fading out by 2.5 s."""
    e5, c5 = 659.25, 523.25
    notes = [
        (0.00, _bell(e5, 1.2, 0.30)),
        (0.28, _bell(c5, 1.4, 0.38)),
        (0.80, _bell(e5, 1.2, 0.30)),
        (1.08, _bell(c5, 1.4, 0.38)),
    ]
    return _mix(2.5, notes)


def message() -> np.ndarray:
    """A 0.15 s pop: a sine falling from 880 to 520 Hz under a fast decay."""
    duration = 0.15
    t = _time(duration)
    freq = 520 + (880 - 520) * np.exp(-t / 0.025)
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    tone = np.sin(phase) + 0.15 * np.sin(2 * phase)
    return tone * _attack(t, 0.004) * np.exp(-t / 0.035) * _release(t, duration, 0.02)


def hangup() -> np.ndarray:
    """G5 then C5, 0.6 s in all: the call is over."""
    g5, c5 = 783.99, 523.25
    return _mix(0.6, [(0.0, _bell(g5, 0.3, 0.10)), (0.2, _bell(c5, 0.4, 0.14))])


SOUNDS = {"ringtone": ringtone, "message": message, "hangup": hangup}


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Normalise ``samples`` to :data:`PEAK` and write them as 16-bit mono PCM at :data:`RATE`."""
    scaled = samples / np.max(np.abs(samples)) * PEAK
    pcm = np.round(scaled * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def main(argv: list[str] | None = None) -> int:
    """Write every sound into ``--output`` (default: ``sounds/`` next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent / "sounds",
        help="folder for the WAV files (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    for name, make in SOUNDS.items():
        path = args.output / f"{name}.wav"
        write_wav(path, make())
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
