"""aiortc's per-frame paths replaced by gui/media/fast_paths.py: the same results, and a real
call through them (frame numbers in order, the tone's pitch, the track's end)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from aiortc import rtcrtpreceiver, rtp

from gui.media import fast_paths
from gui.media.analysis import to_mono
from gui.media.pattern import PatternVideoTrack
from gui.media.tone import ToneAudioTrack
from tests.media.loopback import loopback
from tests.waiting import until

#: aiortc's own, kept before anything replaced it.
AIORTC_LEVEL = rtp.compute_audio_level_dbov


def s16_frame(samples: np.ndarray, layout: str = "stereo") -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), "s16", layout)
    frame.sample_rate = 48000
    return frame


@pytest.mark.parametrize("layout", ["stereo", "mono"])
def test_the_audio_level_is_aiortcs_to_the_decibel(layout: str) -> None:
    rng = np.random.default_rng(7)
    channels = 2 if layout == "stereo" else 1
    levels = set()
    for amplitude in [0, 1, 3, 30, 300, 3000, 20000, 32767]:
        for _ in range(5):
            raw = rng.integers(-amplitude, amplitude + 1, size=960 * channels)
            frame = s16_frame(raw, layout)
            assert fast_paths.audio_level_dbov(frame) == AIORTC_LEVEL(frame)
            levels.add(fast_paths.audio_level_dbov(frame))
    full = s16_frame(np.full(1920, -32768))  # the one value beyond full scale: clipped to 0
    assert fast_paths.audio_level_dbov(full) == AIORTC_LEVEL(full) == 0
    assert min(levels) == -127 and len(levels) > 5  # silence, and a spread of levels


def test_install_replaces_both_paths_in_aiortc() -> None:
    fast_paths.install()
    fast_paths.install()  # idempotent
    assert rtp.compute_audio_level_dbov is fast_paths.audio_level_dbov
    assert rtcrtpreceiver.decoder_worker is fast_paths.decoder_worker


async def test_a_call_through_the_fast_paths_carries_numbered_frames_and_the_tone() -> None:
    fast_paths.install()
    video, audio = PatternVideoTrack(320, 240, 15), ToneAudioTrack(880)
    try:
        async with loopback(video, audio) as call:
            await until(  # a broken pipeline, not a slow one
                lambda: (
                    call.video is not None
                    and call.video.numbered >= 20
                    and call.audio is not None
                    and call.audio.received_ms >= 1500
                ),
                30,
                "20 numbered frames and 1.5 s of the tone",
            )
            assert call.video is not None and call.audio is not None
            assert call.video.decreases == 0  # frames handed over in order
            peak = call.audio.peak_hz(1.0)
            assert peak is not None and abs(peak - 880) < 20
            tracks = [call.video.track, call.audio.track]
    finally:
        video.stop()
        audio.stop()
    # The peers closed: each decoder thread handed over the end, and each track ended.
    await until(lambda: all(t.readyState == "ended" for t in tracks), 20, "both tracks ended")


@pytest.mark.parametrize("layout", ["stereo", "mono"])
def test_to_mono_of_s16_is_the_general_paths_to_the_bit(layout: str) -> None:
    channels = 2 if layout == "stereo" else 1
    raw = np.random.default_rng(3).integers(-32768, 32768, size=960 * channels)
    frame = s16_frame(raw, layout)
    general = frame.to_ndarray().reshape(-1, channels).astype(np.float64) / 32768.0
    assert np.array_equal(to_mono(frame), general.mean(axis=1))
