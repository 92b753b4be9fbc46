"""Does the microphone lose audio? Samples captured against the wall clock, per Qt period.

Issue 11 wants the microphone read in 10 ms periods when the audio processing is on (as
Chromium does). Qt 6.12's PulseAudio input caps the server-side buffer (``maxlength``) at one
period, so a shorter period leaves less room for a late reader. This measures, through
Parley's real :class:`~gui.devices.MicrophoneTrack` on the tests' private PulseAudio
(:mod:`tests.devices.pulse`: a 440 Hz tone), for each period and each load of the event loop:

* **shortfall**: 1 - samples captured / (48 kHz x wall-clock seconds), in percent;
* **gaps**: discontinuities in the captured tone (a pure sine obeys
  x[n] = 2 cos(w) x[n-1] - x[n-2]; a lost block breaks that), per 10 s.

Loads: ``idle`` (the loop only reads), ``busy`` (the loop blocked 20-50 ms every ~100 ms, as a
busy GUI does) and ``stalls`` (the loop blocked 150-250 ms once a second: a slow fsync, a big
repaint). Configurations run interleaved, round after round, so that the machine's load hits
them alike. Prints min / median / max over the rounds, with the load average.

A period of ``0`` means the PulseAudio reader thread (:mod:`gui.devices.pulse_capture`: 10 ms
fragments, a 500 ms server buffer) instead of Qt's input.

``--latency`` (``--method onset``, the default) measures instead the tone switched on to the
first loud frame out of the processing stage (processing off and on, 1024 and 512-frame
periods, the reader), one configuration at a time, interleaved; ``--paired`` opens them all at
once on the same onsets (the processing's own delay onset by onset; not the periods', which one
source then shares).

``--latency --method correlation`` measures the latency the processing adds without a loudness
threshold (which the gain control moves, and which sees onsets only 20 ms frame by 20 ms
frame): the shipped configurations (processing off with the reader's 1024-frame fragments, all
four parts with 10 ms fragments) and, to show what the 10 ms fragments buy, the processing with
1024-frame fragments and no processing with 10 ms ones, all open at once on the same microphone
(so they hear the very same samples, and the machine's load hits them alike), each read by a
task as a sender reads it. Chirps (:func:`tests.media.signals.chirp`) are played into the
source at random moments, its 440 Hz tone muted; a 5 ms ``parec`` of the source is the
reference. Each chirp is found by correlation (:func:`tests.media.signals.find_markers`) in
every stream; the time a stream made it available is the ``recv()`` time of the frame holding
its last sample. Marker by marker: processed minus bare (the latency added), the processing's
own delay in the samples (where the marker lies in the stage's output minus in its input, on
the capture clock), and each path from the source (the capture part). A silent far end is fed
in step, as a call's speaker does (``--no-far-end``: never, which makes AEC3 about 4 ms
shorter).

``python -m bench.microphone_loss [--rounds N] [--seconds S] [--periods 1024,512,0]``
``python -m bench.microphone_loss --latency [--paired] [--rounds N] [--onsets N]``
``python -m bench.microphone_loss --latency --method correlation [--rounds N] [--markers N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gui.media.processing import AudioProcessor, ProcessingOptions, frame_to_mono
from tests.devices.measure import LOUD, count_gaps
from tests.devices.pulse import MIC_FEED, MICROPHONE, MonitorRecorder, PulseServer, start_pulse
from tests.media.signals import chirp, find_markers

RATE = 48000
LOADS = ("idle", "busy", "stalls")


def _spin(seconds: float) -> None:
    """Keep the event loop (and the GIL, as Python code does) busy for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def _load(kind: str, stop: asyncio.Event) -> None:
    """Block the event loop as ``kind`` says until ``stop`` is set."""
    rng = random.Random(11)
    while not stop.is_set():
        if kind == "busy":
            await asyncio.sleep(rng.uniform(0.06, 0.14))
            _spin(rng.uniform(0.02, 0.05))
        elif kind == "stalls":
            await asyncio.sleep(rng.uniform(0.8, 1.2))
            _spin(rng.uniform(0.15, 0.25))
        else:
            await asyncio.sleep(0.1)


async def capture(period: int | None, load: str, seconds: float) -> dict[str, float]:
    """One round: a fresh microphone with ``period`` frames, read for ``seconds`` under ``load``."""
    from gui.devices import MicrophoneTrack
    from gui.media.analysis import to_mono

    reader = period == 0  # the PulseAudio reader thread, 10 ms fragments
    track = MicrophoneTrack(period_frames=512 if reader else period, pulse_reader=reader)
    if reader and track.reader is None:
        raise RuntimeError("the PulseAudio reader did not start")
    stop = asyncio.Event()
    loader: asyncio.Task[None] | None = None
    try:
        for _ in range(25):  # settle: the stream's first blocks come in a burst
            await asyncio.wait_for(track.recv(), 2)
        base, started = track.captured_samples, time.monotonic()
        loader = asyncio.create_task(_load(load, stop))
        chunks = []
        while time.monotonic() - started < seconds:
            chunks.append(to_mono(await asyncio.wait_for(track.recv(), 2)))
        captured, elapsed = track.captured_samples - base, time.monotonic() - started
        dropped = track.dropped_samples
        native = 480 if reader else track.source.nativePeriodFrameCount()
        buffer_frames = RATE // 2 if reader else track.source.bufferFrameCount()
    finally:
        stop.set()
        if loader is not None:
            await loader
        track.stop()
    mono = np.concatenate(chunks)
    return {
        "shortfall_pct": 100 * (1 - captured / (RATE * elapsed)),
        "gaps_per_10s": 10 * count_gaps(mono) / elapsed,
        "dropped_by_us": dropped,
        "native_period": native,
        "buffer_frames": buffer_frames,
    }


#: The latency configurations: (processing on, Qt period; None is Qt's default, 1024 frames).
LATENCY_CONFIGS: dict[str, tuple[bool, int | None]] = {
    "bare, 1024 (processing off, shipped)": (False, None),
    "bare, 512": (False, 512),
    "processed, 1024 (before)": (True, None),
    "processed, 512 (processing on, shipped)": (True, 512),
    "processed, PulseAudio reader, 10 ms": (True, 0),
}


def _loud_listener(times: list[float]) -> Callable[[av.AudioFrame], None]:
    """A frame listener that notes when a loud frame came."""
    from gui.media.analysis import to_mono

    def listener(frame: av.AudioFrame) -> None:
        if float(np.max(np.abs(to_mono(frame)))) > LOUD:
            times.append(time.monotonic())

    return listener


async def onset_delays(
    pulse: PulseServer, onsets: int, configs: dict[str, tuple[bool, int | None]]
) -> dict[str, list[float]]:
    """Per onset and per configuration of ``configs``, all open at once on the same
    microphone: seconds from the tone switched on (``pactl``) to the first loud frame out of
    the processing stage, as a call's microphone track makes it (shipped processing, or none),
    seen by the stage's own task (no reader's pace in it); NaN where an onset was not heard
    within 2 s. Open one configuration at a time to compare periods: PulseAudio sets a
    source's latency for the smallest fragment any of its streams asks, so streams opened
    together all get data at the same pace, whatever their own period."""
    from gui.devices import MicrophoneTrack
    from gui.media.processing import AudioProcessor, ProcessedAudioTrack, ProcessingOptions

    tracks: dict[str, ProcessedAudioTrack] = {}
    loud: dict[str, list[float]] = {}
    for name, (processing, period) in configs.items():
        options = ProcessingOptions() if processing else ProcessingOptions.off()
        microphone = MicrophoneTrack(period_frames=period or 512, pulse_reader=period == 0)
        tracks[name] = ProcessedAudioTrack(microphone, AudioProcessor(options))
        times: list[float] = []
        loud[name] = times
        tracks[name].frame_listeners.append(_loud_listener(times))
    delays: dict[str, list[float]] = {name: [] for name in tracks}
    try:
        await asyncio.sleep(1.0)  # settle; the canceller and gain control find their feet
        for _ in range(onsets):
            pulse.mute_microphone(True)
            await asyncio.sleep(0.4)
            switched = time.monotonic()
            pulse.mute_microphone(False)
            deadline = switched + 2
            while time.monotonic() < deadline and not all(
                any(t > switched for t in times) for times in loud.values()
            ):
                await asyncio.sleep(0.005)
            for name, times in loud.items():
                heard = [t for t in times if t > switched]
                delays[name].append(heard[0] - switched if heard else math.nan)
                times.clear()
            await asyncio.sleep(0.2)
    finally:
        pulse.mute_microphone(False)
        for track in tracks.values():
            track.stop()
    return delays


async def measure_latency(pulse: PulseServer, rounds: int, onsets: int, paired: bool) -> None:
    """Rounds of :func:`onset_delays` (fresh tracks each): each configuration alone, one
    after the other (differences of medians per round), or all at once (``paired``: onset
    by onset, which shows the processing's own delay but not the periods'). Prints min /
    median / max per configuration, and the differences, processed minus bare."""
    delays: dict[str, list[float]] = {name: [] for name in LATENCY_CONFIGS}
    per_round: dict[str, list[float]] = {name: [] for name in LATENCY_CONFIGS}
    loads_seen = []
    for index in range(rounds):
        groups = [LATENCY_CONFIGS] if paired else [{k: v} for k, v in LATENCY_CONFIGS.items()]
        for group in groups:
            for name, values in (await onset_delays(pulse, onsets, group)).items():
                delays[name].extend(values)
                heard = [v for v in values if not math.isnan(v)]
                per_round[name].append(statistics.median(heard) if heard else math.nan)
            loads_seen.append(os.getloadavg()[0])
        print(f"round {index + 1}/{rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    how = "all configurations on the same onsets" if paired else "one configuration at a time"
    print(
        f"microphone tone on to first loud processed frame, {rounds} rounds x {onsets} onsets,"
        f" {how}; load average (1 min) min {min(loads_seen):.1f}"
        f" / median {statistics.median(loads_seen):.1f} / max {max(loads_seen):.1f}"
    )
    for name, values in delays.items():
        heard = [1000 * v for v in values if not math.isnan(v)]
        print("  " + _line(name, heard, f"ms ({len(values) - len(heard)} unheard)"))
    names = list(LATENCY_CONFIGS)
    for processed, bare in ((names[3], names[0]), (names[2], names[0]), (names[3], names[2]),
                            (names[1], names[0]), (names[3], names[1]),
                            (names[4], names[0]), (names[4], names[3])):  # fmt: skip
        source = delays if paired else per_round
        pairs = [
            1000 * (a - b)
            for a, b in zip(source[processed], source[bare], strict=True)
            if not (math.isnan(a) or math.isnan(b))
        ]
        what = "onset by onset" if paired else "medians round by round"
        if pairs:
            print("  " + _line(f"{processed} minus {bare}, {what}", pairs, "ms"))


#: The correlation method's configurations, all open at once on the same source: (processing
#: on, Qt period as a call passes it; the reader's fragment is ``reader_fragment(period)``).
CORRELATION_CONFIGS: dict[str, tuple[bool, int | None]] = {
    "bare (processing off, reader 1024 frames: shipped)": (False, None),
    "processed (all four, reader 10 ms: shipped)": (True, 512),
    "processed, reader 1024 frames": (True, None),
    "bare, reader 10 ms": (False, 512),
}


class _TappedProcessor(AudioProcessor):
    """The processing as a call runs it, noting every frame it is handed (when, its
    timestamp, its mono samples). ``far_end``: a silent far end is played in step, as a
    call's speaker always plays something (AEC3 delays about 4 ms less until it has seen a
    far end at all)."""

    def __init__(self, options: ProcessingOptions, far_end: bool) -> None:
        super().__init__(options)
        self.far_end = far_end
        self.inputs: list[tuple[float, int, np.ndarray]] = []

    def process(self, frame: av.AudioFrame, capture_ms: float = 0.0) -> av.AudioFrame | None:
        self.inputs.append((time.monotonic(), int(frame.pts or 0), frame_to_mono(frame)))
        if self.far_end:
            self.played(np.zeros((frame.samples, 1), np.int16), RATE, 0.0)
        return super().process(frame, capture_ms)


class _Stream:
    """Frames as (arrival time, pts, mono int16 samples), in order: where a marker lies."""

    def __init__(self, frames: list[tuple[float, int, np.ndarray]]) -> None:
        self.samples = (
            np.concatenate([f[2] for f in frames]).astype(np.float64) / 32768
            if frames
            else np.zeros(0)
        )
        self.ends = np.cumsum([f[2].size for f in frames])
        self.arrivals = [f[0] for f in frames]
        self.pts = [f[1] for f in frames]
        #: Frames whose timestamp does not follow on from the one before (drops).
        self.breaks = sum(1 for a, b in itertools.pairwise(frames) if b[1] != a[1] + a[2].size)

    def whole(self, first: int, last: int) -> bool:
        """Whether samples ``first`` to ``last`` of the stream were captured in one piece
        (no frame between them dropped, which would splice the marker)."""
        frames = np.searchsorted(self.ends, [first, last], side="right")
        return all(
            self.pts[k + 1] == self.pts[k] + int(self.ends[k] - (self.ends[k - 1] if k else 0))
            for k in range(int(frames[0]), int(frames[1]))
        )

    def locate(self, index: int) -> tuple[float, int]:
        """Sample ``index`` of the stream: when the frame holding it came, and its position
        on the capture clock (the frame's pts plus the offset in it)."""
        frame = int(np.searchsorted(self.ends, index, side="right"))
        start = int(self.ends[frame - 1]) if frame else 0
        return self.arrivals[frame], self.pts[frame] + index - start


async def _drain(track: MediaStreamTrack, frames: list[tuple[float, int, np.ndarray]]) -> None:
    """Read ``track`` as a sender does, noting when each frame was returned."""
    try:
        while True:
            frame = await track.recv()
            assert isinstance(frame, av.AudioFrame)
            frames.append((time.monotonic(), int(frame.pts or 0), frame_to_mono(frame)))
    except MediaStreamError:
        return


async def marker_round(
    pulse: PulseServer, markers: int, far_end: bool, rng: random.Random
) -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """One round: every configuration of :data:`CORRELATION_CONFIGS` opened at once (in a
    random order) on the microphone, its tone muted; ``markers`` chirps played into the
    source at random moments; a 5 ms ``parec`` of the source as the reference. Per
    configuration, per marker found in all streams (ms): ``path`` (the marker's last sample
    reached the source, to the frame holding it returned by the track's ``recv()``),
    ``capture`` (the same to the frame holding it handed to the processing), ``module`` (where
    the marker lies in the output minus in the input, on the capture clock: the processing's
    own delay) and ``arrival`` (the recv() time, for differences). Also what was missed."""
    from gui.devices import MicrophoneTrack
    from gui.devices.microphone import reader_fragment
    from gui.media.processing import ProcessedAudioTrack

    marker = chirp()
    silence = np.zeros(RATE // 20)
    reference = MonitorRecorder(MICROPHONE)
    tracks: dict[str, ProcessedAudioTrack] = {}
    processors: dict[str, _TappedProcessor] = {}
    outputs: dict[str, list[tuple[float, int, np.ndarray]]] = {}
    drains: list[asyncio.Task[None]] = []
    names = list(CORRELATION_CONFIGS)
    rng.shuffle(names)
    try:
        reference.wait_running()
        for name in names:
            processing, period = CORRELATION_CONFIGS[name]
            microphone = MicrophoneTrack(period_frames=period, pulse_reader=True)
            if microphone.reader is None:
                raise RuntimeError("the PulseAudio reader did not start")
            assert microphone.reader.fragment_frames == reader_fragment(period)
            options = ProcessingOptions() if processing else ProcessingOptions.off()
            processors[name] = _TappedProcessor(options, far_end)
            tracks[name] = ProcessedAudioTrack(microphone, processors[name])
            outputs[name] = []
            drains.append(asyncio.create_task(_drain(tracks[name], outputs[name])))
        await asyncio.sleep(1.5)  # settle: the streams' first burst, the gain control
        for _ in range(markers):
            # A random lead: the sound server mixes the player in from a block boundary,
            # which would put every marker at the same place in the tracks' frames.
            lead = np.zeros(rng.randrange(RATE // 20, RATE // 10))
            sound = np.concatenate([lead, marker, silence])
            player = pulse.play(MIC_FEED, sound, latency_ms=1000 * sound.size // RATE + 50)
            await asyncio.sleep(rng.uniform(0.35, 0.65))
            while player.poll() is None:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
    finally:
        for track in tracks.values():
            track.stop()
        if drains:
            await asyncio.wait(drains, timeout=5)
        reference.close()
    return _analyse(reference, marker, markers, processors, outputs)


def _analyse(
    reference: MonitorRecorder,
    marker: np.ndarray,
    markers: int,
    processors: dict[str, _TappedProcessor],
    outputs: dict[str, list[tuple[float, int, np.ndarray]]],
) -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """The figures of :func:`marker_round` from what it recorded."""
    last = marker.size - 1
    played = [
        reference.arrival_of(index + last)
        for index, _ in find_markers(reference.samples(0), marker, min_score=0.8)
    ]
    streams = {name: (_Stream(outputs[name]), _Stream(processors[name].inputs)) for name in outputs}
    found: dict[str, list[tuple[float, int, float, int]]] = {}
    for name, (out, into) in streams.items():
        found[name] = []
        outs, ins = (
            [
                kind.locate(index + last)
                for index, _ in find_markers(kind.samples, marker)
                if kind.whole(index, index + last)
            ]
            for kind in (out, into)
        )
        # Pair output and input by capture position (output = input + the module's delay).
        for arrival, position in outs:
            match = [h for h in ins if 0 <= position - h[1] < RATE // 10]
            if match:
                found[name].append((arrival, position, match[-1][0], match[-1][1]))
    figures: dict[str, dict[str, list[float]]] = {
        name: {"path": [], "capture": [], "module": [], "arrival": []} for name in outputs
    }
    missed = {"reference": 0, "streams": 0, "breaks": 0}
    missed["breaks"] = sum(out.breaks + into.breaks for out, into in streams.values())
    for at in played:
        # The first copy each stream returned after the source had it (within a second).
        seen = {}
        for name, hits in found.items():
            after = [h for h in hits if at - 0.005 <= h[0] < at + 1.0]
            if after:
                seen[name] = after[0]
        if len(seen) < len(found):
            missed["streams"] += 1
            continue
        for name, (arrival, position, arrival_in, position_in) in seen.items():
            figures[name]["path"].append(1000 * (arrival - at))
            figures[name]["capture"].append(1000 * (arrival_in - at))
            figures[name]["module"].append(1000 * (position - position_in) / RATE)
            figures[name]["arrival"].append(arrival)
    missed["reference"] = markers - len(played)
    return figures, missed


async def measure_correlation(pulse: PulseServer, rounds: int, markers: int, far_end: bool) -> None:
    """Rounds of :func:`marker_round` (fresh tracks each); prints, per configuration, the
    path, capture and module figures over all markers, and the latency the processing adds
    (processed minus bare recv() time, marker by marker, and per-round medians), with the
    load average."""
    rng = random.Random(11)
    names = list(CORRELATION_CONFIGS)
    bare = names[0]
    totals: dict[str, dict[str, list[float]]] = {
        name: {"path": [], "capture": [], "module": []} for name in names
    }
    added: dict[str, list[float]] = {name: [] for name in names[1:]}
    added_rounds: dict[str, list[float]] = {name: [] for name in names[1:]}
    added_means: dict[str, list[float]] = {name: [] for name in names[1:]}
    loads_seen, missed_total, breaks = [], 0, 0
    pulse.mute_microphone(True)  # the markers play on silence
    try:
        for index in range(rounds):
            loads_seen.append(os.getloadavg()[0])
            figures, missed = await marker_round(pulse, markers, far_end, rng)
            missed_total += missed["streams"] + missed["reference"]
            breaks += missed["breaks"]
            for name in names:
                for key in totals[name]:
                    totals[name][key].extend(figures[name][key])
            for name in names[1:]:
                differences = [
                    1000 * (a - b)
                    for a, b in zip(figures[name]["arrival"], figures[bare]["arrival"], strict=True)
                ]
                added[name].extend(differences)
                if differences:
                    added_rounds[name].append(statistics.median(differences))
                    added_means[name].append(statistics.fmean(differences))
            loads_seen.append(os.getloadavg()[0])
            print(
                f"round {index + 1}/{rounds} done, {len(figures[bare]['path'])} markers,"
                f" load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )
    finally:
        pulse.mute_microphone(False)
    count = len(totals[bare]["path"])
    print(
        f"microphone path latency by correlation, {rounds} rounds x {markers} markers"
        f" ({count} found whole in every stream and the reference, {missed_total} not;"
        f" {breaks} breaks in the streams),"
        f" all configurations open at once, far end {'silent' if far_end else 'never fed'};"
        f" load average (1 min) min {min(loads_seen):.1f}"
        f" / median {statistics.median(loads_seen):.1f} / max {max(loads_seen):.1f}"
    )
    if not count:
        return
    for name in names:
        print(f"  {name}")
        for key, what in (("path", "source to recv()"), ("capture", "source to the processing")):
            values = totals[name][key]
            print("    " + _line(what, values, f"ms (mean {statistics.fmean(values):.2f})"))
        print("    " + _line("the processing's delay in the samples", totals[name]["module"], "ms"))
    for name in names[1:]:
        values = added[name]
        print(f"  added: {name} minus {bare}")
        tenths = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
        within = 100 * sum(1 for v in values if v <= 10) / len(values)
        print(
            "    "
            + _line(
                "marker by marker",
                values,
                f"ms (mean {statistics.fmean(values):.2f}, p10 {tenths[0]:.2f},"
                f" p90 {tenths[-1]:.2f}; {within:.0f}% at most 10 ms)",
            )
        )
        print("    " + _line("per-round means", added_means[name], "ms"))
        print("    " + _line("per-round medians", added_rounds[name], "ms"))


def _line(name: str, values: list[float], unit: str) -> str:
    return (
        f"{name}: min {min(values):.2f} / median {statistics.median(values):.2f}"
        f" / max {max(values):.2f} {unit}"
    )


async def measure(periods: list[int | None], rounds: int, seconds: float) -> None:
    """Run the rounds interleaved and print the figures."""
    results: dict[tuple[int | None, str], list[dict[str, float]]] = {}
    loads_seen = []
    for index in range(rounds):
        for load in LOADS:
            for period in periods:
                result = await capture(period, load, seconds)
                results.setdefault((period, load), []).append(result)
                loads_seen.append(os.getloadavg()[0])
        print(f"round {index + 1}/{rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print(
        f"microphone loss, {rounds} rounds x {seconds:g} s per configuration, load average"
        f" (1 min) min {min(loads_seen):.1f} / median {statistics.median(loads_seen):.1f}"
        f" / max {max(loads_seen):.1f}"
    )
    for (period, load), runs in results.items():
        if period == 0:
            label = "PulseAudio reader thread (10 ms fragments, 500 ms server buffer)"
        else:
            label = f"Qt, period {period} (ring buffer {int(runs[0]['buffer_frames'])} frames)"
        label += f", {load}"
        print(f"  {label}")
        print("    " + _line("shortfall", [r["shortfall_pct"] for r in runs], "%"))
        print("    " + _line("gaps", [r["gaps_per_10s"] for r in runs], "per 10 s"))
        if any(r["dropped_by_us"] for r in runs):
            print(
                "    "
                + _line("dropped by our queue", [r["dropped_by_us"] for r in runs], "samples")
            )


def main(argv: list[str] | None = None) -> int:
    """Start the private sound server, then Qt (offscreen), and measure."""
    parser = argparse.ArgumentParser(prog="python -m bench.microphone_loss")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--periods", default="1024,512,0")
    parser.add_argument(
        "--latency", action="store_true", help="measure onset delays instead (--seconds unused)"
    )
    parser.add_argument("--onsets", type=int, default=10)
    parser.add_argument(
        "--method",
        choices=("onset", "correlation"),
        default="onset",
        help="--latency: a tone switched on and a loudness threshold, or chirps located by"
        " correlation in streams opened at once",
    )
    parser.add_argument("--markers", type=int, default=15, help="--method correlation: per round")
    parser.add_argument(
        "--no-far-end",
        action="store_true",
        help="--method correlation: feed the echo canceller no far end at all",
    )
    parser.add_argument(
        "--paired", action="store_true", help="--latency: all configurations at once"
    )
    args = parser.parse_args(argv)
    periods = [int(p) for p in args.periods.split(",")]
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    with tempfile.TemporaryDirectory(prefix="parley-bench-micloss-") as tmp:
        pulse = start_pulse(Path(tmp))  # before Qt Multimedia looks for a sound server
        try:
            from PySide6.QtWidgets import QApplication

            from gui.qt_loop import QtEventLoop

            app = QApplication.instance() or QApplication(["parley-bench"])
            gc.freeze()
            if args.latency and args.method == "correlation":
                work = measure_correlation(pulse, args.rounds, args.markers, not args.no_far_end)
            elif args.latency:
                work = measure_latency(pulse, args.rounds, args.onsets, args.paired)
            else:
                work = measure(list(periods), args.rounds, args.seconds)
            asyncio.run(
                work,
                loop_factory=lambda: QtEventLoop(app),
            )
        finally:
            pulse.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
