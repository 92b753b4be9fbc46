"""Consumers for remote tracks: they drain them continuously and measure what arrives.

aiortc queues decoded remote frames without bound, so a track nobody reads grows its queue
(and its delay) forever. These receivers read every frame as it comes, keep only what is
needed (the newest video frame, the last seconds of audio) and count the rest, for the call
engine (display, "media is flowing" checks) and for tests (frame numbers, pitch, latency).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gui.media.pattern import decode_frame_number
from gui.media.tone import dominant_frequency

logger = logging.getLogger(__name__)

#: How many latency samples a VideoReceiver keeps (about 5 minutes at 30 fps).
LATENCY_SAMPLES = 10_000
#: A wait between two frames longer than this is a freeze (the figure browsers' stats and
#: issue 10 use: the sum of such waits is the freeze time).
FREEZE_GAP_S = 0.5


class TrackConsumer:
    """Reads a track until it ends or until stopped, handing every frame to :meth:`handle`.

    Use :meth:`run` as a coroutine, or :meth:`start` / :meth:`stop` to have it managed as a
    task. The track ending (``MediaStreamError``) ends the run quietly and sets :attr:`ended`;
    :meth:`stop` cancels the task and waits for it, so nothing is left pending. An unexpected
    error in :meth:`handle` is logged and kept in :attr:`error` rather than lost.
    """

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        #: True once the track has ended (as opposed to the consumer being stopped).
        self.ended = False
        #: The exception that ended the run, when it was not the track ending.
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        #: Called with every frame after :meth:`handle` (the Echo Test sends them back, the
        #: window shows them); an exception in one is logged and does not stop the track.
        self.listeners: list[Callable[[av.frame.Frame], None]] = []

    def handle(self, frame: av.frame.Frame, received_at: float) -> None:
        """Take one frame; ``received_at`` is time.monotonic() when recv() returned it."""
        raise NotImplementedError

    async def run(self) -> None:
        """Drain the track until it ends."""
        try:
            while True:
                frame = await self.track.recv()
                if not isinstance(frame, av.frame.Frame):
                    raise TypeError(f"expected decoded frames, got {type(frame).__name__}")
                self.handle(frame, time.monotonic())
                for listener in self.listeners:
                    try:
                        listener(frame)
                    except Exception:
                        logger.exception("frame listener failed")
        except MediaStreamError:
            self.ended = True

    def start(self) -> asyncio.Task[None]:
        """Run in a task of the running loop (idempotent) and return that task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"{type(self).__name__}({self.track.kind})"
            )
            self._task.add_done_callback(self._finished)
        return self._task

    @property
    def running(self) -> bool:
        """Whether the task started by :meth:`start` is still reading the track."""
        return self._task is not None and not self._task.done()

    def _finished(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.error = error
            logger.error("%s stopped by an error", type(self).__name__, exc_info=error)

    async def stop(self) -> None:
        """Cancel the task started by :meth:`start` and wait until it has finished."""
        task = self._task
        if task is None:
            return
        task.cancel()
        # asyncio.wait, unlike awaiting the task, does not raise the task's CancelledError,
        # while a cancellation of the caller still propagates.
        await asyncio.wait([task])

    async def wait_finished(self) -> None:
        """Wait until the task started by :meth:`start` has finished (track ended or stopped).

        Wrap in ``asyncio.timeout()`` to bound the wait; that does not cancel the consumer.
        """
        if self._task is not None:
            await asyncio.wait([self._task])


class FrameTimeline:
    """One sender's picture as this end shows it, measured from a moment on (a call moving
    into a meeting): the frames, the longest wait for one and the largest jump in frame
    numbers, across the receivers it comes through in turn (the call's connection, then the
    media server's). A receiver feeds it while its ``timeline`` is this one; :meth:`follow`
    hands it from one receiver to the next, as a window switches what it shows."""

    def __init__(self, receiver: VideoReceiver | None = None) -> None:
        self.started_at = self._previous_at = time.monotonic()
        self.frames = 0
        self.longest_gap_s = 0.0
        #: The largest step up in frame numbers (1: none missing; a path that lags behind
        #: the one before it repeats numbers, which costs no step).
        self.largest_skip = 0
        self._highest: int | None = None
        self.receiver: VideoReceiver | None = None
        if receiver is not None:
            self.follow(receiver)

    def follow(self, receiver: VideoReceiver) -> None:
        """Count ``receiver``'s frames from now on (and no longer the previous one's)."""
        if self.receiver is not None and self.receiver is not receiver:
            self.receiver.timeline = None
        self.receiver = receiver
        receiver.timeline = self
        if self._highest is None:
            self._highest = receiver.last_number

    def frame(self, received_at: float, number: int | None) -> None:
        """A frame shown, numbered ``number`` (``None``: unreadable)."""
        self.frames += 1
        self.longest_gap_s = max(self.longest_gap_s, received_at - self._previous_at)
        self._previous_at = received_at
        if number is None:
            return
        if self._highest is not None and number > self._highest:
            self.largest_skip = max(self.largest_skip, number - self._highest)
        self._highest = number if self._highest is None else max(self._highest, number)

    def figures(self) -> dict[str, float | int]:
        """The frames since the start, the longest wait for one (from the start on), in ms,
        and the largest jump in frame numbers."""
        return {
            "frames_since_mark": self.frames,
            "longest_gap_ms": round(1000 * self.longest_gap_s),
            "largest_frame_skip": self.largest_skip,
        }


class VideoReceiver(TrackConsumer):
    """Drains a remote video track: counts frames, keeps the newest, reads frame numbers.

    Frame numbers drawn by :class:`~gui.media.pattern.PatternVideoTrack` are decoded on every
    frame (under 0.1 ms); given the sender's ``sent_at`` (same process), each decoded frame adds
    a latency sample: decoded time minus the time the frame was made, in seconds.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        sent_at: Mapping[int, float] | None = None,
        decode_numbers: bool = True,
    ) -> None:
        super().__init__(track)
        self.sent_at = sent_at
        self.decode_numbers = decode_numbers
        #: Frames received.
        self.frames = 0
        #: Size of the last frame received.
        self.width: int | None = None
        self.height: int | None = None
        #: The newest frame and when it arrived (time.monotonic()); older ones are dropped.
        self.latest_frame: av.VideoFrame | None = None
        self.latest_at: float | None = None
        self.first_frame_at: float | None = None
        #: Frames whose number could be read.
        self.numbered = 0
        self.first_number: int | None = None
        self.last_number: int | None = None
        #: Times a frame number was lower than the one before it (should stay 0).
        self.decreases = 0
        #: Frame numbers never seen between two increasing ones (lost, or unreadable).
        self.skipped = 0
        #: Frame-made to frame-received delays, in seconds, newest last.
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        #: The sum of the waits between frames longer than FREEZE_GAP_S, in seconds.
        self.freeze_s = 0.0
        #: Where this receiver's frames are also counted (``None``: nowhere): one sender's
        #: picture across the receivers it comes through in turn.
        self.timeline: FrameTimeline | None = None

    def handle(self, frame: av.frame.Frame, received_at: float) -> None:
        """Count the frame, keep it as the newest, read its number and latency."""
        assert isinstance(frame, av.VideoFrame)
        self.frames += 1
        self.width, self.height = frame.width, frame.height
        self.latest_frame = frame
        if self.latest_at is not None and received_at - self.latest_at > FREEZE_GAP_S:
            self.freeze_s += received_at - self.latest_at
        self.latest_at = received_at
        if self.first_frame_at is None:
            self.first_frame_at = received_at
        number = decode_frame_number(frame) if self.decode_numbers else None
        if self.timeline is not None:
            self.timeline.frame(received_at, number)
        if number is None:
            return
        self.numbered += 1
        if self.first_number is None:
            self.first_number = number
        if self.last_number is not None:
            if number < self.last_number:
                self.decreases += 1
            elif number > self.last_number + 1:
                self.skipped += number - self.last_number - 1
        self.last_number = number
        if self.sent_at is not None:
            made_at = self.sent_at.get(number)
            if made_at is not None:
                self.latencies.append(received_at - made_at)

    @property
    def decode_rate(self) -> float:
        """Share of received frames whose number could be read (0.0 before any frame)."""
        return self.numbered / self.frames if self.frames else 0.0


def to_mono(frame: av.AudioFrame) -> np.ndarray:
    """An audio frame's samples as mono float64 in -1..1, whatever its format and layout."""
    channels = len(frame.layout.channels)
    if frame.format.name == "s16" and channels in (1, 2):
        # What every remote audio track gives (50 a second per participant): straight from
        # the plane, a tenth of the general path's time, the same values to the bit (sums
        # of two int16 and divisions by powers of two are exact).
        packed = np.frombuffer(frame.planes[0], dtype=np.int16, count=frame.samples * channels)
        if channels == 1:
            return packed / 32768.0
        return (packed[0::2].astype(np.float64) + packed[1::2]) / 65536.0
    array = frame.to_ndarray()
    # Planar formats come as (channels, samples), packed ones as (1, samples * channels).
    data = array.reshape(channels, -1).T if frame.format.is_planar else array.reshape(-1, channels)
    scaled = data.astype(np.float64)
    if data.dtype.kind == "u":  # u8: unsigned, centred on 128
        middle = float(1 << (8 * data.dtype.itemsize - 1))
        scaled = (scaled - middle) / middle
    elif data.dtype.kind == "i":  # s16, s32: full scale is 2 ** (bits - 1)
        scaled /= float(1 << (8 * data.dtype.itemsize - 1))
    return scaled.mean(axis=1)


class AudioReceiver(TrackConsumer):
    """Drains a remote audio track: counts what arrived and keeps the last seconds as mono.

    :meth:`peak_hz` gives the dominant pitch of the buffered audio. Onset detection: the first
    sample whose magnitude exceeds :attr:`onset_threshold` sets :attr:`onset_at`, the arrival
    time of its frame plus its offset within the frame (the time that sample would reach the
    speaker if frames were played as they come); :meth:`reset_onset` arms it again.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        buffer_seconds: float = 2.0,
        onset_threshold: float = 0.05,
    ) -> None:
        super().__init__(track)
        self.buffer_seconds = buffer_seconds
        self.onset_threshold = onset_threshold
        #: time.monotonic() of the first sample above the threshold since the last reset.
        self.onset_at: float | None = None
        self.frames = 0
        #: Milliseconds of audio received.
        self.received_ms = 0.0
        self.sample_rate: int | None = None
        self.first_frame_at: float | None = None
        self._buffer = np.zeros(0)
        self._written = 0
        self._filled = 0

    def handle(self, frame: av.frame.Frame, received_at: float) -> None:
        """Count the frame, append it to the ring buffer, look for an onset."""
        assert isinstance(frame, av.AudioFrame)
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = received_at
        self.received_ms += 1000.0 * frame.samples / frame.sample_rate
        if frame.sample_rate != self.sample_rate:
            self.sample_rate = frame.sample_rate
            self._buffer = np.zeros(max(1, round(self.buffer_seconds * frame.sample_rate)))
            self._written = self._filled = 0
        mono = to_mono(frame)
        if self.onset_at is None:
            loud = np.flatnonzero(np.abs(mono) > self.onset_threshold)
            if loud.size:
                self.onset_at = received_at + loud[0] / frame.sample_rate
        self._append(mono)

    def _append(self, mono: np.ndarray) -> None:
        capacity = self._buffer.size
        if mono.size >= capacity:
            self._buffer[:] = mono[-capacity:]
            self._written = capacity
            self._filled = capacity
            return
        start = self._written % capacity
        first = min(mono.size, capacity - start)
        self._buffer[start : start + first] = mono[:first]
        self._buffer[: mono.size - first] = mono[first:]
        self._written += mono.size
        self._filled = min(capacity, self._filled + mono.size)

    def samples(self, seconds: float | None = None) -> np.ndarray:
        """A copy of the newest buffered mono samples, oldest first (all of them by default)."""
        count = self._filled
        if seconds is not None and self.sample_rate is not None:
            count = min(count, round(seconds * self.sample_rate))
        if count == 0:
            return np.zeros(0)
        end = self._written % self._buffer.size
        return self._buffer.take(np.arange(end - count, end), mode="wrap")

    def peak_hz(self, seconds: float = 1.0) -> float | None:
        """Dominant frequency of the newest ``seconds`` of audio; None while too little arrived."""
        samples = self.samples(seconds)
        if self.sample_rate is None or samples.size < 4:
            return None
        return dominant_frequency(samples, self.sample_rate)

    def rms(self, seconds: float = 0.1) -> float:
        """Root-mean-square level (0..1) of the newest ``seconds`` of audio; 0.0 when empty."""
        samples = self.samples(seconds)
        return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0

    def reset_onset(self, threshold: float | None = None) -> None:
        """Forget the last onset and watch for the next one (optionally at a new threshold)."""
        if threshold is not None:
            self.onset_threshold = threshold
        self.onset_at = None
