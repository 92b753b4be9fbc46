"""Parley's benchmarks: measured figures, each with the goal it is held against.

Run them with ``python -m bench`` (see :mod:`bench.runner`). A benchmark is a
module with a function ``run(quick: bool) -> list[Figure]``, registered in
:data:`BENCHMARKS`; adding one (call set-up, video latency...) means writing
that module and adding one line to the list. Modules are imported only when
their benchmark runs, so a benchmark's heavy dependencies never slow the others.

The figures are measurements, not assertions: the machines these run on are
noisy, and a missed goal does not make the runner fail.
"""

from __future__ import annotations

import importlib
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Comparison = Literal["<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Goal:
    """A target a figure should reach, such as ``< 20`` (ms) or ``>= 5000``."""

    op: Comparison
    threshold: float

    @classmethod
    def below(cls, threshold: float) -> Goal:
        """The value must be less than ``threshold``."""
        return cls("<", threshold)

    @classmethod
    def at_most(cls, threshold: float) -> Goal:
        """The value must be ``threshold`` or less."""
        return cls("<=", threshold)

    @classmethod
    def at_least(cls, threshold: float) -> Goal:
        """The value must be ``threshold`` or more."""
        return cls(">=", threshold)

    def met_by(self, value: float) -> bool:
        """Whether ``value`` reaches the goal (a NaN never does)."""
        if math.isnan(value):
            return False
        match self.op:
            case "<":
                return value < self.threshold
            case "<=":
                return value <= self.threshold
            case ">":
                return value > self.threshold
            case ">=":
                return value >= self.threshold

    def __str__(self) -> str:
        return f"{self.op} {format_value(self.threshold)}"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number: which benchmark, what it is, its value and unit, and its goal."""

    bench: str
    figure: str
    value: float
    unit: str
    goal: Goal | None = None

    @property
    def met(self) -> bool | None:
        """Whether the goal is met; ``None`` for a figure without a goal."""
        return None if self.goal is None else self.goal.met_by(self.value)

    def to_json(self) -> dict[str, object]:
        """The machine-readable form (NaN, for a value that could not be measured, is null)."""
        return {
            "bench": self.bench,
            "figure": self.figure,
            "value": None if math.isnan(self.value) else self.value,
            "unit": self.unit,
            "goal": None if self.goal is None else str(self.goal),
            "met": self.met,
        }


class PartialFailure(Exception):
    """A benchmark failed part-way but measured some figures, which the runner still reports."""

    def __init__(self, figures: Sequence[Figure], errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.figures = list(figures)
        self.errors = list(errors)


BenchFunction = Callable[[bool], list[Figure]]


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A registered benchmark: its name for ``--only``, and where its ``run`` function lives."""

    name: str
    #: ``"module:function"``; the function takes ``quick`` and returns figures.
    target: str
    summary: str

    def load(self) -> BenchFunction:
        """Import the module and return its run function."""
        module_name, _, function_name = self.target.partition(":")
        module = importlib.import_module(module_name)
        function: BenchFunction = getattr(module, function_name or "run")
        return function


#: Every benchmark ``python -m bench`` knows, in the order they run.
#: To add one, write a module with ``run(quick: bool) -> list[Figure]`` and add it here.
BENCHMARKS: list[Benchmark] = [
    Benchmark(
        "server",
        "bench.server:run",
        "signaling server: connections held, call.invite latency, presence fan-out, logins",
    ),
    Benchmark(
        "cluster",
        "bench.cluster:run",
        "3 parley-server instances on PostgreSQL + Redis beside 1: invite latency, 15,000 conns",
    ),
    Benchmark(
        "calls",
        "bench.calls:run",
        "real calls, Parley beside bare aiortc: set-up, video latency, frames/s, CPU, audio",
    ),
    Benchmark("app", "bench.app:run", "the desktop app: launch, memory, render cost, loop lag"),
    Benchmark(
        "screen",
        "bench.screen:run",
        "screen sharing at 1920x1080, 15 fps: sender CPU, frames/s, latency, Share to 1st frame",
    ),
    Benchmark(
        "screen-platforms",
        "bench.screen:run_platforms",
        "screen sharing at 1080p15, Wayland (portal, PipeWire) beside X11: Share to 1st frame, fps",
    ),
    Benchmark(
        "devices",
        "bench.devices:run",
        "microphone and speaker through Qt on PulseAudio: delays, frame timing, glitches",
    ),
    Benchmark(
        "processing",
        "bench.processing:run",
        "the microphone's audio processing: ERLE, double talk, noise, CPU, added latency",
    ),
    Benchmark(
        "processing-chromium",
        "bench.processing_chromium:run",
        "latency the microphone's processing adds: headless Chromium's beside Parley's",
    ),
    Benchmark(
        "processing-chromium-cpu",
        "bench.processing_chromium_cpu:run",
        "CPU the microphone's processing costs: headless Chromium's (on - off) beside Parley's",
    ),
    Benchmark(
        "meetings",
        "bench.meetings:run",
        "meetings of 2-4 parley-cli processes (mesh): first frames, frames/s, CPU, escalation",
    ),
    Benchmark(
        "guest",
        "bench.guest:run",
        "a guest in headless Chromium: link opened -> first remote frame, page weight",
    ),
    Benchmark(
        "network",
        "bench.network:run",
        "calls between two homes behind NATs (lab, TURN): Parley beside Chromium, accept to frame",
    ),
    Benchmark(
        "network-impaired",
        "bench.network_impaired:run",
        "calls between two homes: 5% loss, a 1 Mbit/s cap lifted, a 10 s black hole (fps, freezes)",
    ),
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) of ``values``, interpolated; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Iterable[float], digits: int = 1) -> str:
    """``min X, median Y, max Z`` of ``values`` to ``digits`` decimals; "none" when empty."""
    values = list(values)
    if not values:
        return "none"
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"min {low:.{digits}f}, median {middle:.{digits}f}, max {high:.{digits}f}"


def format_value(value: float) -> str:
    """A number as the table shows it: whole numbers plain, others to four digits."""
    if math.isnan(value):
        return "n/a"
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Figure",
    "Goal",
    "PartialFailure",
    "format_value",
    "percentile",
    "spread",
]
