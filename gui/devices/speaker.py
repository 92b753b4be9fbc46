"""Remote audio played through ``QAudioSink``, with a small jitter buffer.

Frames come in through :meth:`SpeakerSink.feed` (typically as a listener of the call's
:class:`~gui.media.analysis.AudioReceiver`, so that the remote track is drained once),
are converted to the output device's format with ``av.AudioResampler`` when needed, and
queue in a jitter buffer. A 5 ms timer moves them into the ``QAudioSink``'s own buffer
(push mode: ``start()`` returns a ``QIODevice``; we write what ``bytesFree()`` allows).

Policy, counted in milliseconds of audio queued on our side (jitter buffer + the sink's
buffer, which the sound server then drains), around a current target that starts at
``target_ms`` (40 ms):

* start (and restart after an underrun) once the target is queued;
* when the queue runs dry, write silence, a little at a time, so the device never starves
  (no click, no stall, no ``IdleState``), and count an underrun. When audio comes back,
  raise the target by the length of the gap (at least ``adapt_step_ms``, 10 ms), up to
  ``max_target_ms`` (100 ms): frames that arrive this irregularly need that much more
  margin (a longer gap is a pause, not jitter, and changes nothing). After
  ``relax_after_s`` (10 s) without an underrun the target comes down by one step, never
  below ``target_ms``. ``max_target_ms = target_ms`` turns this off;
* above ``max_ms`` (120 ms), drop the oldest audio down to the target;
* when the queue's lowest level over a whole second stayed above the target minus one frame
  by more than ``trim_slack_ms`` (a burst that never drained, or a sender clock faster than
  ours), drop that excess once: the queue then swings between the target minus one frame
  and the target, as right after (re)starting.

:attr:`SpeakerSink.queued_ms` is the delay this adds at any moment;
:attr:`SpeakerSink.queue_history` keeps recent samples of it.

What is handed to the device (the audio and the silence that fills gaps) is also handed to
:attr:`SpeakerSink.played_listeners`, at that moment and in the device's format: the echo
canceller's reference (``gui.media.processing.AudioProcessor.played``) must be what is
really played, at the pace the device takes it.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Protocol

import av
import numpy as np
from PySide6.QtCore import QIODevice, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtMultimedia import QAudioDevice, QAudioFormat, QAudioSink

from gui.devices.audio import (
    AudioDeviceStream,
    PcmConverter,
    SampleFifo,
    describe_format,
    numpy_dtype,
)
from gui.devices.catalog import DeviceCatalog, DeviceKind, DeviceWatch, device_id

logger = logging.getLogger(__name__)

#: Timer period of the pump that moves audio into the sink.
PUMP_INTERVAL_MS = 5
#: Silence written at a time when the queue is dry.
SILENCE_CHUNK_MS = 5
#: How many queue samples (one per pump) :attr:`SpeakerSink.queue_history` keeps.
HISTORY_SAMPLES = 2000


#: Told of every block handed to the device: ``(rows of samples in the device format, the
#: device's sample rate, milliseconds the device still had queued before them)``.
PlayedListener = Callable[[np.ndarray, int, float], None]


class FrameSource(Protocol):
    """Anything with a ``listeners`` list of frame callbacks (``TrackConsumer`` has one)."""

    listeners: list[Callable[[av.frame.Frame], None]]


class SpeakerSink(QObject):
    """Plays audio frames on ``device`` (the default output when None).

    ``audio_format`` forces the format asked of the device (by default 48 kHz s16 stereo
    when the device takes it, else its preferred format). ``device_buffer_ms`` sizes the
    ``QAudioSink`` ring buffer; ``period_frames`` sets Qt's native period (a power of two
    from 32 to 4096, None for Qt's default). Playback starts at construction (silence until
    audio arrives) and ends with :meth:`stop`.

    The signal ``lost(reason)`` is emitted once when the device fails or is removed from
    ``catalog``'s list; playback has then stopped and the owner may make a new sink.
    """

    lost = Signal(str)

    def __init__(
        self,
        device: QAudioDevice | None = None,
        *,
        target_ms: float = 40.0,
        max_target_ms: float = 100.0,
        max_ms: float = 120.0,
        adapt_step_ms: float = 10.0,
        relax_after_s: float = 10.0,
        trim_slack_ms: float = 10.0,
        device_buffer_ms: float = 40.0,
        audio_format: QAudioFormat | None = None,
        period_frames: int | None = None,
        catalog: DeviceCatalog | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if not 0 < target_ms <= max_target_ms < max_ms:
            raise ValueError(
                "need 0 < target_ms <= max_target_ms < max_ms,"
                f" got {target_ms}, {max_target_ms} and {max_ms}"
            )
        self.device = device if device is not None else DeviceCatalog.default_audio_output()
        self.device_id = device_id(self.device)
        self._audio = AudioDeviceStream(
            QAudioSink,
            self.device,
            "audio output",
            self._report_lost,
            audio_format=audio_format,
            period_frames=period_frames,
            parent=self,
        )
        self.format = self._audio.format
        self.sink = self._audio.stream
        self.rate = self.format.sampleRate()
        self.channels = self.format.channelCount()
        self.converter = PcmConverter(self.format)
        self._dtype = numpy_dtype(self.format)
        self._frame_bytes = self._dtype.itemsize * self.channels
        self.min_target_frames = self._frames(target_ms)
        self.max_target_frames = self._frames(max_target_ms)
        #: The current target, in frames of the device format (see the module docstring).
        self.target_frames = self.min_target_frames
        self.adapt_step_frames = self._frames(adapt_step_ms)
        self.relax_after_s = relax_after_s
        self.max_frames = self._frames(max_ms)
        self.trim_slack_frames = self._frames(trim_slack_ms)
        self.lost_reason: str | None = None
        #: Counters: underruns (queue ran dry while playing), silence written, audio dropped
        #: (over ``max_ms`` or trimmed), frames fed, conversion errors.
        self.underruns = 0
        self.silence_ms = 0.0
        self.dropped_ms = 0.0
        self.frames_fed = 0
        self.feed_errors = 0
        #: Recent (time.monotonic(), queued_ms) samples, one per pump, newest last.
        self.queue_history: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=HISTORY_SAMPLES
        )
        self._fifo = SampleFifo(self.channels, self._dtype)
        self._buffering = True
        #: True once audio has started playing (before that the device is left idle).
        self.playing = False
        self._window_start = time.monotonic()
        self._window_min: int | None = None
        self._calm_since = time.monotonic()
        #: Silence written since the last underrun began, until audio comes back (else None).
        self._gap: int | None = None
        #: Size of the frames fed (20 ms until one arrives), in frames of the device format.
        self._frame_size = self._frames(20)
        self._attached: list[FrameSource] = []
        #: Called with what is handed to the device (see the module docstring).
        self.played_listeners: list[PlayedListener] = []
        self._stopped = False
        self._halted = False

        self.sink.setBufferFrameCount(max(self._frames(device_buffer_ms), 64))
        self.catalog = catalog if catalog is not None else DeviceCatalog(self)
        self._watch = DeviceWatch(
            self.catalog, DeviceKind.AUDIO_OUTPUT, self.device_id, self._report_lost, self
        )
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PUMP_INTERVAL_MS)
        self._timer.timeout.connect(self._pump)
        self._io: QIODevice | None = self._audio.start()
        if self._io is None:
            return
        self._timer.start()
        logger.info("speaker %r: %s", self.device_id, describe_format(self.format))

    def _frames(self, ms: float) -> int:
        return round(ms * self.rate / 1000)

    # Input ----------------------------------------------------------------------

    def feed(self, frame: av.frame.Frame) -> None:
        """Queue one audio frame (any format: it is converted). For ``listeners`` lists."""
        if self._stopped or not isinstance(frame, av.AudioFrame):
            return
        try:
            samples = self.converter.convert_frame(frame)
        except (ValueError, av.FFmpegError):
            self.feed_errors += 1
            if self.feed_errors == 1:
                logger.exception("speaker: cannot convert a %s frame", frame.format.name)
            return
        self.frames_fed += 1
        if len(samples):
            self._frame_size = len(samples)
            if self._gap is not None:
                self._gap_closed()
        self._fifo.push(samples)
        self._pump()

    def attach(self, source: FrameSource) -> None:
        """Play every frame ``source`` (an ``AudioReceiver``) reads, until :meth:`stop`."""
        source.listeners.append(self.feed)
        self._attached.append(source)

    def detach(self, source: FrameSource) -> None:
        """Stop playing what ``source`` reads."""
        if source in self._attached:
            self._attached.remove(source)
        if self.feed in source.listeners:
            source.listeners.remove(self.feed)

    # Output ---------------------------------------------------------------------

    @property
    def device_queued_frames(self) -> int:
        """Frames written to the ``QAudioSink`` buffer and not yet taken by the server."""
        if self._io is None:
            return 0
        return max(0, self.sink.bufferFrameCount() - self.sink.framesFree())

    @property
    def queued_ms(self) -> float:
        """Audio queued on our side (jitter buffer + sink buffer), in milliseconds."""
        return 1000 * (len(self._fifo) + self.device_queued_frames) / self.rate

    @property
    def buffering(self) -> bool:
        """True while waiting for ``target_ms`` of audio (at start and after an underrun)."""
        return self._buffering

    @Slot()
    def _pump(self) -> None:
        io = self._io
        if io is None or self._stopped:
            return
        device = self.device_queued_frames
        if len(self._fifo) + device > self.max_frames:
            self._drop(len(self._fifo) + device - self.target_frames)
        self._trim_drift(len(self._fifo) + device)
        if self._buffering and len(self._fifo) + device >= self.target_frames:
            self._buffering = False
        free = self.sink.framesFree()
        if not self._buffering and len(self._fifo) and free:
            chunk = self._fifo.pop(free)
            written = max(0, io.write(chunk.tobytes())) // self._frame_bytes
            if written < len(chunk):  # the sink took less than it said it would
                self.dropped_ms += 1000 * (len(chunk) - written) / self.rate
            self._played(chunk[:written], device)
            free -= written
            device += written
        # Once playing, never let the device run dry: top it up with silence, a little at a
        # time, and wait for target_ms of audio again (an underrun).
        low_water = self._frames(2 * PUMP_INTERVAL_MS)
        if self.playing and device < low_water and free and (self._buffering or not self._fifo):
            if not self._buffering:
                self._buffering = True
                self._underrun()
            silence = min(free, low_water + self._frames(SILENCE_CHUNK_MS) - device)
            io.write(bytes(silence * self._frame_bytes))
            self._played(np.zeros((silence, self.channels), self._dtype), device)
            self.silence_ms += 1000 * silence / self.rate
            if self._gap is not None:
                self._gap += silence
        if not self._buffering:
            self.playing = True
        self.queue_history.append((time.monotonic(), self.queued_ms))

    def _played(self, samples: np.ndarray, queued_before: int) -> None:
        if not len(samples):
            return
        ahead_ms = 1000 * queued_before / self.rate
        for listener in self.played_listeners:
            try:
                listener(samples, self.rate, ahead_ms)
            except Exception:
                logger.exception("speaker: a played-audio listener failed")

    def _underrun(self) -> None:
        self.underruns += 1
        self._gap = 0  # counts the silence written until audio comes back
        self._calm_since = time.monotonic()

    def _gap_closed(self) -> None:
        """Audio is back after an underrun: raise the target by the gap (at least one step).

        A gap longer than ``max_target_ms`` is a pause (the peer muted, the network
        dropped out), not jitter a buffer could absorb: the target stays.
        """
        gap, self._gap = self._gap or 0, None
        if gap > self.max_target_frames:
            return
        raised = self.target_frames + max(self.adapt_step_frames, gap)
        self.target_frames = min(raised, self.max_target_frames)

    def _relax(self, now: float) -> None:
        if now - self._calm_since >= self.relax_after_s:
            self.target_frames = max(
                self.target_frames - self.adapt_step_frames, self.min_target_frames
            )
            self._calm_since = now

    @property
    def target_ms(self) -> float:
        """The current target (``target_ms`` raised by underruns, see the module docstring)."""
        return 1000 * self.target_frames / self.rate

    def _drop(self, frames: int) -> None:
        dropped = self._fifo.drop(max(0, min(frames, len(self._fifo))))
        self.dropped_ms += 1000 * dropped / self.rate

    def _trim_drift(self, total: int) -> None:
        """Drop a lasting excess: the lowest level over one second above target minus a frame."""
        self._window_min = total if self._window_min is None else min(self._window_min, total)
        now = time.monotonic()
        if now - self._window_start < 1.0:
            return
        excess = self._window_min - max(0, self.target_frames - self._frame_size)
        if not self._buffering and excess > self.trim_slack_frames:
            self._drop(excess)
        self._relax(now)
        self._window_start = now
        self._window_min = None

    # Failure and end ------------------------------------------------------------

    def _report_lost(self, reason: str) -> None:
        if self.lost_reason is not None or self._stopped:
            return
        self.lost_reason = reason
        logger.warning("audio output %r lost: %s", self.device_id, reason)
        self._halt()
        QTimer.singleShot(0, self, lambda: self.lost.emit(reason))

    def _halt(self) -> None:
        if self._halted:
            return
        self._halted = True
        self._timer.stop()
        self._io = None
        self._audio.close()
        self._fifo.clear()

    def stop(self) -> None:
        """Stop playing, detach from every source, release the device (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        for source in list(self._attached):
            self.detach(source)
        self._watch.close()
        self._halt()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped
