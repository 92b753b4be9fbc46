"""Finding a marker in a recording by correlation (tests/media/signals.py), as
``bench/microphone_loss.py --latency --method correlation`` does: deterministic, synthetic."""

from __future__ import annotations

import numpy as np

from gui.media.processing import AudioProcessor, ProcessingOptions
from tests.media.signals import RATE, chirp, find_markers, marker_scores, run_processor


def _stream_with(marker: np.ndarray, starts: list[int], gain: float = 1.0) -> np.ndarray:
    stream = np.random.default_rng(5).standard_normal(3 * RATE) * 10 ** (-60 / 20)
    for start in starts:
        stream[start : start + marker.size] += gain * marker
    return stream


def test_a_shifted_copy_is_found_at_its_sample() -> None:
    marker = chirp()
    starts = [12345, 40000 + 7, 101_111]
    found = find_markers(_stream_with(marker, starts, gain=0.1), marker)
    assert [index for index, _ in found] == starts
    assert all(score > 0.99 for _, score in found)


def test_one_sample_off_scores_less_than_the_right_sample() -> None:
    marker = chirp()
    scores = marker_scores(_stream_with(marker, [5000]), marker)
    assert int(np.argmax(scores)) == 5000
    assert scores[4999] < scores[5000] and scores[5001] < scores[5000]


def test_silence_and_noise_hold_no_marker() -> None:
    marker = chirp()
    assert find_markers(np.zeros(RATE), marker) == []
    noise = np.random.default_rng(9).standard_normal(RATE) * 0.1
    assert find_markers(noise, marker) == []


def test_the_processing_passes_the_marker_15_ms_later() -> None:
    """All four parts, a silent far end (a call's speaker): the marker comes out whole
    (score above 0.9: the noise suppressor and the gain control leave it) 15 ms later, the
    module's own delay; unprocessed, at the same sample."""
    marker = chirp()
    starts = [RATE // 2 + 111, RATE + 30_000, 2 * RATE + 480]
    microphone = _stream_with(marker, starts)
    far = np.zeros_like(microphone)
    processed = run_processor(AudioProcessor(ProcessingOptions()), microphone, far)
    found = find_markers(processed, marker)
    assert len(found) == len(starts)
    for (index, score), start in zip(found, starts, strict=True):
        assert 700 <= index - start <= 730, index - start
        assert score > 0.9
    bare = run_processor(AudioProcessor(ProcessingOptions.off()), microphone)
    assert [index for index, _ in find_markers(bare, marker)] == starts
