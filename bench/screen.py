"""Screen sharing at 1920x1080 and 15 frames/s: sender CPU, frames/s, latency, time to first frame.

Two processes, so that the sender's CPU is the sender's alone:

* **This process shares.** It starts its own ``Xvfb`` (1920x1080x24, on a free display),
  runs Qt on it (``xcb``, ``XDG_SESSION_TYPE=x11``: Qt's shared-memory X11 capture, as on an
  X11 desktop) under a qasync loop, and shows a full-screen window that looks like a
  document (rows of word-sized dark blocks on white, scrolled by one line every second) with
  the frame-number strip of :mod:`gui.media.pattern` in its top-left corner, repainted
  with the next number every 10 ms; the time each number went on screen is kept. It calls
  the other process with a :class:`~gui.core.call_session.CallSession` (camera: the
  640x480 test pattern at 30 frames/s; audio: a tone) and shares screen 0 with a
  :class:`~gui.devices.screen.ScreenTrack`.
* **A child process views** (``python -m bench.screen receive``): it runs the signaling
  server (users seeded) and the answering CallSession (also sending a 640x480 pattern and a
  tone), and prints one JSON line per frame its screen slot decodes: the arrival time
  (``time.monotonic()``, one clock for every process on the machine) and the number read
  from the strip.

Figures:

1. **Sender CPU**: this process's CPU time (every thread: Qt's capture thread, the colour
   conversion, aiortc's encoders, the window repainting its strip) over the sharing window,
   in % of one core; the same over a window of the call before the share; their difference,
   the share's own cost. The X server's CPU for the captures is shown apart.
2. **Frames per second** decoded on the viewer's screen slot over the sharing window.
3. **Latency, screen to decoded frame**: the time a number was painted to the time the
   viewer decoded a frame showing it, p50 and p95. This is capture → decoded plus the age of
   the picture when it was grabbed (under 10 ms, the strip's repaint period).
4. **Share to first frame**: from just before the ``ScreenTrack`` is made (the click on
   Share) to the viewer's first decoded frame showing a number painted after that moment;
   the call's first share (which also starts the encoder), then the median and the worst of
   the later stop/start cycles. Goal: under 1 s.
5. **Conversion and scaling cost per frame**: the track's copy + yuv420p conversion at
   1920x1080 during the share, and, on synthetic frames, scaling 2560x1440 and 3840x2160
   screens down to 1920x1080.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import Figure, Goal, PartialFailure, percentile
from tests.xvfb import Xvfb

BENCH = "screen"
WIDTH, HEIGHT = 1920, 1080
SHARE_FPS = 15
FPS_GOAL = 14.0
FIRST_FRAME_GOAL_MS = 1000.0
SHARER, VIEWER = "sharer", "viewer"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The strip is repainted this often: the picture a capture grabs is at most this old.
STRIP_PERIOD_MS = 10


def _progress(text: str) -> None:
    load = os.getloadavg()[0]
    print(f"[screen] {text} (load {load:.2f})", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Plan:
    """How long each part runs."""

    baseline_s: float
    window_s: float
    restarts: int

    @classmethod
    def for_run(cls, quick: bool) -> Plan:
        """Full: about 60 s; quick: about 30 s."""
        if quick:
            return cls(baseline_s=3.0, window_s=10.0, restarts=3)
        return cls(baseline_s=6.0, window_s=30.0, restarts=6)


# The viewer: a child process with the server and the answering end ----------------------


async def _receive(work: Path) -> None:
    """Serve, answer the first call, print a JSON line per decoded screen-slot frame."""
    from bench.server import seed
    from bench.serverproc import GENEROUS_LIMITS
    from gui.core.call_session import CallSession, LocalMedia
    from gui.core.signaling_client import SignalingClient
    from gui.media.analysis import TrackConsumer
    from gui.media.pattern import PatternVideoTrack, decode_frame_number
    from gui.media.tone import ToneAudioTrack
    from signaling.server.app import SignalingServer
    from signaling.server.config import ServerConfig

    def say(event: str, **fields: Any) -> None:
        print(json.dumps({"event": event, **fields}), flush=True)

    tokens = await seed(work / "screen.db", [SHARER, VIEWER], [(SHARER, VIEWER)])
    config = ServerConfig(
        host="127.0.0.1", port=0, db_path=work / "screen.db", rate_limits=GENEROUS_LIMITS
    )
    server = SignalingServer(config)
    await server.start()
    client = SignalingClient(server.url)
    await client.connect()
    await client.login(token=tokens[VIEWER])
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    sessions: list[CallSession] = []

    def on_frame(frame: Any) -> None:
        say("frame", t=time.monotonic(), n=decode_frame_number(frame), w=frame.width)

    def on_track(slot: str, receiver: TrackConsumer) -> None:
        if slot == "screen":
            receiver.listeners.append(on_frame)

    def on_event(message: dict[str, Any]) -> None:
        if message.get("type") != "call.incoming" or sessions:
            return
        media = LocalMedia(audio=ToneAudioTrack(880), camera=PatternVideoTrack(640, 480, fps=30))
        session = CallSession.incoming(client, message, media)
        session.on("remote_track", on_track)
        session.on("ended", lambda reason: done.set())
        sessions.append(session)
        session.accept()

    client.on_event(on_event)

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(done.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    say("ready", url=server.url, token=tokens[SHARER])
    try:
        await done.wait()
        for session in sessions:
            session.hang_up()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.wait_ended(), 10)
    finally:
        await client.close()
        await server.stop()
    say("ended")


class Viewer:
    """The child process, and the lines it printed (read by a thread as they come)."""

    def __init__(self, work: Path) -> None:
        # As the Wayland desktop's user (see run_platforms), this interpreter finds the
        # project through the boot code the desktop gave it (tests/wayland/session.py).
        boot = os.environ.get(BOOT_VARIABLE)
        python = [sys.executable, "-c", boot] if boot else [sys.executable, "-m"]
        self.process = subprocess.Popen(
            [*python, "bench.screen", "receive", "--work", str(work)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(work / "viewer.log").open("wb"),
        )
        self.lines: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                with self.lock:
                    self.lines.append(message)

    def first(self, event: str) -> dict[str, Any] | None:
        """The first line of this ``event``, if it came."""
        with self.lock:
            return next((m for m in self.lines if m["event"] == event), None)

    def frames(self) -> list[dict[str, Any]]:
        """Every screen frame reported so far."""
        with self.lock:
            return [m for m in self.lines if m["event"] == "frame"]

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """The ``ready`` line (server URL and the sharer's token)."""
        deadline = time.monotonic() + timeout
        while (ready := self.first("ready")) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the viewer process did not start")
            time.sleep(0.05)
        return ready

    def stop(self) -> None:
        """Close its stdin (it hangs up and exits), then make sure it is gone."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)


# The sharer: Qt on the Xvfb, the document window ------------------------------------------------


def _document_window() -> Any:
    """A full-screen window like a document, with the frame-number strip top left."""
    from PySide6.QtCore import QRect, Qt, QTimer
    from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPixmap
    from PySide6.QtWidgets import QWidget

    from gui.media.pattern import BLOCK, MAX_FRAME_NUMBER, STRIP_HEIGHT, STRIP_WIDTH, strip_cells

    line = 18
    rows = HEIGHT // line + 64

    def page() -> QPixmap:
        """Rows of word-sized dark blocks on white: what VP8 sees in a page of text."""
        pixmap = QPixmap(WIDTH, rows * line)
        pixmap.fill(QColor(255, 255, 255))
        painter = QPainter(pixmap)
        rng = random.Random(7)
        for row in range(rows):
            x = 240 + rng.randrange(0, 40)
            end = WIDTH - 240 - rng.randrange(0, 400)
            while x < end:
                word = rng.randrange(12, 70)
                shade = rng.choice((20, 40, 60))
                painter.fillRect(x, row * line + 4, word, 10, QColor(shade, shade, shade))
                x += word + 7
        painter.end()
        return pixmap

    class Document(QWidget):
        def __init__(self) -> None:
            super().__init__(None, Qt.WindowType.FramelessWindowHint)
            self.setGeometry(0, 0, WIDTH, HEIGHT)
            self.page = page()
            self.offset = 0
            self.number = 0
            #: Strip number -> time.monotonic() right after it was painted and flushed.
            self.painted_at: dict[int, float] = {}
            self.tick = QTimer(self)
            self.tick.setTimerType(Qt.TimerType.PreciseTimer)
            self.tick.setInterval(STRIP_PERIOD_MS)
            self.tick.timeout.connect(self.next_number)
            self.scroller = QTimer(self)
            self.scroller.setInterval(1000)
            self.scroller.timeout.connect(self.scroll_one_line)
            self.strip = QRect(0, 0, STRIP_WIDTH, STRIP_HEIGHT)

        def start(self) -> None:
            self.tick.start()
            self.scroller.start()

        def stop(self) -> None:
            self.tick.stop()
            self.scroller.stop()

        def next_number(self) -> None:
            self.number = (self.number + 1) & MAX_FRAME_NUMBER
            self.repaint(self.strip)
            self.painted_at[self.number] = time.monotonic()

        def scroll_one_line(self) -> None:
            self.offset = (self.offset + line) % (32 * line)
            self.update()

        def paintEvent(self, event: QPaintEvent) -> None:
            painter = QPainter(self)
            area = event.rect()
            painter.drawPixmap(area, self.page, area.translated(0, self.offset))
            if area.intersects(self.strip):
                painter.fillRect(0, 0, STRIP_WIDTH + BLOCK, STRIP_HEIGHT + BLOCK, QColor(0, 0, 0))
                cells = strip_cells(self.number)
                for r, row in enumerate(cells):
                    for c, bit in enumerate(row):
                        if bit:
                            painter.fillRect(
                                c * BLOCK, r * BLOCK, BLOCK, BLOCK, QColor(255, 255, 255)
                            )
            painter.end()

    return Document()


# The measurements ----------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    """What the run measured."""

    baseline_cpu: float = float("nan")
    share_cpu: float = float("nan")
    xvfb_cpu: float = float("nan")
    fps: float = float("nan")
    latencies_ms: list[float] = field(default_factory=list)
    first_share_ms: float = float("nan")
    restart_ms: list[float] = field(default_factory=list)
    conversion_ms: list[float] = field(default_factory=list)
    sent_size: tuple[int, int] | None = None
    received_width: int | None = None
    errors: list[str] = field(default_factory=list)


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.01)


async def _share(plan: Plan, viewer: Viewer, ready: dict[str, Any], xvfb: Xvfb | None) -> Results:
    from PySide6.QtGui import QCursor, QGuiApplication

    from gui.core.call_machine import CallState
    from gui.core.call_session import CallSession, LocalMedia
    from gui.core.signaling_client import SignalingClient
    from gui.devices.screen import ScreenTrack, list_screens
    from gui.media.pattern import PatternVideoTrack
    from gui.media.tone import ToneAudioTrack

    results = Results()
    document = _document_window()
    document.show()
    document.start()
    if QGuiApplication.platformName() == "xcb":  # Wayland lets no client move the pointer
        QCursor.setPos(WIDTH // 2, HEIGHT // 2)
    client = SignalingClient(ready["url"])
    await client.connect()
    await client.login(token=ready["token"])
    media = LocalMedia(audio=ToneAudioTrack(440), camera=PatternVideoTrack(640, 480, fps=30))
    session = CallSession.outgoing(client, VIEWER, media)
    screen = list_screens()[0]

    def first_after(t0: float, number: int) -> float | None:
        for frame in viewer.frames():
            n = frame["n"]
            if frame["t"] >= t0 and n is not None and n >= number:
                return float(frame["t"]) - t0
        return None

    async def start_share() -> tuple[ScreenTrack, float]:
        t0, number = time.monotonic(), document.number
        track = ScreenTrack(screen)
        session.start_screen(track)
        await _wait(lambda: first_after(t0, number) is not None, 10, "first shared frame")
        seconds = first_after(t0, number)
        assert seconds is not None
        return track, 1000 * seconds

    try:
        await _wait(
            lambda: session.state is CallState.CONNECTED and session.channel.is_open, 20, "call"
        )
        await asyncio.sleep(1.0)
        _progress(f"call up; {plan.baseline_s:g} s without sharing")
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(plan.baseline_s)
        results.baseline_cpu = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)

        _progress("share: first of the call")
        track, results.first_share_ms = await start_share()
        await asyncio.sleep(1.0)  # bandwidth estimation ramps up
        _progress(f"sharing {WIDTH}x{HEIGHT} for {plan.window_s:g} s")
        frames_before = len(viewer.frames())
        track.conversion_ms.clear()
        x_cpu = xvfb.cpu_seconds if xvfb is not None else lambda: float("nan")
        cpu0, x0, wall0 = time.process_time(), x_cpu(), time.monotonic()
        await asyncio.sleep(plan.window_s)
        cpu1, x1, wall1 = time.process_time(), x_cpu(), time.monotonic()
        elapsed = wall1 - wall0
        results.share_cpu = 100 * (cpu1 - cpu0) / elapsed
        results.xvfb_cpu = 100 * (x1 - x0) / elapsed
        window = [f for f in viewer.frames()[frames_before:] if wall0 <= f["t"] <= wall1]
        results.fps = len(window) / elapsed
        results.received_width = window[-1]["w"] if window else None
        painted = document.painted_at
        results.latencies_ms = [
            1000 * (f["t"] - painted[f["n"]]) for f in window if f["n"] in painted
        ]
        results.conversion_ms = list(track.conversion_ms)
        results.sent_size = track.frame_size

        for cycle in range(plan.restarts):
            session.stop_screen()
            await asyncio.sleep(1.0)
            _progress(f"stop and share again ({cycle + 1} of {plan.restarts})")
            track, milliseconds = await start_share()
            results.restart_ms.append(milliseconds)
            await asyncio.sleep(0.5)
        session.stop_screen()
    except Exception as exc:  # keep what was measured
        results.errors.append(repr(exc))
    finally:
        document.stop()
        session.hang_up()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.wait_ended(), 10)
        media.stop()
        await client.close()
        document.close()
        document.deleteLater()
    return results


def _scaling_costs(rounds: int) -> dict[str, float]:
    """Median ms per frame: a screen's BGRX frame to 1920x1080 yuv420p, by source size."""
    import numpy as np
    from PySide6.QtCore import QSize
    from PySide6.QtMultimedia import QVideoFrame, QVideoFrameFormat

    from gui.devices.screen import ScreenConverter

    out = {}
    converter = ScreenConverter()
    for width, height in ((1920, 1080), (2560, 1440), (3840, 2160)):
        frame = QVideoFrame(
            QVideoFrameFormat(QSize(width, height), QVideoFrameFormat.PixelFormat.Format_BGRX8888)
        )
        frame.map(QVideoFrame.MapMode.WriteOnly)
        rows = np.ndarray((height, frame.bytesPerLine(0)), np.uint8, buffer=frame.bits(0))
        rows[:] = np.random.default_rng(1).integers(0, 255, rows.shape, dtype=np.uint8)
        frame.unmap()
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            converter.convert(frame)
            times.append(1000 * (time.perf_counter() - started))
        out[f"{width}x{height}"] = statistics.median(times)
    return out


def _figures(results: Results, plan: Plan, scaling: dict[str, float]) -> list[Figure]:
    size = f"{WIDTH}x{HEIGHT}"
    restarts = results.restart_ms
    figures = [
        Figure(BENCH, f"sender CPU while sharing {size} @ {SHARE_FPS} fps (+camera, audio)",
               results.share_cpu, "% of a core"),
        Figure(BENCH, "sender CPU in the same call before sharing", results.baseline_cpu,
               "% of a core"),
        Figure(BENCH, "sender CPU of the share itself (difference)",
               results.share_cpu - results.baseline_cpu, "% of a core"),
        Figure(BENCH, "X server CPU while sharing (XShmGetImage)", results.xvfb_cpu,
               "% of a core"),
        Figure(BENCH, f"frames/s received over {plan.window_s:g} s", results.fps, "frames/s",
               Goal.at_least(FPS_GOAL)),
        Figure(BENCH, "latency screen->decoded p50", percentile(results.latencies_ms, 50), "ms"),
        Figure(BENCH, "latency screen->decoded p95", percentile(results.latencies_ms, 95), "ms"),
        Figure(BENCH, "Share -> first frame decoded, first share of the call",
               results.first_share_ms, "ms", Goal.below(FIRST_FRAME_GOAL_MS)),
        Figure(BENCH, f"Share -> first frame decoded, median of {len(restarts)} restarts",
               statistics.median(restarts) if restarts else float("nan"), "ms",
               Goal.below(FIRST_FRAME_GOAL_MS)),
        Figure(BENCH, "Share -> first frame decoded, worst restart",
               max(restarts) if restarts else float("nan"), "ms",
               Goal.below(FIRST_FRAME_GOAL_MS)),
        Figure(BENCH, f"capture copy + yuv420p per frame at {size}, median",
               statistics.median(results.conversion_ms) if results.conversion_ms
               else float("nan"), "ms"),
    ]  # fmt: skip
    for source, milliseconds in scaling.items():
        what = "convert only" if source == size else f"scale {source}->{size}"
        figures.append(Figure(BENCH, f"{what} (synthetic frame), median", milliseconds, "ms"))
    return figures


def run(quick: bool) -> list[Figure]:
    """Share a 1920x1080 Xvfb screen with a viewer process and measure (see the module)."""
    plan = Plan.for_run(quick)
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE")}
    xvfb = Xvfb(WIDTH, HEIGHT)
    os.environ.update(DISPLAY=xvfb.display, QT_QPA_PLATFORM="xcb", XDG_SESSION_TYPE="x11")
    os.environ.setdefault(
        "QT_LOGGING_RULES", "qt.multimedia.symbolsresolver=false;qt.multimedia.ffmpeg.info=false"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="parley-bench-screen-") as tmp:
            viewer = Viewer(Path(tmp))
            try:
                ready = viewer.wait_ready()
                results, scaling = _run_qt(plan, viewer, ready, xvfb, quick)
            finally:
                viewer.stop()
    finally:
        xvfb.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    figures = _figures(results, plan, scaling)
    if results.errors:
        raise PartialFailure(figures, results.errors)
    return figures


def _run_qt(
    plan: Plan, viewer: Viewer, ready: dict[str, Any], xvfb: Xvfb | None, quick: bool
) -> tuple[Results, dict[str, float]]:
    """The sharing side on a QApplication and a qasync loop; Qt torn down before Xvfb goes."""
    import gc

    from PySide6.QtWidgets import QApplication

    from gui.qt_loop import QtEventLoop

    app = QApplication.instance() or QApplication(["parley-bench"])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    try:
        results = asyncio.run(
            _share(plan, viewer, ready, xvfb), loop_factory=lambda: QtEventLoop(app)
        )
        scaling = _scaling_costs(10 if quick else 30) if xvfb is not None else {}
    finally:
        gc.collect()
        app.processEvents()
        app.shutdown()
    return results, scaling


# Wayland beside X11 -------------------------------------------------------------------------

#: The benchmark's name for the comparison (``python -m bench --only screen-platforms``).
PLATFORMS_BENCH = "screen-platforms"
#: Where a child finds the boot code that gives the Wayland user's Python the project.
BOOT_VARIABLE = "PARLEY_BENCH_PYTHON_BOOT"
RESULT_MARKER = "SHARE-RESULTS "


def _share_child(plan: Plan) -> int:
    """``python -m bench.screen share``: the viewer and the sharing side, on the display the
    environment names (X11 or Wayland), printing one ``SHARE-RESULTS {json}`` line."""
    os.environ.setdefault(
        "QT_LOGGING_RULES", "qt.multimedia.symbolsresolver=false;qt.multimedia.ffmpeg.info=false"
    )
    with tempfile.TemporaryDirectory(prefix="parley-bench-share-") as tmp:
        viewer = Viewer(Path(tmp))
        try:
            ready = viewer.wait_ready()
            results, _ = _run_qt(plan, viewer, ready, None, quick=True)
        finally:
            viewer.stop()
    fields = {
        "fps": results.fps,
        "first_share_ms": results.first_share_ms,
        "restart_ms": results.restart_ms,
        "share_cpu": results.share_cpu,
        "baseline_cpu": results.baseline_cpu,
        "received_width": results.received_width,
        "errors": results.errors,
    }
    print(RESULT_MARKER + json.dumps(fields), flush=True)
    return 0


def _child_results(process: subprocess.CompletedProcess[str], where: str) -> dict[str, Any]:
    for line in process.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return result
    tail = (process.stdout + process.stderr)[-1500:]
    return {"errors": [f"{where}: the sharing process ended with {process.returncode}: {tail}"]}


def _share_on_x11(plan: Plan) -> dict[str, Any]:
    """One run on a private 1920x1080 Xvfb (Qt's shared-memory X11 capture)."""
    xvfb = Xvfb(WIDTH, HEIGHT)
    try:
        env = {
            **os.environ,
            "DISPLAY": xvfb.display,
            "QT_QPA_PLATFORM": "xcb",
            "XDG_SESSION_TYPE": "x11",
        }
        env.pop("WAYLAND_DISPLAY", None)
        process = subprocess.run(
            [sys.executable, "-m", "bench.screen", "share", *_plan_args(plan)],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        xvfb.stop()
    return _child_results(process, "X11")


def _share_on_wayland(plan: Plan) -> dict[str, Any]:
    """One run on a headless 1920x1080 sway, through the desktop portal and PipeWire, as the
    desktop's user (tests/wayland/session.py)."""
    from tests.wayland.session import WaylandSession

    with WaylandSession((WIDTH, HEIGHT)) as desktop:
        python = desktop.python()
        process = desktop.popen(
            [*python, "bench.screen", "share", *_plan_args(plan)],
            env={"QT_QPA_PLATFORM": "wayland", BOOT_VARIABLE: python[2]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        return _child_results(
            subprocess.CompletedProcess(process.args, process.returncode, out, err), "Wayland"
        )


def _plan_args(plan: Plan) -> list[str]:
    return [
        f"--baseline={plan.baseline_s}",
        f"--window={plan.window_s}",
        f"--restarts={plan.restarts}",
    ]


def _spread(values: list[float]) -> tuple[float, float, float]:
    """min, median, max (NaN when there is nothing)."""
    values = [v for v in values if v == v]
    if not values:
        return float("nan"), float("nan"), float("nan")
    return min(values), statistics.median(values), max(values)


def run_platforms(quick: bool) -> list[Figure]:
    """Share -> first frame decoded on the viewer, and frames/s received over the window, at
    1920x1080 and 15 frames/s, on Wayland (portal + PipeWire) beside X11, runs alternating,
    min/median/max over the runs."""
    runs = 1 if quick else 3
    plan = Plan(baseline_s=1.0, window_s=10.0 if quick else 30.0, restarts=1 if quick else 2)
    measured: dict[str, list[dict[str, Any]]] = {"X11": [], "Wayland": []}
    errors: list[str] = []
    for index in range(runs):
        for name, one in (("X11", _share_on_x11), ("Wayland", _share_on_wayland)):
            _progress(f"{name}: run {index + 1} of {runs}")
            result = one(plan)
            errors.extend(f"{name}: {e}" for e in result.get("errors", []))
            measured[name].append(result)
    figures = []
    for name, results in measured.items():
        first = [float(r["first_share_ms"]) for r in results if "first_share_ms" in r]
        later = [float(ms) for r in results for ms in r.get("restart_ms", [])]
        fps = [float(r["fps"]) for r in results if "fps" in r]
        for what, values, unit, goal in (
            ("Share -> first frame decoded, first share of the call", first, "ms",
             Goal.below(FIRST_FRAME_GOAL_MS)),
            ("Share -> first frame decoded, later shares", later, "ms",
             Goal.below(FIRST_FRAME_GOAL_MS)),
            (f"frames/s received over {plan.window_s:g} s", fps, "frames/s",
             Goal.at_least(FPS_GOAL)),
        ):  # fmt: skip
            low, middle, high = _spread(values)
            label = f"{name}: {what} ({len(values)} runs)"
            figures += [
                Figure(PLATFORMS_BENCH, f"{label} min", low, unit),
                Figure(PLATFORMS_BENCH, f"{label} median", middle, unit, goal),
                Figure(PLATFORMS_BENCH, f"{label} max", high, unit),
            ]
    if errors:
        raise PartialFailure(figures, errors)
    return figures


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.screen receive --work DIR``: the viewer process;
    ``python -m bench.screen share [--window S ...]``: one sharing run (see run_platforms)."""
    parser = argparse.ArgumentParser(prog="python -m bench.screen")
    parser.add_argument("role", choices=["receive", "share"])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--baseline", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--restarts", type=int, default=2)
    args = parser.parse_args(argv)
    if args.role == "share":
        return _share_child(Plan(args.baseline, args.window, args.restarts))
    if args.work is None:
        parser.error("receive needs --work")
    asyncio.run(_receive(args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
