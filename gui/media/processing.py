"""The microphone's audio processing: echo cancellation, noise suppression, gain control.

On a laptop without a headset the speaker's sound reaches the microphone, and without
processing the other side hears itself a moment later. Browsers run WebRTC's audio
processing module (APM: AEC3, noise suppression, a high-pass filter, automatic gain) on every
call; so does Parley, through LiveKit's binding of it (``livekit.rtc.AudioProcessingModule``,
chosen by measurement: see docs/performance.md, "Audio processing").

* :class:`AudioProcessor` holds one APM for one microphone path. The microphone's frames go
  through :meth:`AudioProcessor.process`; what the speaker really plays goes to
  :meth:`AudioProcessor.played` (the echo canceller's reference), at the moment it is handed
  to the device, so that the reference follows the device's clock and includes the jitter
  buffer's silence. The APM works in 10 ms mono frames at 48 kHz; the processor converts
  and frames both sides, and tells the APM the delay it knows of (the speaker's queue ahead
  of what it just wrote, plus the microphone's queue); AEC3 estimates the rest itself.
* :class:`VoiceMeter` follows the processed signal's level and voice activity (the settings'
  level meter, the call window's "You are muted" hint).
* :class:`ProcessedAudioTrack` is the microphone after processing: it reads its source all
  the time, muted or not (the echo canceller keeps adapting and the meter keeps listening),
  and hands the sender the newest frames.

Qt-free and device-free: the speaker (``gui/devices``) knows the reference tap only as a
callable. The binding is imported on first use, so that the app starts without it.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gui.media.apm import Apm
from gui.media.tone_echo import ToneEchoCanceller

log = logging.getLogger(__name__)

#: What the processing works in: 48 kHz mono, 10 ms at a time.
RATE = 48000
CHUNK = RATE // 100
#: The frames a call sends: s16 stereo (what aiortc's Opus encoder takes).
CHANNELS = 2
#: Far-end audio kept for the echo canceller while no microphone chunk comes to hand it over
#: (the microphone stopped): the latest 250 ms.
FAR_KEPT = RATE // 4


@dataclass(frozen=True, slots=True)
class ProcessingOptions:
    """Which parts of the processing run (all of them by default, as in a browser)."""

    echo_cancellation: bool = True
    noise_suppression: bool = True
    high_pass_filter: bool = True
    auto_gain_control: bool = True

    @classmethod
    def off(cls) -> ProcessingOptions:
        """No processing at all: the microphone goes out as it is."""
        return cls(False, False, False, False)

    @property
    def active(self) -> bool:
        """Whether any part runs."""
        return (
            self.echo_cancellation
            or self.noise_suppression
            or self.high_pass_filter
            or self.auto_gain_control
        )


def pcm_to_mono(samples: np.ndarray) -> np.ndarray:
    """Rows of interleaved PCM (``(n, channels)``, any of u8/s16/s32/float) as mono int16."""
    data = np.asarray(samples)
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    if data.dtype == np.int16 and data.shape[1] == 1:
        return data[:, 0]
    if data.dtype.kind == "f":
        scaled = data.astype(np.float32) * 32767.0
    elif data.dtype == np.uint8:
        scaled = (data.astype(np.float32) - 128.0) * 256.0
    elif data.dtype == np.int32:
        scaled = data.astype(np.float32) / 65536.0
    elif data.dtype == np.int16:
        scaled = data.astype(np.float32)
    else:
        raise ValueError(f"unsupported sample type {data.dtype}")
    mono = scaled.mean(axis=1) if data.shape[1] > 1 else scaled[:, 0]
    return np.clip(np.rint(mono), -32768, 32767).astype(np.int16)


class _Resampler:
    """Mono int16 at some rate to mono int16 at 48 kHz (``av.AudioResampler``, made on need)."""

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._rate = 0

    def to_48k(self, mono: np.ndarray, rate: int) -> np.ndarray:
        if rate == RATE:
            return mono
        if self._resampler is None or rate != self._rate:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            self._rate = rate
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)


class _Fifo:
    """Mono int16 samples in arrival order; pops exact chunk sizes."""

    def __init__(self) -> None:
        self._data = np.zeros(0, np.int16)

    def __len__(self) -> int:
        return int(self._data.size)

    def push(self, samples: np.ndarray) -> None:
        self._data = np.concatenate([self._data, samples]) if self._data.size else samples

    def pop(self, count: int) -> np.ndarray:
        out, self._data = self._data[:count], self._data[count:]
        return out


class VoiceMeter:
    """Level and voice activity of a mono signal, 10 ms at a time.

    A 10 ms chunk counts as voice when it is louder than ``floor_db`` (dBFS) and more than
    ``margin_db`` above the background: the quietest chunk of the last ``floor_window_s``
    seconds. Speech has gaps between syllables, so its background stays low; a steady sound
    (a fan, a hum, a tone) becomes its own background within that window and stops counting.
    """

    def __init__(
        self,
        *,
        floor_db: float = -50.0,
        margin_db: float = 12.0,
        floor_window_s: float = 2.0,
        history_s: float = 5.0,
    ) -> None:
        self.floor_db = floor_db
        self.margin_db = margin_db
        self._window = round(floor_window_s * 100)
        #: (chunk number, level) of the window's candidates for its minimum, levels rising
        #: (a sliding minimum: each chunk is added and dropped once, not a scan per chunk).
        self._floor: collections.deque[tuple[int, float]] = collections.deque()
        self._chunks = 0
        #: (time.monotonic(), level in dBFS, voice) of recent chunks, newest last.
        self.history: collections.deque[tuple[float, float, bool]] = collections.deque(
            maxlen=round(history_s * 100)
        )

    def add(self, chunk: np.ndarray, at: float | None = None) -> bool:
        """Take one chunk of int16 samples; returns whether it is voice."""
        samples = chunk.astype(np.float32)
        power = float(np.dot(samples, samples)) / samples.size if samples.size else 0.0
        level = 10.0 * math.log10(max(power, 1e-3) / 32768.0**2)
        floor = self._floor
        while floor and floor[-1][1] >= level:
            floor.pop()
        floor.append((self._chunks, level))
        if floor[0][0] <= self._chunks - self._window:
            floor.popleft()
        self._chunks += 1
        background = floor[0][1]
        voice = level > self.floor_db and level > background + self.margin_db
        self.history.append((time.monotonic() if at is None else at, level, voice))
        return voice

    def level_db(self, seconds: float = 0.05) -> float:
        """The loudest chunk of the last ``seconds`` (dBFS; -100 when nothing came)."""
        recent = self._recent(seconds)
        return max((level for _, level, _ in recent), default=-100.0)

    def voice_seconds(self, seconds: float = 2.0, since: float = -math.inf) -> float:
        """Seconds of voice among the chunks of the last ``seconds`` (only those heard after
        ``since``, on the clock of ``add``)."""
        return sum(0.01 for _, _, voice in self._recent(seconds, since) if voice)

    def _recent(self, seconds: float, since: float = -math.inf) -> list[tuple[float, float, bool]]:
        if not self.history:
            return []
        start = max(since, self.history[-1][0] - seconds)
        return [entry for entry in self.history if entry[0] > start]


class AudioProcessor:
    """WebRTC's audio processing for one microphone path, and the far end it cancels.

    :meth:`process` takes the microphone's frames (any format; 20 ms s16 stereo 48 kHz, what
    the microphone gives, costs no conversion and no added buffering) and returns processed
    s16 stereo 48 kHz frames. :meth:`played` takes what the speaker hands its device.
    :meth:`configure` switches parts on or off (a new APM; the echo canceller then adapts
    again within a second or two). With every part off, frames pass through untouched and
    only the meter listens.
    """

    def __init__(self, options: ProcessingOptions | None = None) -> None:
        self.options = ProcessingOptions()
        self.meter = VoiceMeter()
        #: Chunks processed on each side, and wall time spent in the APM (for bench/).
        self.capture_chunks = 0
        self.render_chunks = 0
        self.busy_s = 0.0
        #: The delay last told to the APM (ms; -1: none yet): speaker queue ahead +
        #: microphone queue.
        self.stream_delay_ms = -1
        self._render_ahead_ms = 0.0
        self._apm: Any = None
        #: The echo of steady tones, which AEC3 leaves (gui/media/tone_echo.py).
        self.tones: ToneEchoCanceller | None = None
        #: Why the processing cannot run here (None: it can).
        self.unavailable: str | None = None
        self._capture_buffer = bytearray(CHUNK * 2)
        self._render_buffer = bytearray(CHUNK * 2)
        self._capture_view = np.frombuffer(self._capture_buffer, dtype=np.int16)
        self._render_view = np.frombuffer(self._render_buffer, dtype=np.int16)
        self._capture_frame: Any = None
        self._render_frame: Any = None
        self._near = _Fifo()
        self._far = _Fifo()
        self._near_resampler = _Resampler()
        self._far_resampler = _Resampler()
        self.configure(options or ProcessingOptions())

    def configure(self, options: ProcessingOptions) -> None:
        """Run the parts ``options`` names from the next chunk on."""
        self.options = options
        self._apm = None
        self.tones = None
        self.stream_delay_ms = -1  # a new APM is told the delay again
        if not options.active:
            return
        try:
            from livekit import rtc
        except (ImportError, OSError) as exc:  # a broken install: the call still works
            self.unavailable = f"the audio processing library cannot be loaded: {exc}"
            log.warning("%s; the microphone goes out unprocessed", self.unavailable)
            return
        self._capture_frame = rtc.AudioFrame(self._capture_buffer, RATE, 1, CHUNK)
        self._render_frame = rtc.AudioFrame(self._render_buffer, RATE, 1, CHUNK)
        self._apm = Apm(
            rtc,
            self._capture_frame,
            self._render_frame,
            echo_cancellation=options.echo_cancellation,
            noise_suppression=options.noise_suppression,
            high_pass_filter=options.high_pass_filter,
            auto_gain_control=options.auto_gain_control,
        )
        self._far = _Fifo()
        self.tones = ToneEchoCanceller() if options.echo_cancellation else None
        log.info("audio processing: %s", self.describe())

    @property
    def running(self) -> bool:
        """Whether the APM processes the microphone (something is on, and it loaded)."""
        return self._apm is not None

    def describe(self) -> str:
        """What runs, in a few words (for logs and parley-cli)."""
        options = self.options
        if self.unavailable is not None:
            return "unavailable"
        parts = [
            name
            for name, on in (
                ("echo cancellation", options.echo_cancellation),
                ("noise suppression", options.noise_suppression),
                ("high-pass filter", options.high_pass_filter),
                ("automatic gain", options.auto_gain_control),
            )
            if on
        ]
        return ", ".join(parts) if parts else "off"

    # The far end: what the speaker plays --------------------------------------------------

    def played(self, samples: np.ndarray, rate: int, ahead_ms: float) -> None:
        """The speaker handed ``samples`` (rows of its device format) to its device.

        ``ahead_ms``: audio the device still had queued before these, so about when they
        will be heard. For the speaker's ``played_listeners``.
        """
        self._render_ahead_ms = ahead_ms
        if self._apm is None or not self.options.echo_cancellation:
            return
        self._far.push(self._far_resampler.to_48k(pcm_to_mono(samples), rate))
        if len(self._far) > FAR_KEPT:
            self._far.pop(len(self._far) - FAR_KEPT)

    def _render(self) -> None:
        """Hand the far end played since the last microphone chunk to the echo canceller.

        Done in the microphone's turn, not in a turn of its own: each time the module runs
        after a pause its first chunk costs about 0.25 ms more than the next (caches, branch
        predictors; measured here: 1.0% of a core back to back, 3.5% with one render and
        capture pair every 10 ms), so one wake-up for both sides instead of one each saves
        that much every time. The far end's echo reaches the microphone later than it is
        handed over here (the device's queue, the room), as AEC3 needs.
        """
        apm = self._apm
        while len(self._far) >= CHUNK:
            self._render_view[:] = self._far.pop(CHUNK)
            started = time.perf_counter()
            if self.tones is not None:
                self._render_view[:] = self.tones.far(self._render_view)
            apm.process_reverse_stream()
            self.busy_s += time.perf_counter() - started
            self.render_chunks += 1

    # The near end: the microphone ---------------------------------------------------------

    def process(self, frame: av.AudioFrame, capture_ms: float = 0.0) -> av.AudioFrame | None:
        """The processed frame (s16 stereo 48 kHz, the input's timestamp); None while a
        frame of an odd size has not completed a 10 ms chunk yet.

        ``capture_ms``: how long the microphone's audio waited before this frame was read.
        """
        self._near.push(self._near_resampler.to_48k(frame_to_mono(frame), frame.sample_rate))
        chunks = len(self._near) // CHUNK
        if not chunks:
            return None
        out = av.AudioFrame(format="s16", layout="stereo", samples=chunks * CHUNK)
        out.sample_rate = RATE
        out.pts = frame.pts
        out.time_base = frame.time_base or fractions.Fraction(1, RATE)
        # Written straight into the new frame's buffer: left and right, 10 ms at a time.
        rows = np.frombuffer(out.planes[0], np.int16)[: chunks * CHUNK * CHANNELS]
        rows = rows.reshape(-1, CHANNELS)
        # A hint (AEC3 finds the delay itself), in 10 ms steps: told again only on a change,
        # as each call into the binding costs about a third of a chunk's processing.
        delay = 10 * round((self._render_ahead_ms + capture_ms) / 10)
        apm = self._apm
        if apm is not None and self.options.echo_cancellation:
            self._render()
        for index in range(chunks):
            chunk = self._near.pop(CHUNK)
            if apm is not None:
                started = time.perf_counter()
                self._capture_view[:] = chunk if self.tones is None else self.tones.near(chunk)
                if self.options.echo_cancellation and delay != self.stream_delay_ms:
                    self.stream_delay_ms = delay
                    apm.set_stream_delay_ms(delay)
                apm.process_stream()
                self.busy_s += time.perf_counter() - started
                chunk = self._capture_view
            self.capture_chunks += 1
            self.meter.add(chunk)
            span = rows[index * CHUNK : (index + 1) * CHUNK]
            span[:, 0] = chunk
            span[:, 1] = chunk
        return out


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """A frame's samples as mono int16, read from its buffer in place for s16 (for stereo,
    what microphones give, the mean of the channels rounded down); else :func:`pcm_to_mono`.
    Never a view of the frame: what a 10 ms chunk leaves waits for the next frame."""
    if frame.format.name == "s16":
        channels = frame.layout.nb_channels
        samples = np.frombuffer(frame.planes[0], np.int16)[: frame.samples * channels]
        if channels == 1:
            return samples.copy()
        if channels == 2:
            wide = samples[0::2].astype(np.int32)
            wide += samples[1::2]
            wide >>= 1
            return wide.astype(np.int16)
    return pcm_to_mono(_rows(frame))


def _rows(frame: av.AudioFrame) -> np.ndarray:
    """A frame's samples as rows ``(n, channels)`` of its sample type."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        return array.reshape(channels, -1).T
    return array.reshape(-1, channels)


class ProcessedAudioTrack(MediaStreamTrack):
    """``source`` (a microphone) after ``processor``, as a track a sender reads.

    A task reads the source all the time, whether or not anyone reads this track (a muted
    call stops reading it): the echo canceller keeps following the room and the meter keeps
    listening for a muted person who talks. What nobody reads is kept up to ``max_queue_ms``
    (the oldest dropped first), so unmuting sends current audio. Frames read by the task are
    also handed to ``frame_listeners`` (the settings' test recording).

    Stopping this track stops the source; the source ending ends this track. Must be made
    while an event loop runs (the task starts at once).
    """

    kind = "audio"

    def __init__(
        self,
        source: MediaStreamTrack,
        processor: AudioProcessor,
        *,
        max_queue_ms: float = 100.0,
    ) -> None:
        super().__init__()
        self.source = source
        self.processor = processor
        self.max_queue_ms = max_queue_ms
        self.frame_listeners: list[Callable[[av.AudioFrame], None]] = []
        #: Processed audio dropped because nobody read it (ms), and frames processed.
        self.dropped_ms = 0.0
        self.frames_processed = 0
        self._queue: collections.deque[av.AudioFrame] = collections.deque()
        self._queued_ms = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._task = asyncio.get_running_loop().create_task(
            self._pump(), name="ProcessedAudioTrack"
        )

    async def _pump(self) -> None:
        try:
            while self.readyState == "live":
                frame = await self.source.recv()
                assert isinstance(frame, av.AudioFrame)
                capture_ms = float(getattr(self.source, "buffered_ms", 0.0))
                out = self.processor.process(frame, capture_ms)
                if out is None:
                    continue
                self.frames_processed += 1
                self._enqueue(out)
                for listener in self.frame_listeners:
                    try:
                        listener(out)
                    except Exception:
                        log.exception("frame listener failed")
        except MediaStreamError:
            self.stop()  # the source ended (stopped, or a device gone for good)
        except Exception:
            log.exception("the audio processing stopped")
            self.stop()

    def _enqueue(self, frame: av.AudioFrame) -> None:
        self._queue.append(frame)
        self._queued_ms += 1000 * frame.samples / frame.sample_rate
        while self._queued_ms > self.max_queue_ms and len(self._queue) > 1:
            old = self._queue.popleft()
            gone = 1000 * old.samples / old.sample_rate
            self._queued_ms -= gone
            self.dropped_ms += gone
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> av.AudioFrame:
        """The next processed frame (waits for it); MediaStreamError once stopped."""
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.readyState != "live":
            raise MediaStreamError
        frame = self._queue.popleft()
        self._queued_ms -= 1000 * frame.samples / frame.sample_rate
        return frame

    def stop(self) -> None:
        """End the track and its source (idempotent); a waiting recv() raises."""
        if self.readyState == "live":
            super().stop()
            self.source.stop()
            if self._task is not asyncio.current_task():
                self._task.cancel()
            self._queue.clear()
        self._wake()
