"""Synthetic media sources and receivers: pure units, and real aiortc calls over loopback."""

from __future__ import annotations

import asyncio
import fractions
import gc
import itertools
import logging
import math
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterable

import av
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
)
from aiortc.mediastreams import MediaStreamError

from gui.media import (
    AudioReceiver,
    PatternVideoTrack,
    ToneAudioTrack,
    VideoReceiver,
    decode_frame_number,
    dominant_frequency,
)
from gui.media.analysis import TrackConsumer, to_mono
from gui.media.pattern import (
    BLOCK,
    MAX_FRAME_NUMBER,
    SENT_AT_LIMIT,
    STRIP_HEIGHT,
    STRIP_WIDTH,
)

# ---------------------------------------------------------------------------------------------
# Frame numbers
# ---------------------------------------------------------------------------------------------

#: From negotiated to the first frames of a pair of aiortc peers in this process: about 0.2 s
#: on a quiet machine, seconds on a loaded one; this bound only catches a pipeline that
#: never starts.
FLOWS_WITHIN_S = 20

EDGE_NUMBERS = [0, 1, 2, 3, 255, 256, 1000, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]


def test_every_number_round_trips_without_encoding():
    track = PatternVideoTrack()
    rng = random.Random(7)
    numbers = EDGE_NUMBERS + [rng.randrange(MAX_FRAME_NUMBER + 1) for _ in range(300)]
    numbers += list(range(2000))
    for number in numbers:
        assert decode_frame_number(track.make_frame(number)) == number
    assert MAX_FRAME_NUMBER == 2**32 - 1


@pytest.mark.parametrize("size", [(176, 96), (320, 240), (1280, 720), (1920, 1080)])
def test_round_trip_at_other_sizes(size):
    track = PatternVideoTrack(*size)
    for number in EDGE_NUMBERS:
        frame = track.make_frame(number)
        assert (frame.width, frame.height, frame.format.name) == (*size, "yuv420p")
        assert decode_frame_number(frame) == number


def test_decodes_after_conversion_to_rgb():
    frame = PatternVideoTrack().make_frame(123_456)
    assert decode_frame_number(frame.reformat(format="rgb24")) == 123_456
    assert decode_frame_number(frame.reformat(format="yuvj420p")) == 123_456


def test_unreadable_strips_give_none():
    track = PatternVideoTrack()
    blank = av.VideoFrame(640, 480, "yuv420p")
    for plane in blank.planes:
        plane.update(bytes(plane.buffer_size))
    assert decode_frame_number(blank) is None

    # One data cell flipped: the CRC rejects it.
    frame = track.make_frame(4242)
    luma = np.frombuffer(frame.planes[0], np.uint8).reshape(480, frame.planes[0].line_size)
    cell = (5 * BLOCK, 6 * BLOCK)  # row 0, column 5: a data cell
    luma[:BLOCK, cell[0] : cell[1]] = 255 - luma[:BLOCK, cell[0] : cell[1]]
    assert decode_frame_number(frame) is None

    # A washed-out strip (no contrast) and a half-grey cell (ambiguous) are rejected too.
    frame = track.make_frame(4242)
    luma = np.frombuffer(frame.planes[0], np.uint8).reshape(480, frame.planes[0].line_size)
    luma[:STRIP_HEIGHT, :STRIP_WIDTH] = 128
    assert decode_frame_number(frame) is None
    frame = track.make_frame(4242)
    luma = np.frombuffer(frame.planes[0], np.uint8).reshape(480, frame.planes[0].line_size)
    luma[BLOCK : 2 * BLOCK, BLOCK : 2 * BLOCK] = 126
    assert decode_frame_number(frame) is None

    assert decode_frame_number(av.VideoFrame(160, 48, "yuv420p")) is None


def test_moving_block_moves_and_stays_off_the_strip():
    track = PatternVideoTrack()
    first = np.frombuffer(track.make_frame(0).planes[0], np.uint8).copy()
    later = np.frombuffer(track.make_frame(10).planes[0], np.uint8).copy()
    assert np.count_nonzero(first != later) > 1000
    for number in range(0, 600, 7):
        frame = track.make_frame(number)
        luma = np.frombuffer(frame.planes[0], np.uint8).reshape(480, -1)
        quiet = luma[: STRIP_HEIGHT + BLOCK, : STRIP_WIDTH + BLOCK].copy()
        quiet[:STRIP_HEIGHT, :STRIP_WIDTH] = 16
        assert np.all(quiet == 16)


def _codec_round_trip(codec: str, width: int, height: int, bit_rate: int, count: int) -> float:
    """Encode ``count`` pattern frames and decode them with PyAV; share of numbers read back."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    track = PatternVideoTrack(width, height)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.bit_rate = bit_rate
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.framerate = fractions.Fraction(30)
    encoder.gop_size = 3000
    if codec == "libvpx":  # aiortc's real-time constant-bitrate settings
        encoder.qmin, encoder.qmax = 2, 56
        encoder.options = {
            "deadline": "realtime",
            "cpu-used": "-6",
            "lag-in-frames": "0",
            "minrate": str(bit_rate),
            "maxrate": str(bit_rate),
            "bufsize": str(bit_rate),
            "undershoot-pct": "100",
            "static-thresh": "1",
        }
        decoder = av.CodecContext.create("libvpx", "r")
    else:
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
        decoder = av.CodecContext.create("h264", "r")
    read = 0
    decoded = 0
    for number in range(count):
        frame = track.make_frame(number)
        frame.pts = number
        frame.time_base = encoder.time_base
        for packet in encoder.encode(frame):
            for out in decoder.decode(packet):
                decoded += 1
                assert (out.width, out.height) == (width, height)
                if decode_frame_number(out) == number:
                    read += 1
    assert decoded == count
    return read / count


def test_numbers_survive_vp8_at_low_bitrate():
    assert _codec_round_trip("libvpx", 640, 480, 100_000, 90) > 0.9


def test_numbers_survive_h264_at_low_bitrate():
    assert _codec_round_trip("libx264", 640, 480, 150_000, 60) > 0.9


# ---------------------------------------------------------------------------------------------
# Pitch
# ---------------------------------------------------------------------------------------------


def _sine(frequency: float, seconds: float, rate: int = 48000, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.sin(2 * math.pi * frequency * t + phase)


@pytest.mark.parametrize("frequency", [50.0, 440.0, 997.3, 1000.0, 3141.59, 12000.5, 20000.0])
def test_dominant_frequency_of_clean_sines(frequency):
    phase = random.Random(frequency).uniform(0, 2 * math.pi)
    assert dominant_frequency(_sine(frequency, 1.0, phase=phase), 48000) == pytest.approx(
        frequency, abs=0.1
    )


def test_dominant_frequency_in_noise_short_windows_and_int16():
    rng = np.random.default_rng(3)
    noisy = 0.3 * _sine(440.0, 1.0) + 0.1 * rng.standard_normal(48000)
    assert dominant_frequency(noisy, 48000) == pytest.approx(440.0, abs=0.5)
    # 100 ms: 10 Hz bins, still well inside 5 Hz.
    assert dominant_frequency(_sine(1234.5, 0.1), 48000) == pytest.approx(1234.5, abs=1.0)
    as_int16 = np.round(_sine(1000.0, 0.5, rate=16000) * 10000).astype(np.int16)
    assert dominant_frequency(as_int16, 16000) == pytest.approx(1000.0, abs=0.5)
    # A DC offset does not win over the tone.
    assert dominant_frequency(0.5 + 0.1 * _sine(300.0, 1.0), 48000) == pytest.approx(300.0, abs=0.5)


def test_dominant_frequency_edge_cases():
    assert dominant_frequency(np.zeros(4800), 48000) == 0.0
    with pytest.raises(ValueError):
        dominant_frequency(np.zeros((2, 4800)), 48000)
    with pytest.raises(ValueError):
        dominant_frequency(np.zeros(2), 48000)


# ---------------------------------------------------------------------------------------------
# Tracks on their own: format, pacing, phase, ending
# ---------------------------------------------------------------------------------------------


async def test_tone_frames_are_opus_ready_and_phase_continuous():
    track = ToneAudioTrack(frequency=1000.0, amplitude=0.5)
    frames = [await track.recv() for _ in range(10)]
    for index, frame in enumerate(frames):
        assert (frame.format.name, frame.layout.name) == ("s16", "stereo")
        assert (frame.sample_rate, frame.samples) == (48000, 960)
        assert frame.pts == 960 * index
    samples = np.concatenate([f.to_ndarray().reshape(-1, 2) for f in frames])
    assert np.array_equal(samples[:, 0], samples[:, 1])
    expected = np.round(0.5 * 32767 * _sine(1000.0, 0.2)).astype(np.int16)
    assert np.abs(samples[:, 0].astype(int) - expected).max() <= 1
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_tone_mute_and_sound_start():
    track = ToneAudioTrack()
    track.muted = True
    assert not np.any((await track.recv()).to_ndarray())
    assert track.sound_started_at is None
    track.muted = False
    frame = await track.recv()
    assert track.sound_started_at is not None
    assert np.abs(frame.to_ndarray()).max() > 9000
    track.stop()


async def test_video_pacing_and_timestamps():
    track = PatternVideoTrack(176, 96, fps=50)
    start = time.monotonic()
    frames = [await track.recv() for _ in range(26)]
    elapsed = time.monotonic() - start
    # Paced: 25 intervals of 20 ms. A loaded machine makes it later (seconds only if starved
    # of a core); only a pacer that never wakes reaches 10 s.
    assert 0.45 < elapsed < 10
    # One 20 ms slot after another (1800 ticks of 90 kHz). A process kept from running for
    # over half a second (a loaded machine) is behind by more than the pacer lets a consumer
    # fall: its next timestamps jump over the slots it missed, as for any late consumer.
    steps = [b.pts - a.pts for a, b in itertools.pairwise(frames)]
    assert frames[0].pts == 0 and all(step > 0 and step % 1800 == 0 for step in steps)
    assert frames[-1].pts == 1800 * (25 + track._pacer.skipped)
    assert [decode_frame_number(f) for f in frames] == list(range(26))
    assert frames[0].time_base == fractions.Fraction(1, 90000)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_sent_at_is_bounded():
    track = PatternVideoTrack(176, 96, fps=20_000)
    for _ in range(SENT_AT_LIMIT + 200):
        await track.recv()
    assert len(track.sent_at) == SENT_AT_LIMIT
    assert min(track.sent_at) == 200
    assert max(track.sent_at) == SENT_AT_LIMIT + 199
    track.stop()


@pytest.mark.parametrize("make", [lambda: PatternVideoTrack(176, 96, fps=0.2), ToneAudioTrack])
async def test_stop_during_the_pacing_wait_ends_recv_at_once(make):
    """The video's next frame is due 5 s later: ending within a few turns of the loop shows
    that stop() cut the wait short (a clock bound would also count how long a loaded machine
    keeps the process from running). (The tone's wait, 20 ms, can run out in those turns on
    a loaded machine: for it this shows that the waiting recv() ends.)"""
    track = make()
    await track.recv()
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert not pending.done()
    track.stop()
    # At once: within a few turns of the loop, however slowly a loaded machine runs them.
    for _ in range(10):
        if pending.done():
            break
        await asyncio.sleep(0)
    assert pending.done()
    with pytest.raises(MediaStreamError):
        await pending


# ---------------------------------------------------------------------------------------------
# Receivers against scripted tracks
# ---------------------------------------------------------------------------------------------


class ScriptedTrack(MediaStreamTrack):
    """Returns the given frames, then either ends or waits forever."""

    def __init__(self, kind: str, frames: Iterable[av.frame.Frame], end: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self._frames = list(frames)
        self._end = end

    async def recv(self) -> av.frame.Frame:
        if self._frames:
            await asyncio.sleep(0)
            return self._frames.pop(0)
        if self._end:
            self.stop()
            raise MediaStreamError
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def _audio_frame(mono: np.ndarray, layout: str = "stereo", fmt: str = "s16") -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    if fmt == "s16":
        pcm = np.round(mono * 32767).astype(np.int16)
        array = np.repeat(pcm, channels).reshape(1, -1)
    else:  # fltp
        array = np.tile(mono.astype(np.float32), (channels, 1))
    frame = av.AudioFrame.from_ndarray(array, format=fmt, layout=layout)
    frame.sample_rate = 48000
    return frame


def test_to_mono_handles_packed_planar_and_mono():
    mono = 0.5 * _sine(100.0, 0.02)
    for layout, fmt in [("stereo", "s16"), ("mono", "s16"), ("stereo", "fltp"), ("mono", "fltp")]:
        assert np.allclose(to_mono(_audio_frame(mono, layout, fmt)), mono, atol=1e-4)
    s32p = np.tile(np.round(mono * (2**31 - 1)).astype(np.int32), (2, 1))
    frame = av.AudioFrame.from_ndarray(s32p, format="s32p", layout="stereo")
    assert np.allclose(to_mono(frame), mono, atol=1e-6)
    u8 = np.repeat(np.round(mono * 127 + 128).astype(np.uint8), 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(u8, format="u8", layout="stereo")
    assert np.allclose(to_mono(frame), mono, atol=0.01)


async def test_audio_receiver_ring_buffer_peak_and_onset():
    # 3 s of 20 ms frames: 1 s silence, then a 700 Hz tone.
    signal = np.concatenate([np.zeros(48000), 0.3 * _sine(700.0, 2.0)])
    frames = [_audio_frame(chunk) for chunk in np.split(signal, 150)]
    receiver = AudioReceiver(ScriptedTrack("audio", frames), buffer_seconds=2.0)
    await receiver.run()
    assert receiver.ended and receiver.error is None
    assert receiver.frames == 150
    assert receiver.received_ms == pytest.approx(3000.0)
    assert receiver.samples().size == 96000
    assert np.allclose(receiver.samples(), signal[-96000:], atol=1e-4)
    assert np.allclose(receiver.samples(0.5), signal[-24000:], atol=1e-4)
    assert receiver.peak_hz() == pytest.approx(700.0, abs=0.5)
    assert receiver.rms() == pytest.approx(0.3 / math.sqrt(2), rel=0.01)
    assert receiver.onset_at is not None

    # The onset is placed at the loud sample's offset within its frame.
    late = np.zeros(960)
    late[480:] = 0.5
    receiver = AudioReceiver(
        ScriptedTrack("audio", [_audio_frame(np.zeros(960)), _audio_frame(late)])
    )
    receiver.handle = _stamped(receiver.handle, [100.0, 200.0])  # type: ignore[method-assign]
    await receiver.run()
    assert receiver.onset_at == pytest.approx(200.0 + 0.01)
    receiver.reset_onset(threshold=0.9)
    assert receiver.onset_at is None and receiver.onset_threshold == 0.9
    assert AudioReceiver(ScriptedTrack("audio", [])).peak_hz() is None


def _stamped(handle: Callable[[av.frame.Frame, float], None], stamps: Iterable[float]):
    it = iter(stamps)
    return lambda frame, _at: handle(frame, next(it))


async def test_video_receiver_counts_numbers_decreases_and_skips():
    pattern = PatternVideoTrack(320, 240)
    numbers = [5, 6, 7, 9, 8, 10]
    frames = [pattern.make_frame(n) for n in numbers]
    # Unreadable: a black frame (av.VideoFrame(w, h) alone is uninitialised memory, which once
    # read as a number and failed this test in CI).
    black = av.VideoFrame.from_ndarray(np.zeros((240 * 3 // 2, 320), np.uint8), format="yuv420p")
    frames.insert(2, black)
    sent_at = {n: 1.0 for n in numbers}
    receiver = VideoReceiver(ScriptedTrack("video", frames), sent_at=sent_at)
    receiver.start()
    await asyncio.wait_for(receiver.wait_finished(), 10)
    assert receiver.ended and not receiver.running and receiver.error is None
    assert receiver.frames == 7 and receiver.numbered == 6
    assert (receiver.first_number, receiver.last_number) == (5, 10)
    assert receiver.decreases == 1 and receiver.skipped == 2
    assert (receiver.width, receiver.height) == (320, 240)
    assert receiver.latest_frame is frames[-1]
    assert len(receiver.latencies) == 6 and min(receiver.latencies) > 0
    assert receiver.decode_rate == pytest.approx(6 / 7)


async def test_stop_cancels_a_receiver_waiting_on_a_live_track():
    pattern = PatternVideoTrack(176, 96)
    receiver = VideoReceiver(ScriptedTrack("video", [pattern.make_frame(0)], end=False))
    task = receiver.start()
    assert receiver.start() is task
    await asyncio.sleep(0.05)
    assert receiver.frames == 1 and receiver.running
    await receiver.stop()
    assert task.cancelled() and not receiver.ended and receiver.error is None
    await receiver.stop()  # again: harmless


async def test_a_failing_handler_is_recorded_not_lost(caplog):
    class Broken(TrackConsumer):
        def handle(self, frame, received_at):
            raise RuntimeError("boom")

    consumer = Broken(ScriptedTrack("video", [av.VideoFrame(16, 16, "yuv420p")]))
    consumer.start()
    with caplog.at_level(logging.ERROR, logger="gui.media.analysis"):
        await consumer.wait_finished()
    assert isinstance(consumer.error, RuntimeError)
    assert "stopped by an error" in caplog.text


# ---------------------------------------------------------------------------------------------
# Real aiortc calls over loopback
# ---------------------------------------------------------------------------------------------

VP8_ONLY = [
    codec
    for codec in RTCRtpSender.getCapabilities("video").codecs
    if codec.mimeType in ("video/VP8", "video/rtx")
]


def _peer() -> RTCPeerConnection:
    # An explicit empty server list: aiortc would otherwise ask a public STUN server.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def _send(pc: RTCPeerConnection, *tracks: MediaStreamTrack) -> None:
    for track in tracks:
        sender = pc.addTrack(track)
        if track.kind == "video":
            transceiver = next(t for t in pc.getTransceivers() if t.sender is sender)
            transceiver.setCodecPreferences(VP8_ONLY)


def _receive(
    pc: RTCPeerConnection, sent_at: dict[int, float] | None = None
) -> dict[str, VideoReceiver | AudioReceiver]:
    receivers: dict[str, VideoReceiver | AudioReceiver] = {}

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            receivers["video"] = VideoReceiver(track, sent_at=sent_at)
        else:
            receivers["audio"] = AudioReceiver(track)
        receivers[track.kind].start()

    return receivers


async def _negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    """Offer/answer handed over directly; no trickle needed (aiortc gathers before returning)."""
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def _assert_vp8_only(pc: RTCPeerConnection) -> None:
    video = pc.remoteDescription.sdp.split("m=video")[1].split("m=audio")[0]
    assert "VP8/90000" in video and "H264" not in video


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _flowing(receivers: dict[str, VideoReceiver | AudioReceiver]) -> bool:
    return all(receivers.get(k) is not None and receivers[k].frames for k in ("video", "audio"))


def _carried(
    receivers: dict[str, VideoReceiver | AudioReceiver],
    seconds: float,
    frames_before: int = 0,
    ms_before: float = 0,
) -> bool:
    """At least half of ``seconds`` of 30 frames/s video and of audio came since the counts
    given: what a flowing pipeline carries, however long a loaded machine takes for it."""
    video, audio = receivers["video"], receivers["audio"]
    assert isinstance(video, VideoReceiver) and isinstance(audio, AudioReceiver)
    return (
        video.frames - frames_before >= 0.5 * 30 * seconds + 1
        and audio.received_ms - ms_before >= 0.5 * 1000 * seconds
    )


async def _assert_nothing_left(threads_before: set[threading.Thread]) -> None:
    """No task but the test's, and no thread beyond those that existed before the test."""
    current = asyncio.current_task()
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 10  # a poll: a hang, not a loaded machine's pace
    while (left := {t for t in asyncio.all_tasks() if t is not current}) and (
        time.monotonic() < deadline
    ):
        await asyncio.sleep(0.05)
    assert not left, left
    # aiortc encodes in the loop's default executor: idle workers are not leaks, but they must
    # go away when the executor shuts down (which also proves no encoder job is still running).
    await loop.shutdown_default_executor()
    while (extra := set(threading.enumerate()) - threads_before) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not extra, extra


@pytest.fixture
def no_asyncio_errors(caplog):
    """Fail on asyncio's "Task was destroyed but it is pending" and similar loop errors."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    yield
    gc.collect()
    errors = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def _check_video(receiver: VideoReceiver, size: tuple[int, int], seconds: float) -> None:
    """Video flows: at least half of 30 frames/s (the rate itself is bench/calls.py's)."""
    assert (receiver.width, receiver.height) == size
    assert receiver.frames >= 0.5 * 30 * seconds
    assert receiver.decode_rate > 0.9, receiver.decode_rate
    assert receiver.decreases == 0
    assert receiver.last_number is not None and receiver.first_number is not None
    assert receiver.last_number - receiver.first_number >= 0.5 * 30 * seconds
    assert receiver.error is None


@pytest.mark.parametrize("frequency", [440.0, 1000.0])
async def test_pattern_and_tone_one_way(frequency, no_asyncio_errors):
    threads_before = set(threading.enumerate())
    caller, callee = _peer(), _peer()
    video, tone = PatternVideoTrack(), ToneAudioTrack(frequency=frequency)
    _send(caller, video, tone)
    receivers = _receive(callee, sent_at=video.sent_at)
    await _negotiate(caller, callee)
    _assert_vp8_only(caller)
    await _until(lambda: _flowing(receivers), FLOWS_WITHIN_S, "first frames")

    video_rx = receivers["video"]
    audio_rx = receivers["audio"]
    assert isinstance(video_rx, VideoReceiver) and isinstance(audio_rx, AudioReceiver)
    window = 2.5
    start, ms_before, frames_before = time.monotonic(), audio_rx.received_ms, video_rx.frames
    await _until(lambda: _carried(receivers, window, frames_before, ms_before), 30, "2.5 s more")
    elapsed = time.monotonic() - start

    _check_video(video_rx, (640, 480), window)
    # Figures (frames/s, latency) are bench/calls.py's; these bounds catch a stalled, a
    # runaway or an ever-growing pipeline, not a slow machine: one short of a core (load 20)
    # delays frames by a second or two while it is.
    assert 0 < statistics.median(video_rx.latencies) < 5.0
    assert audio_rx.received_ms - ms_before < 1000 * (elapsed + 1)  # not faster than sent
    assert audio_rx.peak_hz(1.0) == pytest.approx(frequency, abs=5.0)

    # Hang up first: the remote tracks end, and the receivers finish on their own.
    await caller.close()
    await callee.close()
    for receiver in (video_rx, audio_rx):
        await asyncio.wait_for(receiver.wait_finished(), 10)
        assert receiver.ended and receiver.error is None
    video.stop()
    tone.stop()
    await _assert_nothing_left(threads_before)


async def test_pattern_and_tone_both_ways(no_asyncio_errors):
    threads_before = set(threading.enumerate())
    alice, bob = _peer(), _peer()
    alice_video, alice_tone = PatternVideoTrack(640, 480), ToneAudioTrack(frequency=440.0)
    bob_video, bob_tone = PatternVideoTrack(320, 240), ToneAudioTrack(frequency=1000.0)
    at_alice = _receive(alice, sent_at=bob_video.sent_at)
    at_bob = _receive(bob, sent_at=alice_video.sent_at)
    _send(alice, alice_video, alice_tone)
    await alice.setLocalDescription(await alice.createOffer())
    await bob.setRemoteDescription(alice.localDescription)
    _send(bob, bob_video, bob_tone)  # answerer's tracks join the offered transceivers
    await bob.setLocalDescription(await bob.createAnswer())
    await alice.setRemoteDescription(bob.localDescription)
    _assert_vp8_only(alice)
    await _until(
        lambda: _flowing(at_alice) and _flowing(at_bob), FLOWS_WITHIN_S, "first frames both ways"
    )

    window = 2.5
    await _until(
        lambda: _carried(at_alice, window) and _carried(at_bob, window), 30, "2.5 s both ways"
    )
    for receivers, size, frequency in [(at_bob, (640, 480), 440.0), (at_alice, (320, 240), 1000.0)]:
        video_rx, audio_rx = receivers["video"], receivers["audio"]
        assert isinstance(video_rx, VideoReceiver) and isinstance(audio_rx, AudioReceiver)
        _check_video(video_rx, size, window)
        assert audio_rx.peak_hz(1.0) == pytest.approx(frequency, abs=5.0)

    # Stop the receivers while the tracks are live (cancellation path), then hang up.
    for receiver in (*at_alice.values(), *at_bob.values()):
        await receiver.stop()
        assert not receiver.running and receiver.error is None
    await alice.close()
    await bob.close()
    for track in (alice_video, alice_tone, bob_video, bob_tone):
        track.stop()
    await _assert_nothing_left(threads_before)


async def test_audio_onset_latency(no_asyncio_errors):
    threads_before = set(threading.enumerate())
    caller, callee = _peer(), _peer()
    tone = ToneAudioTrack(frequency=1000.0)
    tone.muted = True
    caller.addTrack(tone)
    receivers = _receive(callee)
    await _negotiate(caller, callee)
    await _until(
        lambda: "audio" in receivers and receivers["audio"].frames > 10, FLOWS_WITHIN_S, "audio"
    )
    audio_rx = receivers["audio"]
    assert isinstance(audio_rx, AudioReceiver)
    assert audio_rx.onset_at is None and audio_rx.rms() < 0.01

    tone.muted = False
    await _until(lambda: audio_rx.onset_at is not None, 10, "the onset")
    assert audio_rx.onset_at is not None and tone.sound_started_at is not None
    latency = audio_rx.onset_at - tone.sound_started_at
    print(f"audio onset latency: {latency * 1000:.0f} ms")
    # The latency itself is a figure of bench/calls.py (about 0.05 s). A loaded machine adds
    # the time the process waits for a core (over a second at load 20): this catches a
    # broken onset (before the sound, or stuck behind a backlog).
    assert 0 < latency < 5.0

    await caller.close()
    await callee.close()
    await asyncio.wait_for(audio_rx.wait_finished(), 10)
    tone.stop()
    await _assert_nothing_left(threads_before)
