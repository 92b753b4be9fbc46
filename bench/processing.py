"""The microphone's audio processing (gui/media/processing.py): what it removes, what it costs.

Two parts, each repeated (``rounds``) and reported as min / median / max:

1. **Offline**, on the deterministic signals of :mod:`tests.media.signals` (a far-end voice
   through a simulated room: 40 ms delay, 150 ms decaying tail, -6 dB; a near-end voice; a
   fan), carried 20 ms at a time as in a call, a different far-end voice each round:

   * ERLE after 2 s: the echo canceller alone (the high-pass filter before it), and with
     noise suppression too; on a steady tone, AEC3 alone and with the tone stage;
   * double talk: how much of the near-end voice is lost while both talk;
   * noise suppression: SNR gained on speech plus fan noise, and the speech's energy kept
     (Hagerman's phase inversion separates them after processing);
   * CPU: process time of the whole chain (all four parts, both directions) per second of
     audio, in % of one core; wall time per 20 ms frame;
   * algorithmic delay: how far the output lags the input (cross-correlation), per part.

2. **Live**, two aiortc peer connections in this process (bare aiortc, no signaling), audio
   only, the sender's tone either sent as it is (the baseline) or through the processing:
   the tone's onset made to decoded on the other side (median of several), and the CPU of
   the whole call (both ends) over a window. The difference is what the processing adds.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import statistics
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from bench import Figure, Goal, percentile
from bench.calls import audio_latency
from gui.media.processing import AudioProcessor, ProcessedAudioTrack, ProcessingOptions
from gui.media.tone import ToneAudioTrack
from tests.media.loopback import Receiver, loopback
from tests.media.signals import (
    RATE,
    db,
    echo_of,
    erle_db,
    fan,
    frame_of,
    kept_db,
    lag_of,
    power,
    room,
    run_processor,
    speech,
)

BENCH = "processing"
SECONDS = 10
ALL = ProcessingOptions()
AEC = ProcessingOptions(True, False, True, False)
AEC_NS = ProcessingOptions(True, True, True, False)
NS = ProcessingOptions(False, True, True, False)


# Offline ---------------------------------------------------------------------------------


def _echo_round(seed: int) -> dict[str, float]:
    far = speech(SECONDS, seed, pitch=(160, 240))
    echo = echo_of(far, room())
    noise = np.random.default_rng(seed + 100).standard_normal(far.size) * 10 ** (-65 / 20)
    near = speech(SECONDS, seed + 10, pitch=(90, 130), level_db=-26)
    near[: 4 * RATE] = 0
    both = slice(4 * RATE, SECONDS * RATE - 960)
    out: dict[str, float] = {}
    for name, options in (("aec", AEC), ("aec_ns", AEC_NS)):
        residual = run_processor(AudioProcessor(options), echo + noise, far)
        out[f"erle_{name}"] = erle_db(echo, residual, 2 * RATE)
        mixed = run_processor(AudioProcessor(options), echo + near + noise, far)
        out[f"double_talk_{name}"] = -kept_db(mixed[both.start :], near[both])
    return out


def _tone_round(seed: int) -> dict[str, float]:
    """A steady tone (a ringback, a held note) from the far end, as a codec delivers it:
    ERLE after 2 s with AEC3 alone and with the tone stage before it."""
    rng = np.random.default_rng(seed)
    t = np.arange(SECONDS * RATE) / RATE
    frequency = float(rng.uniform(300, 3000))
    far = 0.3 * np.sin(2 * np.pi * frequency * t) + rng.standard_normal(t.size) * 0.002
    echo = echo_of(far, room(delay_ms=float(rng.uniform(20, 200)), gain_db=-3, seed=seed))
    out = {}
    for name, stage in (("tone_aec3", False), ("tone", True)):
        processor = AudioProcessor(AEC)
        if not stage:
            processor.tones = None
        out[name] = erle_db(echo, run_processor(processor, echo, far), 2 * RATE)
    return out


def _noise_round(seed: int) -> dict[str, float]:
    voice = speech(SECONDS, seed + 20, pitch=(100, 150), level_db=-26)
    noise = fan(SECONDS, seed + 30, level_db=-32)
    plus = run_processor(AudioProcessor(NS), voice + noise)
    minus = run_processor(AudioProcessor(NS), voice - noise)
    settled = slice(2 * RATE, plus.size)
    voice_out, noise_out = (plus + minus)[settled] / 2, (plus - minus)[settled] / 2
    before = db(power(voice[settled]) / power(noise[settled]))
    return {
        "snr_gain": db(power(voice_out) / power(noise_out)) - before,
        "speech_kept": db(power(voice_out) / power(voice[settled])),
    }


#: Touched between frames by the cold-cache cost round: more than this machine's caches.
_FLUSH = np.ones(8 << 20, np.uint8)


def _cost_round(
    seed: int, through_binding: bool = False, cold: bool = False
) -> dict[str, float | list[float]]:
    """The whole chain on a call's worth of audio: CPU per second, wall time per frame (the
    frames are made beforehand). ``through_binding``: the APM through the binding's own
    calls rather than gui/media/apm.py's (what it saves). ``cold``: 8 MB are read between
    frames (not counted), so that each frame finds the caches as a call leaves them, after
    the codec, the network and the rest of the app ran."""
    far = speech(SECONDS, seed, pitch=(160, 240))
    near = speech(SECONDS, seed + 10, pitch=(90, 130), level_db=-26)
    microphone = echo_of(far, room()) + near
    starts = range(0, microphone.size - 959, 960)
    played = [(far[s : s + 960] * 32767).astype(np.int16).reshape(-1, 1) for s in starts]
    captured = [frame_of(microphone[s : s + 960], s) for s in starts]
    processor = AudioProcessor(ALL)
    if through_binding and processor._apm is not None:
        processor._apm._call = None
    frames_ms = []
    cpu = 0.0
    for far_block, frame in zip(played, captured, strict=True):
        if cold:
            _FLUSH.sum()
        began, began_cpu = time.perf_counter(), time.process_time()
        processor.played(far_block, RATE, 0.0)
        processor.process(frame)
        cpu += time.process_time() - began_cpu
        frames_ms.append(1000 * (time.perf_counter() - began))
    return {"cpu": 100 * cpu / SECONDS, "frame_ms": frames_ms}


def _delays() -> dict[str, float]:
    """How many ms the output lags the input, per part (and for all four)."""
    voice = speech(4, 31)
    parts = {
        "hpf": ProcessingOptions(False, False, True, False),
        "aec": ProcessingOptions(True, False, False, False),
        "ns": ProcessingOptions(False, True, False, False),
        "all": ALL,
    }
    out = {}
    for name, options in parts.items():
        far = np.zeros_like(voice) if options.echo_cancellation else None
        processed = run_processor(AudioProcessor(options), voice, far)
        out[name] = 1000 * lag_of(processed[RATE:], voice[RATE : processed.size]) / RATE
    return out


def _delays_by_rate() -> dict[int, dict[str, float]]:
    """The APM's own delay (ms) at 16, 32 and 48 kHz, echo canceller and noise suppressor
    each alone and together: straight through LiveKit's module, 10 ms at a time, to see
    whether a lower rate (fewer bands to split) would delay less."""
    from livekit import rtc

    out: dict[int, dict[str, float]] = {}
    voice = speech(4, 31)
    for rate in (16000, 32000, 48000):
        size = rate // 100
        count = voice.size * rate // RATE
        # Band-limited to the rate's Nyquist frequency by cutting the spectrum.
        signal = np.fft.irfft(np.fft.rfft(voice)[: count // 2 + 1], count) * count / voice.size
        pcm = np.clip(signal * 32767, -32768, 32767).astype(np.int16)
        out[rate] = {}
        for name, (echo, noise) in {"aec": (True, False), "ns": (False, True),
                                    "both": (True, True)}.items():  # fmt: skip
            apm = rtc.AudioProcessingModule(echo_cancellation=echo, noise_suppression=noise)
            buffer, far = bytearray(2 * size), bytearray(2 * size)
            view = np.frombuffer(buffer, np.int16)
            frame, far_frame = (
                rtc.AudioFrame(buffer, rate, 1, size),
                rtc.AudioFrame(far, rate, 1, size),
            )
            chunks = []
            for start in range(0, pcm.size - size + 1, size):
                if echo:
                    apm.process_reverse_stream(far_frame)
                view[:] = pcm[start : start + size]
                apm.process_stream(frame)
                chunks.append(view.astype(np.float64) / 32767)
            processed = np.concatenate(chunks)
            lag = lag_of(processed[rate:], signal[rate : processed.size], most=rate // 10)
            out[rate][name] = 1000 * lag / rate
    return out


# Live ------------------------------------------------------------------------------------


class _TimedProcessor(AudioProcessor):
    """The processing as a call runs it, counting the CPU time spent in it (this thread's)."""

    cpu_s = 0.0

    def process(self, frame: av.AudioFrame, capture_ms: float = 0.0) -> av.AudioFrame | None:
        began = time.thread_time()
        try:
            return super().process(frame, capture_ms)
        finally:
            self.cpu_s += time.thread_time() - began

    def played(self, samples: np.ndarray, rate: int, ahead_ms: float) -> None:
        began = time.thread_time()
        super().played(samples, rate, ahead_ms)
        self.cpu_s += time.thread_time() - began


class _FarEnd:
    """The far-end half of the processing's work in a call: for each 20 ms that arrives, the
    echo canceller is handed 20 ms of what a speaker would play: a voice (not the tone that
    arrives, which is this side's own and would be cancelled) while ``talking``, else
    silence (while the tone's onsets are timed: a far end that talks over the tone makes
    the suppressor duck it now and then, which is what it is for, not a delay)."""

    def __init__(self, processor: AudioProcessor, receiver: Receiver) -> None:
        self.talking = True
        self._processor = processor
        self._voice = (speech(SECONDS, 5, pitch=(160, 240)) * 32767).astype(np.int16)
        self._position = 0
        self._handle = receiver.handle
        receiver.handle = self._handle_and_play  # type: ignore[method-assign]

    def _handle_and_play(self, frame: av.frame.Frame, received_at: float) -> None:
        self._handle(frame, received_at)
        assert isinstance(frame, av.AudioFrame)
        if self._position + frame.samples > self._voice.size:
            self._position = 0
        chunk = self._voice[self._position : self._position + frame.samples]
        self._position += frame.samples
        if not self.talking:
            chunk = np.zeros_like(chunk)
        self._processor.played(chunk.reshape(-1, 1), RATE, 0.0)


@dataclasses.dataclass
class _LiveRun:
    """One live call: tone onsets made to decoded (s), CPU of the whole call and of the
    processing stage (process and played) over the window, in % of one core."""

    delays: list[float]
    cpu: float
    stage_cpu: float
    #: Onsets never heard within 3 s.
    unheard: int = 0


async def _live_call(options: ProcessingOptions | None, onsets: int, window_s: float) -> _LiveRun:
    """One audio-only loopback call, the tone bare (``options`` None) or processed."""
    tone = ToneAudioTrack(1000)
    processor = _TimedProcessor(options) if options is not None else None
    track: MediaStreamTrack = tone if processor is None else ProcessedAudioTrack(tone, processor)
    far_ends: list[_FarEnd] = []

    def hook(receiver: Receiver) -> None:
        if processor is not None:
            far_ends.append(_FarEnd(processor, receiver))

    try:
        async with loopback(track, on_receiver=hook) as call:
            await _wait(lambda: call.audio is not None and call.audio.received_ms > 1000, 15)
            receiver = call.audio
            assert receiver is not None
            stage = processor.cpu_s if processor is not None else 0.0
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.sleep(window_s)
            elapsed = time.monotonic() - wall
            cpu_percent = 100 * (time.process_time() - cpu) / elapsed
            stage_percent = 0.0
            if processor is not None:
                stage_percent = 100 * (processor.cpu_s - stage) / elapsed
            for far_end in far_ends:
                far_end.talking = False
            delays, unheard = [], 0
            for _ in range(onsets):
                try:
                    delay = await audio_latency(tone, receiver)
                except TimeoutError:  # counted and reported, not taken as a delay
                    unheard += 1
                    continue
                if delay is not None:
                    delays.append(delay)
            return _LiveRun(delays, cpu_percent, stage_percent, unheard)
    finally:
        track.stop()


async def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the loopback call's audio never came")
        await asyncio.sleep(0.05)


#: The live calls compared, by name: their label and processing. The tone as it is (first:
#: the others are compared with it), through all four parts, and through all but the noise
#: suppressor (whose overlap-add is 6 of the 15 ms the processing delays).
LIVE: dict[str, tuple[str, ProcessingOptions | None]] = {
    "bare": ("bare aiortc", None),
    "processed": ("processed", ALL),
    "no_ns": ("processed, noise suppression off", ProcessingOptions(True, False, True, True)),
}


async def _live(rounds: int, onsets: int, window_s: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(rounds):  # interleaved, so that the machine's load hits all alike
        for name, (_, options) in LIVE.items():
            run = await _live_call(options, onsets, window_s)
            out[f"{name}_ms"] += [1000 * d for d in run.delays]
            out[f"{name}_cpu"].append(run.cpu)
            out[f"{name}_stage_cpu"].append(run.stage_cpu)
            out[f"{name}_unheard"].append(run.unheard)
    return out


# Figures ---------------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    return f"min {min(values):.1f}, max {max(values):.1f}"


def run(quick: bool) -> list[Figure]:
    """Measure (see the module) and return the figures."""
    rounds = 3 if quick else 7
    echo = [_echo_round(seed) for seed in range(1, rounds + 1)]
    noise = [_noise_round(seed) for seed in range(1, rounds + 1)]
    tones = [_tone_round(seed) for seed in range(1, rounds + 1)]
    costs, binding_cpu, cold_cpu = [], [], []
    for seed in range(1, rounds + 1):  # interleaved
        costs.append(_cost_round(seed))
        binding_cpu.append(float(_cost_round(seed, through_binding=True)["cpu"]))  # type: ignore[arg-type]
        cold_cpu.append(float(_cost_round(seed, cold=True)["cpu"]))  # type: ignore[arg-type]
    delays = _delays()
    by_rate = _delays_by_rate()
    live = asyncio.run(_live(2 if quick else 5, 3 if quick else 5, 3.0 if quick else 10.0))

    def series(rows: list[dict[str, float]], key: str) -> list[float]:
        return [row[key] for row in rows]

    cpu = [float(c["cpu"]) for c in costs]  # type: ignore[arg-type]
    frame_ms = [ms for c in costs for ms in c["frame_ms"]]  # type: ignore[union-attr]
    figures = []
    for key, label, goal in (
        ("erle_aec", "ERLE after 2 s, echo canceller", Goal.at_least(25)),
        ("erle_aec_ns", "ERLE after 2 s, echo canceller + noise suppression", None),
        ("double_talk_aec", "near end lost in double talk, echo canceller", Goal.at_most(6)),
        ("double_talk_aec_ns", "near end lost in double talk, + noise suppression", None),
    ):
        values = series(echo, key)
        unit = "dB"
        figures.append(
            Figure(BENCH, f"{label}, median ({_spread(values)})", statistics.median(values),
                   unit, goal)
        )  # fmt: skip
    for key, label, goal in (
        ("tone_aec3", "ERLE on a steady tone (300-3000 Hz), AEC3 alone", None),
        ("tone", "ERLE on a steady tone, with the tone stage", Goal.at_least(25)),
    ):
        values = series(tones, key)
        figures.append(
            Figure(BENCH, f"{label}, median ({_spread(values)})", statistics.median(values),
                   "dB", goal)
        )  # fmt: skip
    for key, label, goal in (
        ("snr_gain", "noise suppression: SNR gained on speech + fan", Goal.at_least(10)),
        ("speech_kept", "noise suppression: speech energy kept", None),
    ):
        values = series(noise, key)
        figures.append(
            Figure(BENCH, f"{label}, median ({_spread(values)})", statistics.median(values),
                   "dB", goal)
        )  # fmt: skip
    figures += [
        Figure(BENCH, f"CPU of the processing per call, median ({_spread(cpu)})",
               statistics.median(cpu), "% of a core", Goal.at_most(3)),
        Figure(BENCH, f"the same, the APM through the binding's own calls, median "
               f"({_spread(binding_cpu)})", statistics.median(binding_cpu), "% of a core"),
        Figure(BENCH, f"the same, caches flushed between frames as in a call, median "
               f"({_spread(cold_cpu)})", statistics.median(cold_cpu), "% of a core",
               Goal.at_most(3)),
        Figure(BENCH, "wall time per 20 ms frame (both directions), median",
               statistics.median(frame_ms), "ms"),
        Figure(BENCH, "wall time per 20 ms frame, p99", percentile(frame_ms, 99), "ms"),
    ]  # fmt: skip
    for name, label in (
        ("hpf", "high-pass filter (the band split)"),
        ("aec", "echo canceller"),
        ("ns", "noise suppression"),
        ("all", "all four"),
    ):
        goal = Goal.at_most(10) if name == "all" else None
        figures.append(Figure(BENCH, f"algorithmic delay, {label}", delays[name], "ms", goal))
    for rate, parts in by_rate.items():
        figures.append(
            Figure(BENCH, f"algorithmic delay at {rate // 1000} kHz, echo canceller / noise "
                   f"suppression: {parts['aec']:.2f} / {parts['ns']:.2f}; both",
                   parts["both"], "ms")
        )  # fmt: skip
    bare = live["bare_ms"]
    if bare:
        figures.append(
            Figure(BENCH, f"live: tone onset to decoded, bare aiortc, median ({_spread(bare)})",
                   statistics.median(bare), "ms")
        )  # fmt: skip
    for name, (label, _) in LIVE.items():
        onset_ms = live[f"{name}_ms"]
        if name == "bare" or not (bare and onset_ms):
            continue
        added = statistics.median(onset_ms) - statistics.median(bare)
        figures += [
            Figure(BENCH, f"live: tone onset to decoded, {label}, median ({_spread(onset_ms)})",
                   statistics.median(onset_ms), "ms"),
            Figure(BENCH, f"live: latency added, {label} (difference of medians)", added, "ms",
                   Goal.at_most(10)),
        ]  # fmt: skip
    for name, (label, _) in LIVE.items():
        figures.append(
            Figure(BENCH, f"live: tone onsets not heard within 3 s, {label}",
                   sum(live[f"{name}_unheard"]), "onsets")
        )  # fmt: skip
    for name, (label, _) in LIVE.items():
        cpu = live[f"{name}_cpu"]
        figures.append(
            Figure(BENCH, f"live: CPU of an audio call (both ends), {label}, median "
                   f"({_spread(cpu)})", statistics.median(cpu), "% of a core")
        )  # fmt: skip
    stage = live["processed_stage_cpu"]
    added_cpu = [p - b for p, b in zip(live["processed_cpu"], live["bare_cpu"], strict=True)]
    figures += [
        Figure(BENCH, f"live: CPU inside the processing stage (both directions), median "
               f"({_spread(stage)})", statistics.median(stage), "% of a core", Goal.at_most(3)),
        Figure(BENCH, f"live: CPU added to the call, processed minus bare round by round, "
               f"median ({_spread(added_cpu)})", statistics.median(added_cpu), "% of a core",
               Goal.at_most(3)),
    ]  # fmt: skip
    # Plain floats: numpy's would make the goals' verdicts numpy booleans, which JSON refuses.
    return [dataclasses.replace(figure, value=float(figure.value)) for figure in figures]
