"""Audio plumbing shared by the microphone and the speaker.

* Qt's ``QAudioFormat`` to PyAV's sample format and layout names, and the format a call
  prefers (48 kHz, s16, stereo: what aiortc's Opus encoder takes and its decoder gives).
* :class:`SampleFifo`: a queue of interleaved samples that pops exact frame sizes and drops
  its oldest samples beyond a bound.
* :class:`PcmConverter`: raw PCM in one format to interleaved samples in another, through
  ``av.AudioResampler`` only when the formats differ.
* :class:`AudioDeviceStream`: a ``QAudioSource`` or ``QAudioSink`` opened on a device, with
  its failures put in words: how the microphone and the speaker open their devices.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable

import av
import numpy as np
from PySide6.QtCore import QIODevice, QObject, Slot
from PySide6.QtMultimedia import QAudioDevice, QAudioFormat, QAudioSink, QAudioSource, QtAudio

#: What a call carries end to end: aiortc's Opus encoder and decoder work in this.
CALL_SAMPLE_RATE = 48000
CALL_CHANNELS = 2
#: 20 ms at 48 kHz: the frame size aiortc sends and receives.
CALL_FRAME_SAMPLES = 960

_AV_FORMATS: dict[QAudioFormat.SampleFormat, tuple[str, np.dtype]] = {
    QAudioFormat.SampleFormat.UInt8: ("u8", np.dtype(np.uint8)),
    QAudioFormat.SampleFormat.Int16: ("s16", np.dtype(np.int16)),
    QAudioFormat.SampleFormat.Int32: ("s32", np.dtype(np.int32)),
    QAudioFormat.SampleFormat.Float: ("flt", np.dtype(np.float32)),
}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def av_sample_format(fmt: QAudioFormat) -> str:
    """PyAV's packed sample format name for a Qt format (``s16``, ``flt``...)."""
    try:
        return _AV_FORMATS[fmt.sampleFormat()][0]
    except KeyError:
        raise ValueError(f"unsupported sample format {fmt.sampleFormat()}") from None


def numpy_dtype(fmt: QAudioFormat) -> np.dtype:
    """The numpy dtype of one sample of a Qt format."""
    try:
        return _AV_FORMATS[fmt.sampleFormat()][1]
    except KeyError:
        raise ValueError(f"unsupported sample format {fmt.sampleFormat()}") from None


def av_layout(channels: int) -> str:
    """PyAV's layout name for a channel count (FFmpeg's default order)."""
    try:
        return _LAYOUTS[channels]
    except KeyError:
        raise ValueError(f"unsupported channel count {channels}") from None


def call_format() -> QAudioFormat:
    """48 kHz, s16, stereo."""
    fmt = QAudioFormat()
    fmt.setSampleRate(CALL_SAMPLE_RATE)
    fmt.setChannelCount(CALL_CHANNELS)
    fmt.setSampleFormat(QAudioFormat.SampleFormat.Int16)
    return fmt


def choose_format(device: QAudioDevice) -> QAudioFormat:
    """The call format when the device takes it, else the device's preferred format."""
    fmt = call_format()
    if device.isFormatSupported(fmt):
        return fmt
    return device.preferredFormat()


def stream_format(device: QAudioDevice, forced: QAudioFormat | None = None) -> QAudioFormat:
    """The format to ask of ``device``: ``forced`` if given, else :func:`choose_format`'s.

    A missing (null) device gets the call format: nothing flows, but converters built on
    the format stay valid.
    """
    if forced is not None:
        return forced
    if device.isNull():
        return call_format()
    return choose_format(device)


def describe_format(fmt: QAudioFormat) -> str:
    """``48000 Hz s16 x2`` style summary for logs and reports."""
    return f"{fmt.sampleRate()} Hz {av_sample_format(fmt)} x{fmt.channelCount()}"


def same_format(a: QAudioFormat, b: QAudioFormat) -> bool:
    """Whether two formats have the same rate, channel count and sample format."""
    return (
        a.sampleRate() == b.sampleRate()
        and a.channelCount() == b.channelCount()
        and a.sampleFormat() == b.sampleFormat()
    )


class SampleFifo:
    """Interleaved samples (rows of ``channels`` values) in arrival order.

    :meth:`push` appends, :meth:`pop` removes exactly ``count`` rows from the front,
    :meth:`drop` discards the oldest rows. Arrays are kept as pushed (no copy) until popped.
    """

    def __init__(self, channels: int, dtype: np.dtype | type = np.int16) -> None:
        self.channels = channels
        self.dtype = np.dtype(dtype)
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._offset = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, samples: np.ndarray) -> None:
        """Append rows (shape ``(n, channels)``, or flat interleaved)."""
        rows = np.asarray(samples, dtype=self.dtype).reshape(-1, self.channels)
        if len(rows):
            self._chunks.append(rows)
            self._count += len(rows)

    def pop(self, count: int) -> np.ndarray:
        """Remove and return the oldest ``count`` rows (fewer if fewer are queued)."""
        count = min(count, self._count)
        out = np.empty((count, self.channels), dtype=self.dtype)
        filled = 0
        while filled < count:
            chunk = self._chunks[0]
            take = min(count - filled, len(chunk) - self._offset)
            out[filled : filled + take] = chunk[self._offset : self._offset + take]
            filled += take
            self._advance(take)
        return out

    def drop(self, count: int) -> int:
        """Discard the oldest ``count`` rows; returns how many were discarded."""
        count = min(count, self._count)
        left = count
        while left:
            take = min(left, len(self._chunks[0]) - self._offset)
            self._advance(take)
            left -= take
        return count

    def clear(self) -> None:
        """Discard everything."""
        self._chunks.clear()
        self._offset = 0
        self._count = 0

    def _advance(self, count: int) -> None:
        self._offset += count
        self._count -= count
        if self._offset == len(self._chunks[0]):
            self._chunks.popleft()
            self._offset = 0


class PcmConverter:
    """Converts audio to interleaved samples of one target format.

    Input is either raw PCM bytes in ``source`` format (:meth:`convert_bytes`, for what
    ``QAudioSource`` gives) or ``av.AudioFrame`` of any format (:meth:`convert_frame`, for
    remote audio). When the input already has the target format, samples are reinterpreted
    without a copy; otherwise they go through one ``av.AudioResampler`` (created again when
    the input format changes mid-stream). A resampler holds back a few samples (its filter
    delay) and the output is continuous.
    """

    def __init__(self, target: QAudioFormat, source: QAudioFormat | None = None) -> None:
        self.target = target
        self.source = source
        self.rate = target.sampleRate()
        self.channels = target.channelCount()
        self.dtype = numpy_dtype(target)
        self._av_format = av_sample_format(target)
        self._av_layout = av_layout(self.channels)
        self._resampler: av.AudioResampler | None = None
        self._input_key: tuple[str, str, int] | None = None

    @property
    def passthrough(self) -> bool:
        """Whether raw input (``source``) is already in the target format."""
        return self.source is not None and same_format(self.source, self.target)

    def convert_bytes(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """Raw PCM in the ``source`` format to rows of the target format."""
        if self.source is None:
            raise ValueError("no source format given")
        src_dtype = numpy_dtype(self.source)
        usable = len(data) - len(data) % (src_dtype.itemsize * self.source.channelCount())
        samples = np.frombuffer(data, dtype=src_dtype, count=usable // src_dtype.itemsize)
        if self.passthrough:
            return samples.reshape(-1, self.channels)
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1),
            format=av_sample_format(self.source),
            layout=av_layout(self.source.channelCount()),
        )
        frame.sample_rate = self.source.sampleRate()
        return self._resample(frame)

    def convert_frame(self, frame: av.AudioFrame) -> np.ndarray:
        """An ``av.AudioFrame`` of any format to rows of the target format."""
        if (
            frame.format.name == self._av_format
            and frame.sample_rate == self.rate
            and len(frame.layout.channels) == self.channels
        ):
            return frame.to_ndarray().reshape(-1, self.channels)
        return self._resample(frame)

    def _resample(self, frame: av.AudioFrame) -> np.ndarray:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or key != self._input_key:
            self._resampler = av.AudioResampler(
                format=self._av_format, layout=self._av_layout, rate=self.rate
            )
            self._input_key = key
        outputs = self._resampler.resample(frame)
        if not outputs:
            return np.zeros((0, self.channels), dtype=self.dtype)
        arrays = [out.to_ndarray().reshape(-1, self.channels) for out in outputs]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


class AudioStateRelay(QObject):
    """Receives ``stateChanged`` of a ``QAudioSource``/``QAudioSink`` for a Python callback.

    PySide6 6.12 cannot hand the state to a lambda or a plain function ("Cannot call meta
    function ... parameter 0 of type QAudio::State cannot be converted"); a slot declared
    with ``@Slot(QtAudio.State)`` on a QObject receives it fine. Note that ``QAudio.State``
    and ``QtAudio.State`` are distinct Python enums in 6.12 and never compare equal:
    ``state()`` and ``error()`` return ``QtAudio`` values, so compare with those.
    """

    def __init__(
        self, callback: Callable[[QtAudio.State], None], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._callback = callback

    @Slot(QtAudio.State)
    def on_state(self, state: QtAudio.State) -> None:
        """Forward the new state."""
        self._callback(state)


class AudioDeviceStream[Stream: (QAudioSource, QAudioSink)]:
    """A ``QAudioSource`` or ``QAudioSink`` on ``device``, and why it failed, in words.

    What the microphone and the speaker share: the format asked of the device
    (:func:`stream_format`), Qt's native period (``period_frames``, None for Qt's default),
    ``stateChanged`` received through an :class:`AudioStateRelay`, and the reasons handed to
    ``on_lost``: no device, a device that cannot be opened, a stream stopped by an error.
    ``word`` names the device in them ("microphone", "audio output"). The owner sets what
    else the stream needs (a sink's buffer size) on :attr:`stream` before :meth:`start`.
    """

    def __init__(
        self,
        stream_type: type[Stream],
        device: QAudioDevice,
        word: str,
        on_lost: Callable[[str], None],
        *,
        audio_format: QAudioFormat | None = None,
        period_frames: int | None = None,
        parent: QObject | None = None,
    ) -> None:
        self.device = device
        self.word = word
        self.format = stream_format(device, audio_format)
        self.stream: Stream = stream_type(device, self.format)
        if period_frames is not None:
            self.stream.setNativePeriodFrameCount(period_frames)
        self._on_lost = on_lost
        self._relay = AudioStateRelay(self._on_state, parent)
        self.stream.stateChanged.connect(self._relay.on_state)

    def start(self) -> QIODevice | None:
        """Start in push mode and return Qt's ``QIODevice``; None, ``on_lost`` told why, if not."""
        if self.device.isNull():
            self._on_lost(f"no {self.word}")
            return None
        io = self.stream.start()
        if io is None:
            self._on_lost(f"cannot open the {self.word} (error {self.stream.error().name})")
        return io

    def _on_state(self, state: QtAudio.State) -> None:
        error = self.stream.error()
        if state == QtAudio.State.StoppedState and error != QtAudio.Error.NoError:
            self._on_lost(f"{self.word} stopped: {error.name}")

    def close(self) -> None:
        """Stop listening to the stream, then stop it (idempotent)."""
        with contextlib.suppress(RuntimeError, TypeError):
            self.stream.stateChanged.disconnect(self._relay.on_state)
        self.stream.stop()
