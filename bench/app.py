"""Benchmarks of the desktop app itself: launch time, memory, render cost, event-loop lag.

Every figure comes from the real app (``gui.app.main.main``, what ``python -m gui`` runs)
in child processes driven by :mod:`bench.app_driver`, with ``QT_QPA_PLATFORM=offscreen``
and their own ``HOME``, ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME`` and ``XDG_RUNTIME_DIR``
(a temporary directory, removed after), so nothing of the user's is read or written.

The figures (goals from the issue):

1. **Launch**: from just before this process starts the child to the main window's first
   frame drawn (the first ``Paint`` event of the window or a widget in it, then the next
   turn of the event loop, by which the whole window is drawn), for a new profile (the
   first launch of the run, on a warm OS file cache: the files are not evicted) and then
   the same profile again (warm, median). Goal: warm under 1.5 s. The warm launches are
   also split: the interpreter's start (to the driver module running), the imports of
   Qt and the app's modules (which the driver does just before calling ``main()``), and
   ``main()`` to the window drawn; and timed to the built-in server being ready.
   **Exit**: from the app being asked to quit (with its built-in server running) to the
   process having exited, median of all.
2. **Memory**: the app process's RSS (``VmRSS``), idle on the home view after
   registering, and during a 1280x720 video call with the call window shown (median of
   samples every 0.25 s over the measurement window; the peak ``VmHWM`` too), in two
   set-ups: (a) the new user's call: the **Echo Test of the app's built-in server**,
   so the server and the echo bot (a second aiortc end decoding and re-encoding) live in
   the app's process and its memory; (b) the app signed in to a **server in another
   process** (:mod:`bench.serverproc`) and calling its Echo Test there: the figure is
   the app alone, one end of a call, as in a call to another person.
3. **Render cost per frame** at 1280x720 and 1920x1080, in a separate process, on
   frames from :meth:`~gui.media.pattern.PatternVideoTrack.make_frame` (p50 and p95
   over a few hundred, every step on each frame in turn): ``to_qvideoframe``;
   ``QVideoFrame.paint`` into a ``QImage`` of 960x540 (the call window's size), of
   240x135 (its self-view) and of the frame's size, each on a fresh frame (Qt caches a
   frame's converted image); and the call window's way, ``VideoView.show_frame`` then a
   synchronous ``repaint()`` of a shown 960x540 view. The baseline, in the same run:
   ``to_ndarray("rgb24")`` alone, and with a ``QImage`` wrapped round it and drawn
   letterboxed into 960x540; and an alternative: PyAV's ``reformat(format="bgra")``
   (a ``Format_RGB32`` ``QImage``) drawn the same way, and scaled by PyAV straight to
   the self-view's 240x135.
4. **Event-loop lag** during each call of 2. over 20 s (8 s with ``--quick``) after a
   2 s warm-up: a 10 ms ``Qt.PreciseTimer`` single-shot ``QTimer``, re-armed each time it
   fires, records how late it fires; p50, p99 and max (and p99 over 3 s at idle, signed
   in, before the call). Goal: p99 under 30 ms. To tell why the late timers were late,
   each interval also notes how long the loop's thread ran and how long it waited, runnable,
   for a CPU (``/proc/self/task/TID/schedstat``); over the latest 1% of intervals the rest
   of the time it was blocked, which for a thread whose timer is due means, in practice,
   waiting for the GIL that another thread holds (decoder, encoder jobs). Beside
   it, the process's CPU and the loop thread's, in % of one core, and the frames per
   second the call window's two views painted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import Figure, Goal, PartialFailure, percentile
from bench.serverproc import ServerProcess

BENCH = "app"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAUNCH_GOAL_S = 1.5
LAG_P99_GOAL_MS = 30.0
MIB = 1024.0
HD = "1280x720"


def _progress(text: str) -> None:
    load = os.getloadavg()[0]
    print(f"[app] {text} (load {load:.2f})", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Plan:
    """How much a run measures."""

    warm_launches: int
    render_frames: int
    call_seconds: float
    call_warmup: float

    @classmethod
    def for_run(cls, quick: bool) -> Plan:
        """The full run (about 1.5 minutes) or the quick one (under a minute)."""
        if quick:
            return cls(warm_launches=2, render_frames=60, call_seconds=8.0, call_warmup=1.5)
        return cls(warm_launches=5, render_frames=300, call_seconds=20.0, call_warmup=2.0)


# Child processes ---------------------------------------------------------------------


def isolated_env(home: Path) -> dict[str, str]:
    """The environment of an app child: offscreen, with every per-user directory in ``home``."""
    run = home / "run"
    run.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_RUNTIME_DIR=str(run),
        PYTHONFAULTHANDLER="1",
        PYTHONPATH=os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


@dataclass(slots=True)
class ChildRun:
    """What one driver process printed, and when it started and exited (``time.time()``)."""

    started: float
    exited: float
    returncode: int
    reports: list[dict[str, Any]] = field(default_factory=list)

    def report(self, kind: str) -> dict[str, Any]:
        """The report of ``kind``; ``RuntimeError`` (with the driver's error) if missing."""
        for item in self.reports:
            if item.get("kind") == kind:
                return item
        errors = [r.get("error") for r in self.reports if r.get("kind") == "error"]
        raise RuntimeError(f"no {kind} report (status {self.returncode}; errors: {errors})")


async def run_driver(args: Sequence[str], home: Path, log_path: Path, timeout: float) -> ChildRun:
    """Run ``python -m bench.app_driver ARGS`` to its end (killed after ``timeout`` s)."""
    env = isolated_env(home)
    with open(log_path, "ab") as log:
        started = time.time()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.app_driver",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=PROJECT_ROOT,
            env=env,
        )
    assert process.stdout is not None
    try:
        output = await asyncio.wait_for(process.stdout.read(), timeout)
        returncode = await asyncio.wait_for(process.wait(), 15)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise RuntimeError(f"app_driver {args[0]} did not finish within {timeout:.0f} s") from None
    exited = time.time()
    run = ChildRun(started, exited, returncode)
    for line in output.decode("utf-8", "replace").splitlines():
        if line.startswith("BENCH "):
            run.reports.append(json.loads(line.removeprefix("BENCH ")))
    if returncode != 0:
        tail = log_tail(log_path)
        raise RuntimeError(f"app_driver {args[0]} exited with {returncode}: {tail}")
    return run


def log_tail(path: Path, lines: int = 3) -> str:
    """The last lines of a driver's log, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:])


# Measurements ------------------------------------------------------------------------


@dataclass(slots=True)
class Launch:
    """One launch, in seconds from the process's start (and the exit after quit)."""

    to_module: float
    to_main: float
    to_shown: float
    to_server: float
    exit_s: float


async def launches(tmp: Path, count: int) -> list[Launch]:
    """Launch the app ``count`` times with one profile (the first is a new profile)."""
    home = tmp / "launch"
    out = []
    for index in range(count):
        run = await run_driver(["launch", "--", "--profile", "bench"], home, tmp / "launch.log", 60)
        stamps = run.report("launch")
        out.append(
            Launch(
                to_module=stamps["module_started"] - run.started,
                to_main=stamps["main_called"] - run.started,
                to_shown=stamps["painted"] - run.started,
                to_server=stamps["server_ready"] - run.started,
                exit_s=run.exited - stamps["quit"],
            )
        )
        _progress(f"launch {index + 1}/{count}: window shown after {out[-1].to_shown:.3f} s")
    return out


async def render(tmp: Path, frames: int) -> dict[str, dict[str, Any]]:
    """Render costs by frame size (``"1280x720"``...), from one driver process."""
    run = await run_driver(
        ["render", "--frames", str(frames)], tmp / "render", tmp / "render.log", 120
    )
    return {f"{r['width']}x{r['height']}": r["costs"] for r in run.reports if r["kind"] == "render"}


async def call(tmp: Path, name: str, plan: Plan, server: str | None) -> dict[str, Any]:
    """One driver process through a 1280x720 call of the Echo Test (``server``: external)."""
    app_args = ["--profile", "bench"] + (["--server", server] if server else [])
    args = ["call", "--size", HD, "--seconds", str(plan.call_seconds),
            "--warmup", str(plan.call_warmup), "--", *app_args]  # fmt: skip
    run = await run_driver(args, tmp / name, tmp / f"{name}.log", plan.call_seconds + 90)
    result = run.report("call")
    if not result["visible"] or not result["lags_ms"]:
        raise RuntimeError(f"the call window was not shown, or no lag measured: {name}")
    return result


# Figures -----------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def launch_figures(runs: list[Launch]) -> list[Figure]:
    """Launch and exit times: the first launch, then the warm median."""
    out: list[Figure] = []
    if not runs:
        return out
    first, warm = runs[0], runs[1:]
    out.append(Figure(BENCH, "launch to main window shown, first run (new profile)",
                      first.to_shown, "s"))  # fmt: skip
    n = len(warm)
    out.append(Figure(BENCH, f"launch to main window shown, warm, median of {n}",
                      _median([r.to_shown for r in warm]), "s",
                      Goal.below(LAUNCH_GOAL_S)))  # fmt: skip
    out.append(Figure(BENCH, "  of which Python's start",
                      _median([r.to_module for r in warm]), "s"))  # fmt: skip
    out.append(Figure(BENCH, "  of which imports (Qt, aiortc, the app's modules)",
                      _median([r.to_main - r.to_module for r in warm]), "s"))  # fmt: skip
    out.append(Figure(BENCH, "  of which main() to window drawn",
                      _median([r.to_shown - r.to_main for r in warm]), "s"))  # fmt: skip
    out.append(Figure(BENCH, "launch to built-in server ready, warm, median",
                      _median([r.to_server for r in warm]), "s"))  # fmt: skip
    out.append(Figure(BENCH, f"exit after quit (server running), median of {len(runs)}",
                      _median([r.exit_s for r in runs]), "s"))  # fmt: skip
    return out


RENDER_ROWS = (
    ("convert", "to_qvideoframe", (50, 95)),
    ("paint_view", "QVideoFrame.paint into 960x540", (50, 95)),
    ("paint_self", "QVideoFrame.paint into 240x135 (self-view)", (50,)),
    ("paint_full", "QVideoFrame.paint at full size", (50,)),
    ("widget_total", "VideoView.show_frame + repaint 960x540, together", (50, 95)),
    ("widget_repaint", "  of which repaint", (50,)),
    ("ndarray", "baseline to_ndarray(rgb24) alone", (50, 95)),
    ("ndarray_total", "baseline to_ndarray(rgb24) + QImage + draw 960x540", (50, 95)),
    ("bgra_total", "alternative reformat(bgra) + QImage + draw 960x540", (50, 95)),
    ("bgra_self", "alternative reformat(bgra, 240x135) + draw (self-view)", (50,)),
)


def render_figures(costs: dict[str, dict[str, Any]]) -> list[Figure]:
    """Milliseconds per frame of each render step, by frame size."""
    out: list[Figure] = []
    for size, steps in costs.items():
        for key, label, quantiles in RENDER_ROWS:
            for q in quantiles:
                value = steps.get(key, {}).get(f"p{q}", float("nan"))
                out.append(Figure(BENCH, f"render {size}: {label} p{q}", value, "ms/frame"))
    return out


def call_figures(label: str, result: dict[str, Any]) -> list[Figure]:
    """Memory, lag and CPU of one call run."""
    lags, idle_lags = result["lags_ms"], result["idle_lags_ms"]
    late, shown = result["late"], result["shown_per_s"]
    call = f"{HD} call, {label}"
    lag_goal = Goal.below(LAG_P99_GOAL_MS)
    rows: list[tuple[str, float, str, Goal | None]] = [
        (f"RSS idle, signed in, {label}", result["idle_rss_kib"] / MIB, "MiB", None),
        (f"RSS in {call}", result["call_rss_kib"] / MIB, "MiB", None),
        (f"RSS peak (VmHWM) up to then, {label}", result["call_status"]["VmHWM"] / MIB, "MiB",
         None),
        (f"event-loop lag p99 idle, signed in, {label}", percentile(idle_lags, 99), "ms", None),
        (f"event-loop lag p50 in {call}", percentile(lags, 50), "ms", None),
        (f"event-loop lag p99 in {call}", percentile(lags, 99), "ms", lag_goal),
        (f"event-loop lag max in {call}", max(lags, default=math.nan), "ms", None),
        (f"  late 1%: loop thread running, {label}", late["running"], "% of time", None),
        (f"  late 1%: loop thread waiting for a CPU, {label}", late["cpu_wait"], "% of time",
         None),
        (f"  late 1%: loop thread blocked (GIL), {label}", late["blocked"], "% of time", None),
        (f"CPU in {call}, whole process", result["cpu_pct"], "% of a core", None),
        (f"CPU in {call}, loop thread", result["main_thread_cpu_pct"], "% of a core", None),
        (f"frames painted in {call}, remote view", shown["remote"], "frames/s", None),
        (f"frames painted in {call}, self-view", shown["self_view"], "frames/s", None),
    ]  # fmt: skip
    return [Figure(BENCH, name, value, unit, goal) for name, value, unit, goal in rows]


# The run -----------------------------------------------------------------------------

BUILTIN = "built-in server + echo in app"
EXTERNAL = "peer in another process"


async def run_async(quick: bool) -> list[Figure]:
    """Launch, render and call in child processes; the figures, or a partial failure."""
    plan = Plan.for_run(quick)
    out: list[Figure] = []
    errors: list[str] = []

    async def step(what: str, coro: Any) -> Any:
        try:
            return await coro
        except Exception as exc:
            errors.append(f"{what}: {exc}")
            _progress(f"{what} FAILED: {exc}")
            return None

    with tempfile.TemporaryDirectory(prefix="parley-bench-app-") as name:
        tmp = Path(name)
        _progress(f"launching the app {1 + plan.warm_launches} times")
        runs = await step("launch", launches(tmp, 1 + plan.warm_launches))
        out += launch_figures(runs or [])

        _progress(f"render cost, {plan.render_frames} frames at each size")
        costs = await step("render", render(tmp, plan.render_frames))
        out += render_figures(costs or {})

        _progress(f"{HD} Echo Test call on the built-in server, {plan.call_seconds:.0f} s")
        builtin = await step("call (built-in server)", call(tmp, "builtin", plan, None))
        if builtin is not None:
            out += call_figures(BUILTIN, builtin)

        _progress(f"{HD} call to a peer in another process, {plan.call_seconds:.0f} s")

        async def external() -> dict[str, Any]:
            async with ServerProcess(tmp / "server.db", tmp / "server.log") as server:
                return await call(tmp, "external", plan, server.url)

        separate = await step("call (external peer)", external())
        if separate is not None:
            out += call_figures(EXTERNAL, separate)
    if errors:
        raise PartialFailure(out, errors)
    return out


def run(quick: bool) -> list[Figure]:
    """Measure the app (``quick``: fewer launches and frames, 8 s call windows)."""
    return asyncio.run(run_async(quick))
