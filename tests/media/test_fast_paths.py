"""aiortc's per-frame paths replaced by gui/media/fast_paths.py: the same results, and a real
call through them (frame numbers in order, the tone's pitch, the track's end)."""

from __future__ import annotations

import asyncio
import fractions
import queue
import threading
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import pytest
from aiortc import rtcrtpreceiver, rtp
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

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
            # Audio was decoded on the loop: its receiver's thread ended at once; video's runs.
            alive = {t.name for t in threading.enumerate() if t.is_alive()}
            assert "video-decoder" in alive and "audio-decoder" not in alive
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


OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


def tone_frames(count: int, hz: float = 700.0) -> list[av.AudioFrame]:
    """``count`` frames of ToneAudioTrack's tone, unpaced, as aiortc's senders get them."""
    tone = ToneAudioTrack(hz)
    frames = []
    for i in range(count):
        pcm = np.round(tone.make_samples() * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(pcm, 2).reshape(1, -1), "s16", "stereo")
        frame.sample_rate, frame.pts = 48000, i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        frames.append(frame)
    return frames


def audio_of(frame: av.AudioFrame) -> tuple[Any, ...]:
    return (
        bytes(frame.planes[0]),
        frame.pts,
        frame.sample_rate,
        frame.layout.name,
        frame.format.name,
    )


async def test_audio_decoded_on_the_loop_is_aiortcs_decoder_threads_to_the_bit() -> None:
    fast_paths.install()
    aiortc_worker = fast_paths.AIORTC["decoder_worker"]
    encoder = get_encoder(OPUS)
    encoded = []
    for frame in tone_frames(60):
        payloads, timestamp = encoder.encode(frame)
        encoded += [JitterFrame(data=p, timestamp=timestamp) for p in payloads]
    assert len(encoded) == 60

    # aiortc's own: its decoder worker in a thread, frames handed back to this loop.
    threaded: asyncio.Queue[Any] = asyncio.Queue()
    tasks: queue.Queue[Any] = queue.Queue()
    worker = threading.Thread(
        target=aiortc_worker,
        args=(asyncio.get_running_loop(), tasks, threaded, threading.Event()),
    )
    worker.start()
    for jitter_frame in encoded:
        tasks.put((OPUS, jitter_frame))
    tasks.put(None)
    expected = []
    while (frame := await asyncio.wait_for(threaded.get(), 20)) is not None:
        expected.append(audio_of(frame))
    worker.join()

    # Inline, as an audio receiver holds it: the same frames, then the same end.
    receiver = SimpleNamespace(
        _track=SimpleNamespace(_queue=asyncio.Queue()),
        _RTCRtpReceiver__decoder_error=threading.Event(),
    )
    inline = fast_paths.InlineAudioDecoding(receiver)
    for jitter_frame in encoded:
        inline.put((OPUS, jitter_frame))
    inline.put(None)
    got = []
    while (frame := receiver._track._queue.get_nowait()) is not None:
        got.append(audio_of(frame))
    assert receiver._track._queue.empty()
    assert len(got) == len(expected) == 60
    assert got == expected
    assert not receiver._RTCRtpReceiver__decoder_error.is_set()


class FrameList(MediaStreamTrack):
    """A track that returns the given frames at once, in order."""

    def __init__(self, kind: str, frames: list[Any]) -> None:
        super().__init__()
        self.kind = kind
        self._frames = list(frames)

    async def recv(self) -> Any:
        return self._frames.pop(0)


class CountingLoop:
    """The running loop, counting what goes to its executor."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.executor_jobs = 0

    def run_in_executor(self, *args: Any) -> Any:
        self.executor_jobs += 1
        return self.loop.run_in_executor(*args)


def sender_state(track: MediaStreamTrack) -> SimpleNamespace:
    """What ``RTCRtpSender._next_encoded_frame`` reads and writes of its sender."""
    return SimpleNamespace(
        _RTCRtpSender__track=track,
        _RTCRtpSender__encoder=None,
        _RTCRtpSender__force_keyframe=False,
        _RTCRtpSender__loop=CountingLoop(),
        _enabled=True,
    )


def encoded_of(frame: Any) -> Any:
    return None if frame is None else (frame.payloads, frame.timestamp, frame.audio_level)


async def test_audio_encoded_on_the_loop_is_aiortcs_encoding_to_the_byte() -> None:
    fast_paths.install()
    aiortc_next = fast_paths.AIORTC["next_encoded_frame"]
    frames = tone_frames(50, 523.0)
    silence = np.zeros((1, 1920), np.int16)  # the level's other end
    frames[10:20] = [av.AudioFrame.from_ndarray(silence, "s16", "stereo") for _ in range(10)]
    for i, frame in enumerate(frames):
        frame.sample_rate, frame.pts = 48000, i * 960
        frame.time_base = fractions.Fraction(1, 48000)
    theirs, ours = (
        sender_state(FrameList("audio", frames)),
        sender_state(FrameList("audio", frames)),
    )
    expected = [encoded_of(await aiortc_next(theirs, OPUS)) for _ in frames]
    got = [encoded_of(await fast_paths.next_encoded_frame(ours, OPUS)) for _ in frames]
    assert got == expected
    assert -127 in {level for _, _, level in got} and len({level for _, _, level in got}) > 1
    assert all(payloads for payloads, _, _ in got)
    assert theirs._RTCRtpSender__loop.executor_jobs == 50  # aiortc: every frame in a thread
    assert ours._RTCRtpSender__loop.executor_jobs == 0  # here: none

    # A disabled sender reads its track and drops the frame, as aiortc's does.
    ours._enabled = False
    ours._RTCRtpSender__track = FrameList("audio", tone_frames(1))
    assert await fast_paths.next_encoded_frame(ours, OPUS) is None


async def test_video_is_still_encoded_in_the_executor_as_aiortc_does() -> None:
    fast_paths.install()
    aiortc_next = fast_paths.AIORTC["next_encoded_frame"]
    pattern = PatternVideoTrack(320, 240, 15)
    frames = [pattern.make_frame(n) for n in range(10)]
    for i, frame in enumerate(frames):
        frame.pts, frame.time_base = i * 6000, fractions.Fraction(1, 90000)
    theirs, ours = (
        sender_state(FrameList("video", frames)),
        sender_state(FrameList("video", frames)),
    )
    ours._RTCRtpSender__force_keyframe = theirs._RTCRtpSender__force_keyframe = True
    expected = [encoded_of(await aiortc_next(theirs, VP8)) for _ in frames]
    got = [encoded_of(await fast_paths.next_encoded_frame(ours, VP8)) for _ in frames]
    assert [(len(p), ts, level) for p, ts, level in got] == [
        (len(p), ts, level) for p, ts, level in expected
    ]
    assert all(level is None for _, _, level in got)
    assert ours._RTCRtpSender__loop.executor_jobs == 10
    assert ours._RTCRtpSender__force_keyframe is False


async def test_a_frame_that_fails_to_decode_on_the_loop_is_flagged_and_dropped() -> None:
    receiver = SimpleNamespace(
        _track=SimpleNamespace(_queue=asyncio.Queue()),
        _RTCRtpReceiver__decoder_error=threading.Event(),
    )
    inline = fast_paths.InlineAudioDecoding(receiver)
    inline.put((OPUS, JitterFrame(data=b"", timestamp=0)))  # flushes the decoder: it ends
    inline.put((OPUS, JitterFrame(data=b"\x03\xff\xff\xff", timestamp=960)))  # raises, caught
    assert receiver._RTCRtpReceiver__decoder_error.is_set()  # aiortc's receiver asks again
    assert receiver._track._queue.empty()
