"""The audio plumbing without devices: the sample queue and the format converter."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PySide6.QtMultimedia import QAudioFormat

from gui.devices.audio import PcmConverter, SampleFifo, av_layout, call_format
from gui.media.tone import dominant_frequency


def fmt(rate: int, channels: int, sample_format: QAudioFormat.SampleFormat) -> QAudioFormat:
    out = QAudioFormat()
    out.setSampleRate(rate)
    out.setChannelCount(channels)
    out.setSampleFormat(sample_format)
    return out


def test_fifo_pops_exact_counts_across_chunks() -> None:
    fifo = SampleFifo(2)
    fifo.push(np.arange(10, dtype=np.int16))  # 5 rows
    fifo.push(np.arange(10, 16, dtype=np.int16).reshape(3, 2))
    assert len(fifo) == 8
    first = fifo.pop(4)
    assert first.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert fifo.drop(2) == 2
    assert fifo.pop(10).tolist() == [[12, 13], [14, 15]]
    assert len(fifo) == 0
    assert fifo.pop(3).shape == (0, 2)
    assert fifo.drop(5) == 0


def test_fifo_clear() -> None:
    fifo = SampleFifo(1, np.float32)
    fifo.push(np.ones(7, dtype=np.float32))
    fifo.clear()
    assert len(fifo) == 0


def test_converter_passes_the_call_format_through() -> None:
    converter = PcmConverter(call_format(), call_format())
    assert converter.passthrough
    pcm = np.arange(1920, dtype=np.int16)
    out = converter.convert_bytes(pcm.tobytes())
    assert out.shape == (960, 2)
    assert out.ravel().tolist() == pcm.tolist()


def test_converter_resamples_mono_float_44k1_to_the_call_format() -> None:
    source = fmt(44100, 1, QAudioFormat.SampleFormat.Float)
    converter = PcmConverter(call_format(), source)
    assert not converter.passthrough
    t = np.arange(44100) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    pieces = [converter.convert_bytes(tone[i : i + 441].tobytes()) for i in range(0, 44100, 441)]
    out = np.concatenate(pieces)
    assert out.dtype == np.int16 and out.shape[1] == 2
    assert abs(len(out) - 48000) < 100  # the resampler holds a few samples back
    assert abs(dominant_frequency(out[:, 0].astype(float), 48000) - 1000) < 0.5


def test_converter_takes_frames_of_any_format() -> None:
    converter = PcmConverter(fmt(44100, 1, QAudioFormat.SampleFormat.Int16))
    data = np.zeros((1, 1920), dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
    frame.sample_rate = 48000
    total = sum(len(converter.convert_frame(frame)) for _ in range(50))
    assert abs(total - 44100) < 100


def test_unsupported_layouts_are_refused() -> None:
    with pytest.raises(ValueError):
        av_layout(12)
