"""Several remote audio tracks as one stream, for one speaker: what a meeting plays.

A :class:`~gui.devices.speaker.SpeakerSink` plays one stream; handing it the
frames of three participants in turn would play each at a third of its pace.
The mixer keeps, per participant, what they sent from the mix's position on
(48 kHz stereo s16, what aiortc decodes Opus to; anything else is converted)
and emits 20 ms frames, the sum of everyone, as soon as every participant heard
within the last ``stall_ms`` has those 20 ms. A participant who sends nothing
(muted: no frames at all) or falls behind stops holding the others back after
``stall_ms``; when they come back they are placed where the mix stands. A
participant far ahead (a burst after a stall) is trimmed to ``max_lead_ms``.

Like an ``AudioReceiver`` it has a ``listeners`` list, so ``speaker.attach(mixer)``
plays the mix.
"""

from __future__ import annotations

import fractions
import logging
import time
from collections.abc import Callable

import av
import numpy as np

log = logging.getLogger(__name__)

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz


class _Input:
    """One participant's audio from the mix's position on."""

    def __init__(self) -> None:
        self.queue = np.zeros((0, 2), np.int16)
        self.heard = float("-inf")
        self.resampler: av.AudioResampler | None = None

    def stereo(self, frame: av.AudioFrame) -> list[np.ndarray]:
        plain = frame.format.name == "s16" and frame.layout.name == "stereo"
        if plain and frame.sample_rate == RATE:
            return [frame.to_ndarray().reshape(-1, 2)]
        if self.resampler is None:
            self.resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        return [f.to_ndarray().reshape(-1, 2) for f in self.resampler.resample(frame)]


class AudioMixer:
    """Sums the audio of several sources into 20 ms frames for ``listeners``."""

    def __init__(
        self,
        *,
        stall_ms: float = 60.0,
        max_lead_ms: float = 200.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_s = stall_ms / 1000
        self.max_lead = round(max_lead_ms * RATE / 1000)
        self.clock = clock
        self.listeners: list[Callable[[av.frame.Frame], None]] = []
        #: Frames emitted, and samples dropped from inputs that ran too far ahead.
        self.frames = 0
        self.dropped = 0
        self._inputs: dict[str, _Input] = {}
        self._feeds: dict[str, Callable[[av.frame.Frame], None]] = {}
        self._pts = 0

    @property
    def keys(self) -> list[str]:
        """The sources mixed now."""
        return list(self._inputs)

    def listener_for(self, key: str) -> Callable[[av.frame.Frame], None]:
        """A frame listener for ``key``'s receiver (the same function every time)."""
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = lambda frame: self.feed(key, frame)
        return feed

    def remove(self, key: str) -> None:
        """``key`` left: nobody waits for them any more."""
        self._inputs.pop(key, None)
        self._feeds.pop(key, None)
        self._mix()

    def feed(self, key: str, frame: av.frame.Frame) -> None:
        """One decoded frame from ``key``; mixes and emits what is ready."""
        if not isinstance(frame, av.AudioFrame):
            return
        source = self._inputs.get(key)
        if source is None:
            source = self._inputs[key] = _Input()
        try:
            chunks = source.stereo(frame)
        except (ValueError, av.FFmpegError):
            log.debug("mixer: cannot convert a frame from %s", key, exc_info=True)
            return
        source.queue = np.concatenate([source.queue, *chunks])
        excess = len(source.queue) - self.max_lead
        if excess > 0:
            source.queue = source.queue[excess:]
            self.dropped += excess
        source.heard = self.clock()
        self._mix()

    def _mix(self) -> None:
        while self._inputs:
            now = self.clock()
            active = [s for s in self._inputs.values() if now - s.heard <= self.stall_s]
            ready = [s for s in self._inputs.values() if len(s.queue) >= FRAME]
            if not ready or any(len(s.queue) < FRAME for s in active):
                return
            total = np.zeros((FRAME, 2), np.int32)
            for source in self._inputs.values():
                take = source.queue[:FRAME]
                total[: len(take)] += take
                source.queue = source.queue[len(take) :]
            self._emit(np.clip(total, -32768, 32767).astype(np.int16))

    def _emit(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        self.frames += 1
        for listener in list(self.listeners):
            try:
                listener(frame)
            except Exception:
                log.exception("mixer listener failed")
