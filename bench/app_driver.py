"""The desktop app, driven from inside its own process for :mod:`bench.app`.

``python -m bench.app_driver MODE [options] [-- app arguments]`` runs one of:

* ``launch``: the real app (``gui.app.main.main``, exactly what ``python -m gui`` runs),
  timed from the inside. Before ``main`` runs, :class:`gui.app.ui.ParleyUi` is made to
  build a :class:`TimedMainWindow` (the app's own main window plus an event filter that
  notes when it is shown and when its first frame is painted). Once the built-in server
  is ready the driver asks the app to quit, the normal way.
* ``call``: the app registers an account through its sign-in screen, idles, then calls
  the Echo Test with its synthetic camera at 1280x720 (``AppMedia.camera`` is wrapped:
  the app's own code makes 640x480), with the call window shown, and measures the
  process's memory, the event loop's timer lag and CPU time over a window of the call.
* ``render``: no app; the cost of turning one decoded frame into pixels on a
  :class:`~gui.app.video_view.VideoView` (``to_qvideoframe``, the paint) beside the
  ``to_ndarray("rgb24")`` + ``QImage`` path and PyAV's ``reformat(format="bgra")``,
  at 1280x720 and 1920x1080 (see :func:`render_costs`).

Every result is one line ``BENCH {json}`` on stdout, with ``time.time()`` stamps where the
parent compares times across processes. Imports stay light at module level so that
``launch`` pays for what ``python -m gui`` pays for and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

#: When this module began to run (the interpreter is up, ``bench`` and this module imported).
MODULE_STARTED = time.time()

if TYPE_CHECKING:
    import av

    from gui.app.ui import ParleyUi

MARKER = "BENCH "
PASSWORD = "correct horse battery"
LAG_INTERVAL_MS = 10


def report(kind: str, **fields: Any) -> None:
    """One ``BENCH {json}`` line on stdout."""
    print(MARKER + json.dumps({"kind": kind, **fields}), flush=True)


def proc_status() -> dict[str, int]:
    """``VmRSS``, ``VmHWM`` (peak RSS) and ``Threads`` of this process, from /proc/self/status."""
    wanted = {"VmRSS", "VmHWM", "Threads"}
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in wanted:
                out[name] = int(value.split()[0])
    return out


def thread_cpu_s(tid: int) -> float:
    """CPU time (user + system) one thread of this process has used, in seconds."""
    with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # After the ")" closing the name: state is field 0, utime 11, stime 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.02)


AppMain = Callable[..., int]


def app_main() -> AppMain:
    """``gui.app.main.main``, imported by name.

    (Imported so that ``mypy bench`` does not check ``gui/app/main.py`` itself, whose
    ``spawn(driver(ui))`` gives an ``Awaitable`` where a ``Coroutine`` is annotated:
    an error in ``gui/`` that ``mypy gui`` reports, outside the benchmarks.)
    """
    main: AppMain = importlib.import_module("gui.app.main").main
    return main


# launch ------------------------------------------------------------------------------


class LaunchStamps:
    """Wall-clock times (``time.time()``) of the main window's first appearance."""

    main_called = 0.0
    shown: float | None = None
    first_paint: float | None = None
    painted: float | None = None


def install_timed_main_window(stamps: type[LaunchStamps]) -> None:
    """Make :class:`~gui.app.ui.ParleyUi` build a main window that stamps its first frame.

    The subclass only adds an application-wide event filter: ``Show`` of the window, the
    first ``Paint`` of the window or any widget in it, and the next turn of the event loop
    after that paint (the whole window has been drawn and flushed by then).
    """
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    import gui.app.ui
    from gui.app.main_window import MainWindow

    class FirstFrame(QObject):
        def __init__(self, window: QWidget) -> None:
            super().__init__(window)
            self.window = window

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            kind = event.type()
            if kind == QEvent.Type.Show and watched is self.window and stamps.shown is None:
                stamps.shown = time.time()
            elif (
                kind == QEvent.Type.Paint
                and stamps.first_paint is None
                and isinstance(watched, QWidget)
                and watched.window() is self.window
            ):
                stamps.first_paint = time.time()
                QTimer.singleShot(0, self._painted)
            return False

        def _painted(self) -> None:
            stamps.painted = time.time()
            app = QApplication.instance()
            if app is not None:
                app.removeEventFilter(self)

    class TimedMainWindow(MainWindow):
        """The app's main window, watched by a :class:`FirstFrame` filter."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            app = QApplication.instance()
            assert app is not None
            self._first_frame = FirstFrame(self)
            app.installEventFilter(self._first_frame)

    gui.app.ui.MainWindow = TimedMainWindow  # type: ignore[misc]


async def drive_launch(ui: ParleyUi, stamps: type[LaunchStamps], timeout: float) -> None:
    """Wait for the first frame and the built-in server, report, and quit."""
    try:
        await until(lambda: stamps.painted is not None, timeout, "the main window's first frame")
        await until(lambda: ui.controller.default_server is not None, timeout, "the server")
        ready = time.time()
        report(
            "launch",
            module_started=MODULE_STARTED,
            main_called=stamps.main_called,
            shown=stamps.shown,
            first_paint=stamps.first_paint,
            painted=stamps.painted,
            visible=ui.main.isVisible(),
            server_ready=ready,
            status=proc_status(),
            quit=time.time(),
        )
    except BaseException as exc:
        report("error", error=repr(exc))
        raise
    finally:
        ui.request_quit()


def run_launch(app_args: Sequence[str], timeout: float) -> int:
    """Run the app, timed; returns its exit status."""
    install_timed_main_window(LaunchStamps)
    main = app_main()
    LaunchStamps.main_called = time.time()
    return main(list(app_args), driver=lambda ui: drive_launch(ui, LaunchStamps, timeout))


# call --------------------------------------------------------------------------------


def schedstat_ns(tid: int) -> tuple[int, int]:
    """Time one thread of this process has run on a CPU and waited for one, in ns.

    The first two fields of ``/proc/self/task/TID/schedstat``: time spent running, and
    time spent runnable on a run queue while other work (any process's) had the CPU.
    """
    with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as stat:
        running, waiting, _ = stat.read().split()
    return int(running), int(waiting)


class LagProbe:
    """A 10 ms precise ``QTimer``, re-armed each time it fires; records how late it fired.

    For each interval it also notes how long the (main) thread ran and how long it was
    runnable but waiting for a CPU (``schedstat``), so that a late timer can be put down to
    work on the loop, to other processes taking the CPU, or to neither (waiting for the GIL).
    """

    def __init__(self, interval_ms: int = LAG_INTERVAL_MS) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.interval_ms = interval_ms
        self.tid = threading.get_native_id()
        self.lags_ms: list[float] = []
        #: Per interval: (wall, running, waiting for a CPU), in ms.
        self.intervals: list[tuple[float, float, float]] = []
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._fired)
        self._armed_at = 0.0
        self._sched = (0, 0)

    def start(self) -> None:
        """Start probing."""
        self._sched = schedstat_ns(self.tid)
        self._armed_at = time.monotonic()
        self._timer.start(self.interval_ms)

    def _fired(self) -> None:
        now = time.monotonic()
        sched = schedstat_ns(self.tid)
        wall = (now - self._armed_at) * 1000
        self.lags_ms.append(wall - self.interval_ms)
        running, waiting = ((b - a) / 1e6 for a, b in zip(self._sched, sched, strict=True))
        self.intervals.append((wall, running, waiting))
        self._sched = sched
        self._armed_at = now
        self._timer.start(self.interval_ms)

    def stop(self) -> None:
        """Stop probing."""
        self._timer.stop()

    def late_breakdown(self, quantile: float = 99) -> dict[str, float]:
        """Where the time of the late intervals (lag at or above ``quantile``) went, in %.

        ``running``: the thread ran (work on the loop); ``cpu_wait``: it was runnable while
        the CPUs did other work; ``blocked``: neither (the GIL, or sleeping).
        """
        from bench import percentile

        threshold = percentile(self.lags_ms, quantile)
        late = [i for lag, i in zip(self.lags_ms, self.intervals, strict=True) if lag >= threshold]
        wall = sum(i[0] for i in late)
        if not late or wall <= 0:
            return {"running": math.nan, "cpu_wait": math.nan, "blocked": math.nan, "count": 0}
        running = min(100.0, 100 * sum(i[1] for i in late) / wall)
        waiting = min(100.0 - running, 100 * sum(i[2] for i in late) / wall)
        return {
            "running": running,
            "cpu_wait": waiting,
            "blocked": 100.0 - running - waiting,
            "count": len(late),
            "threshold_ms": threshold,
        }


def use_camera_size(ui: ParleyUi, width: int, height: int) -> None:
    """Make the app's synthetic camera ``width`` x ``height`` (its own code makes 640x480)."""
    from gui.media.pattern import PatternVideoTrack
    from gui.media.tap import TappedTrack

    def camera(device_id: str | None = None) -> TappedTrack:
        return TappedTrack(PatternVideoTrack(width, height))

    ui.media.camera = camera  # type: ignore[method-assign]


async def sample_rss(samples: list[int], stop: asyncio.Event, every: float = 0.25) -> None:
    """Append this process's RSS (KiB) to ``samples`` every ``every`` s until ``stop``."""
    while not stop.is_set():
        samples.append(proc_status()["VmRSS"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def drive_call(ui: ParleyUi, args: argparse.Namespace) -> None:
    """Register, idle, call the Echo Test at ``args.size``, measure, hang up, quit."""
    from gui.core.call_machine import CallState

    width, height = args.size
    try:
        ui.profile.settings.synthetic_media = True
        sign_in = ui.main.sign_in

        def ready() -> bool:
            server = ui.controller.default_server or ui.controller.configured_server
            return sign_in.isVisible() and server is not None

        await until(ready, 30, "the sign-in screen")
        if not sign_in.registering:
            sign_in.switch.click()
        sign_in.username.setText("bench")
        sign_in.password.setText(PASSWORD)
        sign_in.submit.click()
        await until(lambda: ui.controller.user is not None, 30, "signing in")
        await until(lambda: ui.main.stack.currentWidget() is ui.main.home, 10, "the home view")
        await asyncio.sleep(args.idle)
        idle: list[int] = []
        idle_probe = LagProbe()
        idle_probe.start()
        idle_stop = asyncio.Event()
        idle_sampler = asyncio.get_running_loop().create_task(sample_rss(idle, idle_stop))
        await asyncio.sleep(args.idle_probe)
        idle_probe.stop()
        idle_stop.set()
        await idle_sampler
        idle_status = proc_status()

        use_camera_size(ui, width, height)
        session = ui.controller.place_call("echo", video=True)
        assert session is not None
        await until(lambda: session.state is CallState.CONNECTED, 30, "the call to connect")
        await until(lambda: bool(ui.calls), 10, "the call window")
        window = ui.calls[0]
        await until(window.isVisible, 10, "the call window shown")

        def hd_remote() -> bool:
            frame = window.remote.frame
            return frame is not None and frame.width == width

        await until(hd_remote, 20, f"{width}x{height} frames from the peer")
        await asyncio.sleep(args.warmup)

        main_tid = threading.get_native_id()
        probe = LagProbe()
        rss: list[int] = []
        stop = asyncio.Event()
        views = {"remote": window.remote, "self_view": window.self_view}
        given = {name: view.frames_given for name, view in views.items()}
        shown = {name: view.frames_shown for name, view in views.items()}
        cpu, main_cpu, started = time.process_time(), thread_cpu_s(main_tid), time.monotonic()
        sampler = asyncio.get_running_loop().create_task(sample_rss(rss, stop))
        probe.start()
        await asyncio.sleep(args.seconds)
        probe.stop()
        stop.set()
        await sampler
        elapsed = time.monotonic() - started
        cpu_pct = 100 * (time.process_time() - cpu) / elapsed
        main_cpu_pct = 100 * (thread_cpu_s(main_tid) - main_cpu) / elapsed
        call_status = proc_status()
        report(
            "call",
            idle_rss_kib=statistics.median(idle),
            idle_status=idle_status,
            call_rss_kib=statistics.median(rss),
            call_rss_max_kib=max(rss),
            call_status=call_status,
            lags_ms=probe.lags_ms,
            late=probe.late_breakdown(),
            idle_lags_ms=idle_probe.lags_ms,
            seconds=elapsed,
            cpu_pct=cpu_pct,
            main_thread_cpu_pct=main_cpu_pct,
            given_per_s={n: (v.frames_given - given[n]) / elapsed for n, v in views.items()},
            shown_per_s={n: (v.frames_shown - shown[n]) / elapsed for n, v in views.items()},
            window_size=[window.width(), window.height()],
            remote_size=[window.remote.width(), window.remote.height()],
            visible=window.isVisible(),
        )
        window.hang_up_button.click()
        await until(lambda: session.machine.ended, 10, "the call to end")
    except BaseException as exc:
        report("error", error=repr(exc))
        raise
    finally:
        ui.request_quit()


def run_call(args: argparse.Namespace, app_args: Sequence[str]) -> int:
    """Run the app through one call; returns its exit status."""
    return app_main()(list(app_args), driver=lambda ui: drive_call(ui, args))


# render ------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict[str, float]:
    from bench import percentile

    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


#: The self-view's size in a 960x600 call window (a quarter of the stage's width, 16:9).
SELF_VIEW = (240, 135)
#: The render steps timed for each frame, in the order they run.
RENDER_STEPS = (
    "convert",
    "paint_view",
    "paint_self",
    "paint_full",
    "widget_repaint",
    "widget_total",
    "ndarray",
    "ndarray_total",
    "bgra_total",
    "bgra_self",
)


def to_qvideoframe(frame: av.VideoFrame) -> Any:
    """The earlier render path, measured for comparison: planes copied into a QVideoFrame.

    ``QVideoFrame.paint`` then converts the whole frame and scales it; ``VideoView`` now
    has PyAV convert straight to the drawn size instead (see gui/app/video_view.py).
    """
    import numpy as np
    from PySide6.QtCore import QSize
    from PySide6.QtMultimedia import QVideoFrame, QVideoFrameFormat

    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    qframe = QVideoFrame(
        QVideoFrameFormat(
            QSize(frame.width, frame.height), QVideoFrameFormat.PixelFormat.Format_YUV420P
        )
    )
    qframe.map(QVideoFrame.MapMode.WriteOnly)
    try:
        for index, plane in enumerate(frame.planes):
            rows, width, stride = plane.height, plane.width, qframe.bytesPerLine(index)
            target = np.asarray(qframe.bits(index)).reshape(-1)[: rows * stride]
            source = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(rows, -1)
            target.reshape(rows, stride)[:, :width] = source[:, :width]
    finally:
        qframe.unmap()
    return qframe


def render_costs(
    width: int, height: int, frames: int, view_size: tuple[int, int]
) -> dict[str, dict[str, float]]:
    """Milliseconds per frame of each way from an ``av.VideoFrame`` to pixels, p50 and p95.

    Every step runs on each frame in turn, so that a burst of other work on the machine
    lands on all of them alike. Steps:

    * ``convert``: ``to_qvideoframe`` (the earlier path); ``paint_view``, ``paint_self``,
      ``paint_full``: ``QVideoFrame.paint`` of a fresh frame (Qt caches a frame's converted
      image) into a ``QImage`` of the view's size, of the self-view's and of the frame's;
    * ``widget_total``: what the call window does, ``VideoView.show_frame`` and then a
      synchronous ``repaint()`` of a shown view; ``widget_repaint``: the repaint alone;
    * ``ndarray``: ``to_ndarray("rgb24")``; ``ndarray_total``: that, wrapped in a
      ``QImage`` and drawn letterboxed into the view's size, background first;
    * ``bgra_total``: the same with ``reformat(format="bgra")`` and ``Format_RGB32``;
      ``bgra_self``: ``reformat`` straight to the self-view's size, drawn there.
    """
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QImage, QPainter
    from PySide6.QtMultimedia import QVideoFrame
    from PySide6.QtWidgets import QApplication

    from gui.app.video_view import VideoView
    from gui.media.pattern import PatternVideoTrack

    app = QApplication.instance()
    assert app is not None
    track = PatternVideoTrack(width, height)
    view = VideoView()
    view.resize(*view_size)
    view.show()
    app.processEvents()
    targets = {
        "view": QImage(*view_size, QImage.Format.Format_RGB32),
        "self": QImage(*SELF_VIEW, QImage.Format.Format_RGB32),
        "full": QImage(width, height, QImage.Format.Format_RGB32),
    }
    background = QColor("#0b0d12")
    times: dict[str, list[float]] = {name: [] for name in RENDER_STEPS}

    def timed(name: str, action: Callable[[], object]) -> Any:
        started = time.perf_counter()
        result = action()
        times[name].append((time.perf_counter() - started) * 1000)
        return result

    def paint(target: str, frame: av.VideoFrame) -> Callable[[], None]:
        qframe = to_qvideoframe(frame)
        image = targets[target]

        def action() -> None:
            painter = QPainter(image)
            qframe.paint(painter, QRectF(image.rect()), QVideoFrame.PaintOptions())
            painter.end()

        return action

    def draw(image: QImage, target: QImage) -> None:
        painter = QPainter(target)
        painter.fillRect(target.rect(), background)
        size = image.size().scaled(target.size(), Qt.AspectRatioMode.KeepAspectRatio)
        left = (target.width() - size.width()) / 2
        top = (target.height() - size.height()) / 2
        painter.drawImage(QRectF(left, top, size.width(), size.height()), image)
        painter.end()

    def via_rgb24(frame: av.VideoFrame) -> None:
        rgb = frame.to_ndarray(format="rgb24")
        image = QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888)
        draw(image, targets["view"])

    def via_bgra(frame: av.VideoFrame, size: tuple[int, int] | None, target: str) -> None:
        if size is None:
            bgra = frame.reformat(format="bgra")
        else:
            bgra = frame.reformat(width=size[0], height=size[1], format="bgra")
        plane = bgra.planes[0]
        image = QImage(
            memoryview(plane), bgra.width, bgra.height, plane.line_size, QImage.Format.Format_RGB32
        )
        draw(image, targets[target])

    def show(frame: av.VideoFrame) -> None:
        started = time.perf_counter()
        view.show_frame(frame)
        timed("widget_repaint", view.repaint)
        times["widget_total"].append((time.perf_counter() - started) * 1000)

    for number in range(frames):
        frame = track.make_frame(number)
        timed("convert", partial(to_qvideoframe, frame))
        timed("paint_view", paint("view", frame))
        timed("paint_self", paint("self", frame))
        timed("paint_full", paint("full", frame))
        show(frame)
        timed("ndarray", partial(frame.to_ndarray, format="rgb24"))
        timed("ndarray_total", partial(via_rgb24, frame))
        timed("bgra_total", partial(via_bgra, frame, None, "view"))
        timed("bgra_self", partial(via_bgra, frame, SELF_VIEW, "self"))
        if number % 20 == 0:
            app.processEvents()
    shown = view.frames_shown
    view.close()
    view.deleteLater()
    app.processEvents()
    if shown < frames:
        raise RuntimeError(f"the view painted {shown} of {frames} frames")
    return {name: _stats(values) for name, values in times.items()}


def run_render(args: argparse.Namespace) -> int:
    """Measure the render costs at 720p and 1080p in an offscreen ``QApplication``."""
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    try:
        for width, height in ((1280, 720), (1920, 1080)):
            costs = render_costs(width, height, args.frames, (960, 540))
            report("render", width=width, height=height, frames=args.frames, costs=costs)
    finally:
        importlib.import_module("gui.app.main").destroy_qt(app)
    return 0


# command line ------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def build_parser() -> argparse.ArgumentParser:
    """The driver's command line (what follows ``--`` goes to the app)."""
    parser = argparse.ArgumentParser(prog="python -m bench.app_driver")
    modes = parser.add_subparsers(dest="mode", required=True)
    launch = modes.add_parser("launch", help="time the launch to the main window shown")
    launch.add_argument("--timeout", type=float, default=30.0)
    call = modes.add_parser("call", help="memory and event-loop lag in a call")
    call.add_argument("--size", type=_size, default=(1280, 720), metavar="WxH")
    call.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    call.add_argument("--warmup", type=float, default=2.0, help="call time before measuring")
    call.add_argument("--idle", type=float, default=1.0, help="idle time after signing in")
    call.add_argument(
        "--idle-probe", type=float, default=3.0, help="timer-lag probe at idle, before the call"
    )
    render = modes.add_parser("render", help="render cost per frame")
    render.add_argument("--frames", type=int, default=300)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.app_driver``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    app_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, app_args = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    if args.mode == "launch":
        return run_launch(app_args, args.timeout)
    if args.mode == "call":
        return run_call(args, app_args)
    return run_render(args)


if __name__ == "__main__":
    sys.exit(main())
