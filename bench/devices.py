"""Sound devices through Qt Multimedia: microphone and speaker delays, frame timing, glitches.

The figures the device tests (``tests/devices``) bound only loosely, because on a shared
machine they vary with the load: there a test fails only on a broken pipeline, here the
number is measured and held against the goal the tests once asserted.

It runs on the tests' private PulseAudio (:mod:`tests.devices.pulse`: a null-sink speaker
whose monitor is recorded, a microphone that hears a 440 Hz tone) and measures with the
same functions (:mod:`tests.devices.measure`), in a child process (``python -m
bench.devices measure``): Qt Multimedia picks its sound server once per process, and the
child's Qt (offscreen) is its own. The child prints one JSON line of raw samples.

Figures:

1. **Microphone latency**: the tone switched on in the sound server to the first loud frame
   out of ``MicrophoneTrack.recv()``, median and worst of the rounds.
2. **Microphone frame timing**: 100 frames read as they come; the 95th percentile and the
   longest interval between two (20 ms each, ideally).
3. **Speaker delay**: a frame fed to ``SpeakerSink`` to its sound recorded from the sink's
   monitor (the recorder's own latency included), median and worst.
4. **Speaker steady playback**: the queue on our side (jitter buffer + device buffer) while
   a paced tone plays, median and p95; 1 ms windows of the recording that fall below the
   tone's level (glitches), per second; underruns.
5. **Mouth to ear**: microphone → aiortc (Opus, loopback) → speaker → recording, median.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import Figure, Goal, percentile
from tests.devices.pulse import RECORD_RATE, PulseServer, start_pulse

BENCH = "devices"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run(quick: bool) -> list[Figure]:
    """Measure in a child process (see the module) and turn its samples into figures."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.devices", "measure", *(["--quick"] if quick else [])],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"the devices benchmark failed ({done.returncode}): {tail[0]}")
    return _figures(json.loads(lines[-1]))


def _figures(samples: dict[str, Any]) -> list[Figure]:
    ms = [1000 * s for s in samples["microphone_latency_s"]]
    intervals = samples["microphone_intervals_ms"]
    delay = [1000 * s for s in samples["speaker_delay_s"]]
    queue = samples["speaker_queue_ms"]
    ear = [1000 * s for s in samples["mouth_to_ear_s"]]
    seconds = samples["steady_seconds"]
    rounds = len(ms)
    return [
        Figure(BENCH, f"microphone: tone on to first loud frame, median of {rounds}",
               statistics.median(ms), "ms", Goal.below(150)),
        Figure(BENCH, "microphone: tone on to first loud frame, worst", max(ms), "ms"),
        Figure(BENCH, "microphone: interval between frames read, p95",
               percentile(intervals, 95), "ms"),
        Figure(BENCH, "microphone: interval between frames read, longest",
               max(intervals), "ms", Goal.below(80)),
        Figure(BENCH, f"speaker: frame fed to sound recorded, median of {rounds}",
               statistics.median(delay), "ms", Goal.below(150)),
        Figure(BENCH, "speaker: frame fed to sound recorded, worst", max(delay), "ms"),
        Figure(BENCH, "speaker: queue while playing, median",
               statistics.median(queue), "ms", Goal.below(70)),
        Figure(BENCH, "speaker: queue while playing, p95", percentile(queue, 95), "ms"),
        Figure(BENCH, "speaker: glitched 1 ms windows per second of steady playback",
               samples["glitches"] / seconds, "windows", Goal.at_most(3)),
        Figure(BENCH, f"speaker: underruns in {seconds:g} s of steady playback",
               samples["underruns"], "underruns", Goal.at_most(0)),
        Figure(BENCH, "mouth to ear, microphone to speaker through a loopback call, median",
               statistics.median(ear), "ms", Goal.below(500)),
    ]  # fmt: skip


# The child: Qt, the sound server, the measurements --------------------------------------


async def _microphone(pulse: PulseServer, rounds: int) -> dict[str, list[float]]:
    from gui.devices import MicrophoneTrack
    from tests.devices.measure import microphone_latency, read_frames

    track = MicrophoneTrack()
    try:
        await read_frames(track, 10)  # settle
        _, times = await read_frames(track, 100)
        latencies = [await microphone_latency(pulse, track) for _ in range(rounds)]
    finally:
        pulse.mute_microphone(False)
        track.stop()
    intervals = [1000 * (b - a) for a, b in itertools.pairwise(times)]
    return {"microphone_latency_s": latencies, "microphone_intervals_ms": intervals}


async def _speaker(pulse: PulseServer, rounds: int, seconds: float) -> dict[str, Any]:
    from gui.devices import SpeakerSink
    from tests.devices.measure import Feeder, glitched_windows, recent_queue, speaker_delay

    sink = SpeakerSink()
    feeder = Feeder(sink)
    try:
        await asyncio.sleep(0.5)
        underruns = sink.underruns
        start = pulse.monitor.position
        recorded = await pulse.monitor.wait_for(
            start, round(RECORD_RATE * seconds), timeout=seconds + 5
        )
        queue = recent_queue(sink, seconds)
        underruns = sink.underruns - underruns
        delays = [await speaker_delay(pulse, feeder) for _ in range(rounds)]
    finally:
        await feeder.stop()
        sink.stop()
    return {
        "speaker_delay_s": delays,
        "speaker_queue_ms": queue,
        "glitches": glitched_windows(recorded),
        "underruns": underruns,
        "steady_seconds": seconds,
    }


async def _mouth_to_ear(pulse: PulseServer, rounds: int) -> dict[str, list[float]]:
    from gui.devices import MicrophoneTrack
    from tests.devices.measure import loopback_call, mouth_to_ear_delay
    from tests.waiting import until

    microphone = MicrophoneTrack()
    try:
        async with loopback_call(microphone) as call:
            await until(lambda: call.audio and call.audio.received_ms >= 1000, 15, "call audio")
            delays = [await mouth_to_ear_delay(pulse) for _ in range(rounds)]
    finally:
        pulse.mute_microphone(False)
        microphone.stop()
    return {"mouth_to_ear_s": delays}


async def _measure(pulse: PulseServer, quick: bool) -> dict[str, Any]:
    rounds, seconds = (3, 1.0) if quick else (10, 5.0)
    return {
        **await _microphone(pulse, rounds),
        **await _speaker(pulse, rounds, seconds),
        **await _mouth_to_ear(pulse, rounds),
    }


def _child(quick: bool) -> int:
    """Start the sound server, then Qt (offscreen), measure, print the samples as JSON."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    with tempfile.TemporaryDirectory(prefix="parley-bench-devices-") as tmp:
        pulse = start_pulse(Path(tmp))  # before Qt Multimedia looks for a sound server
        try:
            from PySide6.QtWidgets import QApplication

            from gui.qt_loop import QtEventLoop

            app = QApplication.instance() or QApplication(["parley-bench"])
            gc.freeze()  # as the app does after start-up
            samples = asyncio.run(_measure(pulse, quick), loop_factory=lambda: QtEventLoop(app))
        finally:
            pulse.stop()
    print(json.dumps(samples))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.devices measure [--quick]``: the child's side (see the module)."""
    parser = argparse.ArgumentParser(prog="python -m bench.devices")
    parser.add_argument("role", choices=["measure"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    return _child(args.quick)


if __name__ == "__main__":
    sys.exit(main())
