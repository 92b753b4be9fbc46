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

``--latency`` measures instead the tone switched on to the first loud frame out of the
processing stage (processing off and on, 1024 and 512-frame periods, the reader), one
configuration at a time, interleaved; ``--paired`` opens them all at once on the same onsets
(the processing's own delay onset by onset; not the periods', which one source then shares).

``python -m bench.microphone_loss [--rounds N] [--seconds S] [--periods 1024,512,0]``
``python -m bench.microphone_loss --latency [--paired] [--rounds N] [--onsets N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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

from tests.devices.measure import LOUD, count_gaps
from tests.devices.pulse import PulseServer, start_pulse

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
        "--paired", action="store_true", help="--latency: all configurations at once"
    )
    args = parser.parse_args(argv)
    periods = [int(p) for p in args.periods.split(",")]
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    with tempfile.TemporaryDirectory(prefix="parley-bench-micloss-") as tmp:
        pulse = start_pulse(Path(tmp))  # before Qt Multimedia looks for a sound server
        try:
            import qasync
            from PySide6.QtWidgets import QApplication

            app = QApplication.instance() or QApplication(["parley-bench"])
            gc.freeze()
            work = (
                measure_latency(pulse, args.rounds, args.onsets, args.paired)
                if args.latency
                else measure(list(periods), args.rounds, args.seconds)
            )
            asyncio.run(
                work,
                loop_factory=lambda: qasync.QEventLoop(app),
            )
        finally:
            pulse.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
