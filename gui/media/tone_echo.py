"""Echo of steady tones: what WebRTC's AEC3 leaves, removed before it.

AEC3 stops adapting its linear filter while the far end is narrowband ("poor excitation":
a ringback tone, a held note, a test tone), and its suppressor spares the regions around
narrow spectral peaks, so the echo of a steady tone goes back to the other side almost whole:
measured here, 3 to 14 dB removed from a 1000 Hz tone against 35 to 60 dB from speech (see
docs/performance.md). This stage covers that gap and nothing else.

It looks for steady tones in the far end (what the speaker plays): spectral peaks at least
20 dB above the spectrum's median, at the same frequency for ``stable_s``, their frequency
then refined from the phase advance between recent chunks (to a few hundredths of a Hz). For
each, it fits the tone's complex amplitude in every 10 ms of the far end and of the
microphone (least squares on a cosine and a sine at the tone's frequency, on one sample
clock per side), learns the echo path's gain and phase at that frequency from them
(averaged: the near end's voice is not phase-locked to the tone and averages out), and
subtracts the predicted echo, a pure sinusoid, from the microphone. The tone is also taken
out of the reference AEC3 gets, so that what remains (a codec's noise around the tone, other
sounds) excites AEC3's filter and is cancelled by it.

Safeguards: a tone that stops playing stops being subtracted at once; after a jump in its
phase or level (a jitter buffer's underrun or drop) the echo keeps the old phase for as long
as it takes to come back, so both are kept and each microphone chunk is cleared of whichever
predicts it better, until the new one does (at most ``echo_s``); a prediction that would leave more
of the tone than the microphone had is not used (its clock jumped: it is relearnt faster);
when two microphone chunks in a row agree on an echo path the learnt one does not predict
(the sound server played silence the speaker never handed it, or the microphone lost
samples: a busy machine; the reference shows no jump), learning starts again from them;
a microphone that does not hear the tone learns a gain of zero. Speech, whose harmonics
move, never holds a peak long enough to be taken for a tone.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass

import numpy as np

RATE = 48000
CHUNK = RATE // 100
#: Far-end samples each search for tones looks at, and how often (in 10 ms chunks) it runs.
WINDOW = 4096
SEARCH_EVERY = 5


@dataclass
class _Tone:
    """One steady far-end tone and what is learnt of its echo."""

    frequency: float
    seen: int = 1
    missed: int = 0
    #: Latest far-end complex amplitude (global phase), its running mean and level.
    far: complex = 0j
    far_mean: complex = 0j
    far_level: float = 0.0
    #: Far-end chunks since its phase or level last jumped (an underrun, a drop, a new note);
    #: -1 until the first chunk after it became steady.
    calm: int = -1
    #: The far end before the last jump, while its echo may still be coming back.
    far_old: complex | None = None
    old_chunks: int = 0
    #: Whether the last prediction of the echo was wrong (it is then relearnt faster).
    wrong: bool = False
    #: The echo path at this frequency that the last microphone chunk alone gives.
    path: complex | None = None
    #: E[near * conj(far)] and E[|far|^2]: the echo path at this frequency is their ratio.
    cross: complex = 0j
    power: float = 0.0
    basis: _Basis | None = None

    @property
    def omega(self) -> float:
        """Radians per sample."""
        return 2 * math.pi * self.frequency / RATE

    def wave(self) -> _Basis:
        """The cosine and sine of one chunk at this frequency (made again when it changes)."""
        if self.basis is None or self.basis.omega != self.omega:
            self.basis = _Basis(self.omega)
        return self.basis


class _Basis:
    """One chunk of ``cos(omega i)`` and ``sin(omega i)``, and what a least-squares fit on
    them needs: each chunk is fitted on these and its amplitude turned to the global phase
    of its first sample, rather than computing a cosine per sample per chunk."""

    def __init__(self, omega: float) -> None:
        self.omega = omega
        i = np.arange(CHUNK, dtype=np.float64)
        self.cos, self.sin = np.cos(omega * i), np.sin(omega * i)
        cc, ss, cs = self.cos @ self.cos, self.sin @ self.sin, self.cos @ self.sin
        self.det = float(cc * ss - cs * cs)
        self.cc, self.ss, self.cs = float(cc), float(ss), float(cs)

    def fit(self, samples: np.ndarray, start: int) -> complex:
        """Least-squares ``A`` of ``Re(A e^{j omega n})`` in ``samples`` (one chunk), whose
        first sample is number ``start`` of its clock (so that phases are comparable)."""
        if self.det <= 1e-9:
            return 0j
        xc, xs = float(samples @ self.cos), float(samples @ self.sin)
        a = (xc * self.ss - xs * self.cs) / self.det
        b = (xs * self.cc - xc * self.cs) / self.det
        # a cos + b sin = Re((a - jb) e^{j omega i}); i = n - start
        return complex(a, -b) * complex(math.cos(self.omega * start), -math.sin(self.omega * start))

    def wave(self, amplitude: complex, start: int) -> np.ndarray:
        """``Re(amplitude e^{j omega n})`` over the chunk starting at sample ``start``."""
        local = amplitude * complex(math.cos(self.omega * start), math.sin(self.omega * start))
        return local.real * self.cos - local.imag * self.sin


class ToneEchoCanceller:
    """Removes the echo of steady far-end tones from the microphone (see the module).

    :meth:`far` takes each 10 ms of what is played, :meth:`near` each 10 ms of the
    microphone (float samples), returned with the tones' echo removed.
    """

    def __init__(
        self,
        *,
        stable_s: float = 0.3,
        peak_db: float = 20.0,
        floor_db: float = -50.0,
        most: int = 3,
        smoothing: float = 0.1,
        moved: float = 0.1,
        echo_s: float = 0.5,
    ) -> None:
        self.stable_checks = max(1, round(stable_s * 100 / SEARCH_EVERY))
        self.peak_ratio = 10 ** (peak_db / 20)
        self.floor = 10 ** (floor_db / 20) * 32768 * WINDOW / 4  # a Hann window's gain
        self.most = most
        self.smoothing = smoothing
        #: A prediction leaving more than this fraction of the tone, while two chunks in a
        #: row agree on another path to within it, means the echo path moved.
        self.moved = moved
        #: After a jump in the far end, how long (10 ms chunks) its echo may still be old.
        self.old_chunks = round(echo_s * 100)
        self.tones: list[_Tone] = []
        self._far_clock = -1
        self._near_clock = 0
        self._history: collections.deque[np.ndarray] = collections.deque(maxlen=WINDOW // CHUNK + 1)
        self._chunks = 0
        self._hann = np.hanning(WINDOW)
        #: No bin of a window whose energy is below this can reach ``floor`` (Cauchy-Schwarz:
        #: |X(k)| <= sqrt(sum x^2) sqrt(sum w^2)), so a quiet far end is not transformed at all.
        self._quiet_energy = self.floor**2 / float(self._hann @ self._hann)

    @property
    def active(self) -> list[float]:
        """Frequencies (Hz) whose echo is being removed."""
        return [tone.frequency for tone in self.tones if tone.seen >= self.stable_checks]

    def far(self, chunk: np.ndarray) -> np.ndarray:
        """10 ms of the far end as played (int16 units); returned without its steady tones,
        for AEC3: what remains (a codec's noise around the tone, other sounds) excites its
        filter well, and the echo of that remainder is its to remove."""
        samples = chunk.astype(np.float64)
        self._history.append(samples)
        self._chunks += 1
        # With no tone found yet, every other search is skipped: a new tone is then seen
        # at most 50 ms later, and speech (the usual far end) costs half as many spectra.
        if self._chunks % SEARCH_EVERY == 0 and (
            self.tones or self._chunks % (2 * SEARCH_EVERY) == 0
        ):
            self._search()
        if self._far_clock < 0:  # both clocks count from the same moment, near enough
            self._far_clock = self._near_clock
        stable = [tone for tone in self.tones if tone.seen >= self.stable_checks]
        if not stable or samples.size != CHUNK:  # speech, silence: nothing more to do
            self._far_clock += samples.size
            return chunk
        rest, removed = samples.copy(), False
        for tone in stable:
            basis = tone.wave()
            tone.far = basis.fit(samples, self._far_clock)
            if tone.calm < 0:
                tone.far_mean, tone.calm = tone.far, 0
            elif abs(tone.far - tone.far_mean) > 0.2 * abs(tone.far_mean):
                # A jump (an underrun, a drop): the echo keeps the old phase for as long as
                # it takes to come back; both are kept until the microphone tells.
                if abs(tone.far_mean) > 0.1 * tone.far_level:
                    tone.far_old, tone.old_chunks = tone.far_mean, 0
                tone.far_mean, tone.calm = tone.far, 0
            else:
                tone.far_mean = 0.7 * tone.far_mean + 0.3 * tone.far
                tone.calm += 1
            level = abs(tone.far)
            tone.far_level = level if tone.far_level == 0 else 0.9 * tone.far_level + 0.1 * level
            rest -= basis.wave(tone.far, self._far_clock)
            removed = True
        self._far_clock += samples.size
        if not removed:
            return chunk
        return np.clip(np.rint(rest), -32768, 32767).astype(chunk.dtype)

    def near(self, chunk: np.ndarray) -> np.ndarray:
        """10 ms of the microphone (int16 units): returned with the tones' echo removed."""
        start, self._near_clock = self._near_clock, self._near_clock + chunk.size
        playing = [tone for tone in self.tones if tone.calm >= 0]
        if not playing or chunk.size != CHUNK:
            return chunk
        samples = chunk.astype(np.float64)
        out = samples.copy()
        removed = False
        for tone in playing:
            if abs(tone.far) < 0.1 * tone.far_level or tone.far_level < 1.0:
                continue  # it stopped playing (or never really did)
            basis = tone.wave()
            heard = basis.fit(samples, start)
            # Which far end the echo carries now: after a jump, the old one until the echo
            # of the new one comes back (whichever predicts what is heard better).
            source = tone.far_mean
            if tone.far_old is not None and tone.power > 0:
                gain = tone.cross / tone.power
                tone.old_chunks += 1
                old = abs(heard - gain * tone.far_old) < abs(heard - gain * tone.far_mean)
                if old:
                    source = tone.far_old
                if not old or tone.old_chunks > self.old_chunks:
                    tone.far_old = None  # the echo has moved on
            product, energy = heard * source.conjugate(), abs(source) ** 2
            path = product / energy if energy > 0 else None  # this chunk's own estimate
            if (
                path is not None
                and tone.path is not None
                and tone.power > 0
                and abs(heard - tone.cross / tone.power * source) > self.moved * abs(heard)
                and abs(path - tone.path) < self.moved * abs(path)
            ):
                # Two chunks in a row agree on a path the learnt one does not predict: the
                # echo moved against the reference (the sound server played silence the
                # speaker never handed it, or the microphone lost samples: a busy machine).
                # Start again from them instead of averaging the old path out slowly.
                tone.cross, tone.power = 0.5 * (path + tone.path) * energy, energy
            else:
                k = 0.5 if tone.wrong else self.smoothing
                tone.cross = (1 - k) * tone.cross + k * product
                tone.power = (1 - k) * tone.power + k * energy
            tone.path = path
            if tone.power <= 0:
                continue
            echo = tone.cross / tone.power * source
            # Never worse: a prediction that would leave more of the tone than there was
            # (the microphone's clock jumped, say) is not used, and is relearnt faster.
            tone.wrong = abs(heard - echo) >= 0.5 * abs(heard)
            if tone.wrong:
                continue
            out -= basis.wave(echo, start)
            removed = True
        if not removed:
            return chunk
        return np.clip(np.rint(out), -32768, 32767).astype(chunk.dtype)

    def _search(self) -> None:
        """Peaks of the last ``WINDOW`` far-end samples: follow the steady ones."""
        recent = np.concatenate(list(self._history))[-WINDOW:]
        found: list[float] = []
        if recent.size == WINDOW and float(recent @ recent) >= self._quiet_energy:
            spectrum = np.abs(np.fft.rfft(recent * self._hann))
            # The median (an odd count of bins: the middle one), without np.median's checks.
            middle = spectrum.size // 2
            median = float(np.partition(spectrum, middle)[middle])
            threshold = max(self.floor, self.peak_ratio * median)
            spectrum[:4] = 0.0  # not DC
            for _ in range(self.most):
                peak = int(np.argmax(spectrum))
                if spectrum[peak] < threshold or not 0 < peak < spectrum.size - 1:
                    break
                left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-9)
                bend = left - 2 * centre + right
                offset = 0.5 * (left - right) / bend if bend < 0 else 0.0
                found.append((peak + offset) * RATE / WINDOW)
                spectrum[max(0, peak - 4) : peak + 5] = 0.0
        kept = []
        for tone in self.tones:
            match = next((f for f in found if abs(f - tone.frequency) < 2.0), None)
            if match is None:
                tone.missed += 1
                if tone.missed < 2:
                    kept.append(tone)
                continue
            found.remove(match)
            tone.missed = 0
            tone.seen += 1
            if tone.seen == self.stable_checks:
                self._refine(tone)
            kept.append(tone)
        kept += [_Tone(frequency) for frequency in found]
        self.tones = kept[: self.most]

    def _refine(self, tone: _Tone) -> None:
        """Make a new steady tone's frequency precise: the spectrum's peak is good to a few
        tenths of a Hz, the echo's phase needs a few hundredths. The phase advance of its
        fit from one recent far-end chunk to the next says how far off it is."""
        chunks = [c for c in self._history if c.size == CHUNK]
        for _ in range(3):
            basis = tone.wave()
            starts = [self._far_clock - CHUNK * (len(chunks) - i) for i in range(len(chunks))]
            fits = [basis.fit(c, start) for c, start in zip(chunks, starts, strict=True)]
            advances = [np.angle(b * a.conjugate()) for a, b in itertools.pairwise(fits)]
            if not advances:
                return
            # The median: a glitch (an underrun, a drop) between two chunks is one outlier.
            tone.frequency += float(np.median(advances)) * RATE / (2 * math.pi * CHUNK)
        tone.calm = -1  # the far end's amplitude is learnt afresh
