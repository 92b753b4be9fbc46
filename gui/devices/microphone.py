"""The microphone as an aiortc audio track, through ``QAudioSource``.

The source runs in Qt's push mode: ``start()`` returns a ``QIODevice`` that Qt fills from
the sound server's thread, and ``readyRead`` (on the Qt main thread) drains it into a
bounded queue. :meth:`MicrophoneTrack.recv` hands out 20 ms frames of 48 kHz s16 stereo
(what aiortc's Opus encoder takes, so it converts nothing), converting with
``av.AudioResampler`` when the device does not offer that format.

The queue never holds more than ``max_buffer_ms`` (200 ms by default): when the consumer
stalls, the oldest audio is dropped, so a late consumer never turns into a permanent delay.
Timestamps count every captured sample, dropped ones included, so they keep following real
time; without drops consecutive frames are exactly 960 apart.

Qt 6.12's PulseAudio input asks the server for fragments of one period (1024 frames by
default, ``period_frames``) and caps the server-side buffer (``maxlength``) at the same size:
a source that delivers bigger blocks loses most of its audio. Sound cards and PipeWire are
fine; PulseAudio's ``module-sine-source`` (2-second blocks) is not, which is why the tests
use ``module-sine`` into a null sink whose monitor is remapped as a source. The same cap
loses audio whenever Qt's pulse thread is starved of CPU for longer than one period (measured
up to 12% at load 10-12, bench/microphone_loss.py), which is why a call's microphone records
through :mod:`gui.devices.pulse_capture` (``pulse_reader``) where PulseAudio runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from PySide6.QtCore import QIODevice, QObject, Qt, Signal, Slot
from PySide6.QtMultimedia import QAudioDevice, QAudioFormat, QAudioSource

from gui.devices.audio import (
    CALL_CHANNELS,
    CALL_FRAME_SAMPLES,
    CALL_SAMPLE_RATE,
    AudioDeviceStream,
    PcmConverter,
    SampleFifo,
    call_format,
    describe_format,
)
from gui.devices.catalog import (
    DeviceCatalog,
    DeviceKind,
    DeviceWatch,
    LossReporter,
    device_id,
)
from gui.devices.pulse_capture import PulseCapture

logger = logging.getLogger(__name__)

#: How many frame-ready times a track keeps for timing statistics.
TIMING_SAMPLES = 500

#: Qt's native period when the audio processing runs: 512 frames, 10.7 ms at 48 kHz (the
#: PulseAudio reader then takes exact 10 ms fragments, :func:`reader_fragment`). Chromium
#: captures in 10 ms buffers when its processing is on; Qt 6.12 takes only powers of two
#: (480 is refused), and 512 is the nearest. Through Qt it loses about as much audio as the
#: default 1024 frames on a loaded machine, 256 frames several times more
#: (bench/microphone_loss.py, docs/performance.md); through the reader, none.
PROCESSING_PERIOD_FRAMES = 512


def reader_fragment(period_frames: int | None) -> int:
    """The PulseAudio reader's fragment for a Qt period: 10 ms (480 frames, which Qt cannot
    take) for :data:`PROCESSING_PERIOD_FRAMES`, else the period itself (1024 by default)."""
    if period_frames is None:
        return 1024
    return 480 if period_frames == PROCESSING_PERIOD_FRAMES else period_frames


def capture_period(processing: bool) -> int | None:
    """The ``period_frames`` for a microphone whose audio is processed (``processing``) or
    sent as it is (Qt's default period, as Chromium keeps the device's own buffer then)."""
    return PROCESSING_PERIOD_FRAMES if processing else None


class _SourceBridge(QObject):
    """Receives the source device's ``readyRead`` on the Qt main thread, and what the
    PulseAudio reader thread hands over (queued to the main thread by Qt)."""

    data_read = Signal(bytes)
    read_failed = Signal(str)

    def __init__(self, track: MicrophoneTrack) -> None:
        super().__init__()
        self._track = track
        self.data_read.connect(self.on_data, Qt.ConnectionType.QueuedConnection)
        self.read_failed.connect(self.on_failed, Qt.ConnectionType.QueuedConnection)

    @Slot()
    def on_ready_read(self) -> None:
        self._track._read_available()

    @Slot(bytes)
    def on_data(self, data: bytes) -> None:
        self._track._push_bytes(data)

    @Slot(str)
    def on_failed(self, reason: str) -> None:
        self._track._report_lost(reason)


class MicrophoneTrack(MediaStreamTrack, LossReporter):
    """The microphone ``device`` (the default one when None) as 20 ms 48 kHz s16 stereo frames.

    Capture starts at construction. ``audio_format`` forces the format asked of the device
    (by default 48 kHz s16 stereo when the device supports it, else its preferred format);
    ``period_frames`` sets Qt's native period (a power of two from 32 to 4096; None keeps
    Qt's default of 1024 frames, which suits both PulseAudio and PipeWire). ``pulse_reader``
    records through :class:`~gui.devices.pulse_capture.PulseCapture` instead of Qt where it
    can (a PulseAudio or PipeWire-Pulse server, the call format): a server buffer of 500 ms
    instead of one period, and 10 ms fragments for :data:`PROCESSING_PERIOD_FRAMES`.

    A device that fails or is removed from ``catalog`` emits the pyee event ``"lost"``
    (reason) once, asynchronously, and sets :attr:`lost_reason`; the track then stays live
    without frames until stopped, so that the owner can call
    ``CallSession.replace_microphone(...)``. :meth:`stop` stops the ``QAudioSource``.
    """

    kind = "audio"
    device_word = "microphone"

    def __init__(
        self,
        device: QAudioDevice | None = None,
        *,
        max_buffer_ms: float = 200.0,
        audio_format: QAudioFormat | None = None,
        period_frames: int | None = None,
        catalog: DeviceCatalog | None = None,
        pulse_reader: bool = False,
    ) -> None:
        super().__init__()
        if max_buffer_ms < 1000 * CALL_FRAME_SAMPLES / CALL_SAMPLE_RATE:
            raise ValueError(f"max_buffer_ms must hold at least one frame, got {max_buffer_ms}")
        self.device = device if device is not None else DeviceCatalog.default_audio_input()
        self.device_id = device_id(self.device)
        self.lost_reason: str | None = None
        self.max_buffer_samples = round(max_buffer_ms * CALL_SAMPLE_RATE / 1000)
        #: Captured samples (48 kHz) dropped because nobody read them in time.
        self.dropped_samples = 0
        #: Samples captured so far (48 kHz, after conversion), dropped ones included.
        self.captured_samples = 0
        self.frames_delivered = 0
        #: time.monotonic() when each recent frame became complete, newest last.
        self.ready_times: collections.deque[float] = collections.deque(maxlen=TIMING_SAMPLES)
        self._fifo = SampleFifo(CALL_CHANNELS, np.int16)
        self._completed = 0
        self._time_base = fractions.Fraction(1, CALL_SAMPLE_RATE)
        self._waiter: asyncio.Future[None] | None = None
        self._bridge = _SourceBridge(self)
        self._audio = AudioDeviceStream(
            QAudioSource,
            self.device,
            "microphone",
            self._report_lost,
            audio_format=audio_format,
            period_frames=period_frames,
        )
        self.format = self._audio.format
        self.source = self._audio.stream
        self.converter = PcmConverter(call_format(), self.format)
        self.catalog = catalog if catalog is not None else DeviceCatalog()
        self._watch = DeviceWatch(
            self.catalog, DeviceKind.AUDIO_INPUT, self.device_id, self._report_lost
        )
        self._io: QIODevice | None = None
        #: The PulseAudio reader thread, when it records instead of Qt (see the module).
        self.reader: PulseCapture | None = None
        passthrough = audio_format is None and self.converter.passthrough
        if pulse_reader and passthrough and not self.device.isNull():
            self.reader = PulseCapture.open(
                self.device_id,
                self._bridge.data_read.emit,
                self._bridge.read_failed.emit,
                fragment_frames=reader_fragment(period_frames),
            )
        if self.reader is None:
            self._io = self._audio.start()
            if self._io is None:
                return
            self._io.readyRead.connect(self._bridge.on_ready_read)
        logger.info(
            "microphone %r: %s%s%s",
            self.device_id,
            describe_format(self.format),
            "" if self.converter.passthrough else " (resampled to 48000 Hz s16 x2)",
            ", PulseAudio reader thread" if self.reader is not None else "",
        )

    # Capture --------------------------------------------------------------------

    def _read_available(self) -> None:
        io = self._io
        if io is None or self.readyState != "live":
            return
        data = io.readAll()
        if data.isEmpty():
            return
        self._push_bytes(data.data())

    def _push_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if self.readyState != "live":
            return
        samples = self.converter.convert_bytes(data)
        if not len(samples):
            return
        self._fifo.push(samples)
        self.captured_samples += len(samples)
        excess = len(self._fifo) - self.max_buffer_samples
        if excess > 0:
            self.dropped_samples += self._fifo.drop(excess)
        now = time.monotonic()
        complete = self.captured_samples // CALL_FRAME_SAMPLES
        for _ in range(min(complete - self._completed, TIMING_SAMPLES)):
            self.ready_times.append(now)
        self._completed = complete
        if len(self._fifo) >= CALL_FRAME_SAMPLES:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def buffered_ms(self) -> float:
        """Milliseconds of captured audio waiting for recv()."""
        return 1000 * len(self._fifo) / CALL_SAMPLE_RATE

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame (waits for it); MediaStreamError once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        while len(self._fifo) < CALL_FRAME_SAMPLES:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if self.readyState != "live":
                raise MediaStreamError
        # Samples captured but not yet returned, minus what is still queued: where this
        # frame starts on the capture clock (drops make it jump forward).
        start = self.captured_samples - len(self._fifo)
        samples = self._fifo.pop(CALL_FRAME_SAMPLES)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = CALL_SAMPLE_RATE
        frame.pts = start
        frame.time_base = self._time_base
        self.frames_delivered += 1
        return frame

    # Failure and end ------------------------------------------------------------

    def stop(self) -> None:
        """Stop capturing and end the track (idempotent); a waiting recv() raises."""
        if self.readyState == "live":
            self._watch.close()
            if self._io is not None:
                with contextlib.suppress(RuntimeError, TypeError):
                    self._io.readyRead.disconnect(self._bridge.on_ready_read)
                self._io = None
            if self.reader is not None:
                self.reader.stop()
            self._audio.close()
            self._fifo.clear()
        super().stop()
        self._wake()
