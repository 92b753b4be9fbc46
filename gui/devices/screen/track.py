"""The screen track: Qt's capture of a screen or a window as an aiortc video track."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
import weakref

import av
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError
from PySide6.QtCore import QObject, QPoint, QTimer, Slot
from PySide6.QtGui import QCursor, QGuiApplication, QScreen, QWindow
from PySide6.QtMultimedia import (
    QMediaCaptureSession,
    QScreenCapture,
    QVideoFrame,
    QVideoSink,
    QWindowCapture,
)

from gui.devices.camera import UnsupportedFrame, VideoSinkTrack
from gui.devices.screen.convert import MAX_SIZE, ScreenConverter, _scale_and_draw
from gui.devices.screen.portal import PortalRequestWatch, PortalStreamWatch
from gui.devices.screen.sources import (
    CaptureSource,
    ScreenSource,
    WindowSource,
    _find_screen,
    _screen_source,
    _window_of,
)
from gui.devices.screen.support import capture_supported, prefer_x11_capture

logger = logging.getLogger(__name__)

#: Frames per second a share sends: enough for scrolling and pointing, cheap at 1080p.
SHARE_FPS = 15.0

#: With nothing new from the capture for this long, the last frame is sent again (a PipeWire
#: capture of a still screen delivers nothing; the receiver and the bandwidth estimate
#: still want a picture now and then).
REPEAT_AFTER_S = 1.0

#: The origin of every screen track's timestamps.
_EPOCH = time.monotonic()


# The track ---------------------------------------------------------------------------


class _CaptureEvents(QObject):
    """Receives the capture's and the application's signals on the Qt main thread.

    It holds its track weakly: no reference cycle keeps a stopped track (and its Qt
    objects) alive until the cycle collector runs, perhaps on another thread.
    """

    def __init__(self, track: ScreenTrack) -> None:
        super().__init__()
        self._track = weakref.ref(track)

    @Slot(QScreenCapture.Error, str)
    def on_screen_error(self, error: QScreenCapture.Error, message: str) -> None:
        track = self._track()
        if track is not None and error != QScreenCapture.Error.NoError:
            track._capture_failed(message or error.name)

    @Slot(QWindowCapture.Error, str)
    def on_window_error(self, error: QWindowCapture.Error, message: str) -> None:
        track = self._track()
        if track is not None and error != QWindowCapture.Error.NoError:
            track._capture_failed(message or error.name)

    @Slot(int)
    def on_portal_refused(self, code: int) -> None:
        track = self._track()
        if track is not None:
            track._portal_refused(code)

    @Slot()
    def on_stream_ended(self) -> None:
        track = self._track()
        if track is not None:
            track._capture_failed("the PipeWire stream ended")

    @Slot(QScreen)
    def on_screen_removed(self, screen: QScreen) -> None:
        track = self._track()
        if track is not None:
            track._screen_removed(screen)


_CONVERTER_THREAD: concurrent.futures.ThreadPoolExecutor | None = None


def _converter_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread every screen track scales its frames on (made at first use).

    One long-lived thread rather than the loop's pool: the frames' memory then stays in
    one allocator arena, and a share started and stopped again and again does not spread
    megabyte-sized buffers over every pool thread.
    """
    global _CONVERTER_THREAD
    if _CONVERTER_THREAD is None:
        _CONVERTER_THREAD = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="parley-screen"
        )
    return _CONVERTER_THREAD


#: Every screen track not garbage-collected yet, for :func:`active_captures`.
_TRACKS: weakref.WeakSet[ScreenTrack] = weakref.WeakSet()


def active_captures() -> list[ScreenTrack]:
    """Screen tracks whose Qt capture is running now (tests and leak checks)."""
    return [t for t in list(_TRACKS) if t.capture_active]


class ScreenTrack(VideoSinkTrack):
    """A screen or a window as an aiortc video track, for the call's screen slot.

    ``source`` is a :class:`ScreenSource`, a :class:`WindowSource`, a ``QScreen``, or None
    for the primary screen. The capture starts at once (or at :meth:`start` when ``start``
    is False). Frames go out at ``fps`` at most, scaled to fit ``max_width`` x
    ``max_height``, with the pointer drawn when ``draw_cursor`` (screens, and windows whose
    id is known). See the module's documentation for the details and the costs.

    When capture cannot work or fails, the pyee event ``"lost"`` (reason) is emitted once,
    asynchronously, and :attr:`lost_reason` is set; the track then stays live without
    frames (nothing black is sent) until stopped.

    :meth:`stop` releases the capture at once. A ``recv()`` that is waiting at that moment
    returns the last frame sent once more instead of raising ``MediaStreamError``: after
    ``replaceTrack`` the sender can still be waiting in this track's ``recv()``, and aiortc
    ends a sender for good (stopping the track that replaced this one) on that error.
    """

    def __init__(
        self,
        source: CaptureSource | QScreen | None = None,
        *,
        fps: float = SHARE_FPS,
        max_width: int = MAX_SIZE[0],
        max_height: int = MAX_SIZE[1],
        draw_cursor: bool = True,
        start: bool = True,
    ) -> None:
        super().__init__(QVideoSink())
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        prefer_x11_capture()
        self.source: CaptureSource = self._resolve(source)
        self.fps = fps
        self.draw_cursor = draw_cursor
        self.lost_reason: str | None = None
        self.support = capture_supported()
        if self.support.system_picker:
            # Through the portal the pointer is the compositor's business (Qt asks it to leave
            # the pointer out), and QCursor.pos() knows the pointer only over this app's
            # windows: drawing it from there would put it in the wrong place.
            self.draw_cursor = False
        self.screen_converter = ScreenConverter(max_width, max_height)
        #: Frames sent again because the capture had nothing new for REPEAT_AFTER_S.
        self.frames_repeated = 0
        #: time.monotonic() when the capture was started, and when its first frame came.
        self.started_at: float | None = None
        self.first_frame_at: float | None = None
        #: Where the pointer was drawn in the last frame (None: not drawn).
        self.cursor_drawn_at: tuple[int, int] | None = None
        #: time.monotonic() when recv() last returned a frame.
        self._sent_at = -1.0
        self._last_output: av.VideoFrame | None = None
        self._stopped_pending: QVideoFrame | None = None
        self._screen: QScreen | None = None
        self._window: QWindow | None = None
        self._capture_events = _CaptureEvents(self)
        #: Through the portal: watches the PipeWire stream, which Qt does not (see .portal).
        self._stream_watch: PortalStreamWatch | None = None
        self._request_watch: PortalRequestWatch | None = None
        self.session = QMediaCaptureSession()
        self.capture: QScreenCapture | QWindowCapture
        if isinstance(self.source, ScreenSource):
            self._screen = _find_screen(self.source)
            capture = QScreenCapture()
            capture.errorOccurred.connect(self._capture_events.on_screen_error)
            if self._screen is not None:
                capture.setScreen(self._screen)
            self.session.setScreenCapture(capture)
            self.capture = capture
        else:
            window_capture = QWindowCapture()
            window_capture.errorOccurred.connect(self._capture_events.on_window_error)
            if self.source.handle is not None:
                window_capture.setWindow(self.source.handle)
            self._window = _window_of(self.source)
            self.session.setWindowCapture(window_capture)
            self.capture = window_capture
        if hasattr(self.capture, "setMaximumFrameRate"):  # Qt 6.12
            self.capture.setMaximumFrameRate(fps)
        self.session.setVideoSink(self.sink)
        app = QGuiApplication.instance()
        assert isinstance(app, QGuiApplication)
        app.screenRemoved.connect(self._capture_events.on_screen_removed)
        _TRACKS.add(self)
        if start:
            self.start()

    @staticmethod
    def _resolve(source: CaptureSource | QScreen | None) -> CaptureSource:
        if isinstance(source, ScreenSource | WindowSource):
            return source
        screens = QGuiApplication.screens()
        screen = source if source is not None else QGuiApplication.primaryScreen()
        if screen is None:
            return ScreenSource(0, "", (0, 0, 0, 0))
        index = screens.index(screen) if screen in screens else 0
        return _screen_source(index, screen)

    @property
    def capture_active(self) -> bool:
        """Whether Qt's capture is running."""
        return self.readyState == "live" and self.capture.isActive()

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """The size frames are sent at (known once one was sent)."""
        return None if self.width is None or self.height is None else (self.width, self.height)

    def start(self) -> None:
        """Start capturing (done by the constructor unless ``start=False``)."""
        if self.readyState != "live" or self.lost_reason is not None or self.capture.isActive():
            return
        if not self.support.supported:
            self._report_lost(self.support.reason)
            return
        if isinstance(self.source, ScreenSource) and self._screen is None:
            self._report_lost(f"{self.source.label} is not connected any more.")
            return
        if isinstance(self.source, WindowSource) and (
            self.source.handle is None or not self.source.handle.isValid()
        ):
            self._report_lost(f"The window “{self.source.label}” is not there any more.")
            return
        self.started_at = time.monotonic()
        if self.support.system_picker and self._stream_watch is None:
            self._stream_watch = PortalStreamWatch()
            self._stream_watch.ended.connect(self._capture_events.on_stream_ended)
            self._stream_watch.start()
            self._request_watch = PortalRequestWatch()
            self._request_watch.refused.connect(self._capture_events.on_portal_refused)
            if not self._request_watch.start():
                logger.warning(
                    "the session bus cannot be heard: a share cancelled in the system's "
                    "dialog would go unnoticed"
                )
        self.capture.start()

    # Events ---------------------------------------------------------------------

    def _on_frame(self, frame: QVideoFrame) -> None:
        if self.first_frame_at is None and self.readyState == "live" and frame.isValid():
            self.first_frame_at = time.monotonic()
        super()._on_frame(frame)

    def _capture_failed(self, message: str) -> None:
        if self.support.system_picker:
            reason = self._portal_failure(message)
        elif isinstance(self.source, WindowSource):
            reason = f"The window “{self.source.label}” cannot be captured any more ({message})."
        else:
            reason = f"{self.source.label} cannot be captured ({message})."
        self._report_lost(reason)

    def _portal_failure(self, message: str) -> str:
        """What a capture through the desktop portal ending means, in the user's words.

        Qt says the same ("PipeWire screen capture session was closed") whether the person
        cancelled the system's dialog, the portal refused, or the share was stopped from the
        desktop's own indicator; what tells them apart is whether a picture ever came.
        """
        logger.info("portal capture ended: %s", message)
        if self.first_frame_at is None:
            return (
                "The system did not start the screen share: the choice was cancelled in its "
                "dialog, or permission was refused."
            )
        return "Screen sharing was stopped from outside Parley (the system's sharing indicator)."

    def _portal_refused(self, code: int) -> None:
        """The portal answered one of this process's requests with ``code`` (1: cancelled)."""
        if self.first_frame_at is not None:
            return  # another share's request, not this one's
        if code == 1:
            self._report_lost("You cancelled the screen share in the system's dialog.")
        else:
            self._report_lost(
                "The system did not allow sharing the screen (permission was refused, or "
                "nothing to share was chosen)."
            )

    def _screen_removed(self, screen: QScreen) -> None:
        if screen is self._screen:
            self._report_lost(f"{self.source.label} was disconnected.")

    def _report_lost(self, reason: str) -> None:
        if self.lost_reason is not None or self.readyState != "live":
            return
        self.lost_reason = reason
        logger.warning("screen share lost: %s", reason)
        self._stop_watching()
        with contextlib.suppress(RuntimeError):
            self.capture.stop()
        QTimer.singleShot(0, lambda: self._emit_lost(reason))

    def _emit_lost(self, reason: str) -> None:
        if self.readyState == "live":
            self.emit("lost", reason)

    # Frames ---------------------------------------------------------------------

    async def recv(self) -> av.VideoFrame:
        """The newest captured frame, at most ``fps`` a second; see the class's notes on stop."""
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        # At most ``fps``: a frame is taken no sooner than 0.9 / fps after the previous one
        # (the slack keeps a capture running at ``fps`` itself from losing frames to jitter).
        # Newer frames replace the one held meanwhile; nothing waits for a schedule of its
        # own, so a frame never sits here while a slot comes round.
        while self.readyState == "live":
            delay = self._sent_at + 0.9 / self.fps - time.monotonic()
            if delay <= 0:
                break
            await self._sleep(loop, delay)
        while True:
            if self.readyState != "live":
                return self._farewell()
            if self._pending is None:
                await self._sleep(loop, REPEAT_AFTER_S)
                if self.readyState != "live":
                    return self._farewell()
                if self._pending is None:
                    if self._last_output is not None and self.lost_reason is None:
                        self.frames_repeated += 1
                        return self._stamp(self._last_output, time.monotonic())
                    continue
            frame, arrived = self._pending, self._pending_at
            self._pending = None
            try:
                out = await self._convert(loop, frame)
            except UnsupportedFrame as exc:
                self.frames_failed += 1
                if self.frames_failed == 1:
                    logger.warning("screen share: skipping frame: %s", exc)
                continue
            self._last_output = out
            return self._stamp(out, arrived)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        """Wait ``delay`` seconds, or less: a new frame and stop() end the wait early."""
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(delay, self._wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _convert(self, loop: asyncio.AbstractEventLoop, frame: QVideoFrame) -> av.VideoFrame:
        started = time.perf_counter()
        copied = self.screen_converter.copy(frame)
        cursor = self._cursor_position(frame.width(), frame.height()) if self.draw_cursor else None
        # The job gets the converter, not the track: a job that held the last reference to
        # the track would free its Qt objects on the converter thread.
        out, self.cursor_drawn_at = await loop.run_in_executor(
            _converter_thread(), _scale_and_draw, self.screen_converter, copied, cursor
        )
        self.conversion_ms.append(1000 * (time.perf_counter() - started))
        return out

    def _cursor_position(self, width: int, height: int) -> tuple[float, float] | None:
        """The pointer's tip as a fraction of the captured picture, or None when outside it."""
        position = QCursor.pos()
        left: float
        top: float
        span_x: float
        span_y: float
        if isinstance(self.source, ScreenSource):
            if self._screen is None:
                return None
            geometry = self._screen.geometry()
            left, top = geometry.x(), geometry.y()
            span_x, span_y = geometry.width(), geometry.height()
        else:
            window = self._window
            if window is None or width <= 0 or height <= 0:
                return None
            origin = window.mapToGlobal(QPoint(0, 0))
            ratio = window.devicePixelRatio() or 1.0
            left, top, span_x, span_y = origin.x(), origin.y(), width / ratio, height / ratio
        if span_x <= 0 or span_y <= 0:
            return None
        fx, fy = (position.x() - left) / span_x, (position.y() - top) / span_y
        return (fx, fy) if 0 <= fx < 1 and 0 <= fy < 1 else None

    def _stamp(self, frame: av.VideoFrame, arrived: float) -> av.VideoFrame:
        pts = max(round((arrived - _EPOCH) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self._sent_at = time.monotonic()
        self.frames_delivered += 1
        self.width, self.height = frame.width, frame.height
        return frame

    def _farewell(self) -> av.VideoFrame:
        """What a recv() pending at stop() returns: nothing new, so the sender lives on."""
        if self._last_output is None and self._stopped_pending is not None:
            with contextlib.suppress(UnsupportedFrame):
                self._last_output = self.screen_converter.convert(self._stopped_pending)
        self._stopped_pending = None
        if self._last_output is None:
            self._last_output = av.VideoFrame(320, 180, "yuv420p")
            for plane, level in zip(self._last_output.planes, (16, 128, 128), strict=True):
                np.frombuffer(plane, np.uint8)[:] = level
        return self._stamp(self._last_output, time.monotonic())

    # The end --------------------------------------------------------------------

    def _stop_watching(self) -> None:
        watch, self._stream_watch = self._stream_watch, None
        if watch is not None:
            watch.stop()
            watch.deleteLater()
        requests, self._request_watch = self._request_watch, None
        if requests is not None:
            requests.stop()
            requests.deleteLater()

    def stop(self) -> None:
        """Stop the capture and end the track (idempotent)."""
        self._stop_watching()
        live = self.readyState == "live"
        if live:
            self._stopped_pending = self._pending
            with contextlib.suppress(RuntimeError, TypeError):
                if isinstance(self.capture, QScreenCapture):
                    self.capture.errorOccurred.disconnect(self._capture_events.on_screen_error)
                else:
                    self.capture.errorOccurred.disconnect(self._capture_events.on_window_error)
            with contextlib.suppress(RuntimeError, TypeError):
                app = QGuiApplication.instance()
                if isinstance(app, QGuiApplication):
                    app.screenRemoved.disconnect(self._capture_events.on_screen_removed)
            self.capture.stop()
            self.session.setVideoSink(None)  # type: ignore[arg-type]
            if isinstance(self.capture, QScreenCapture):
                self.session.setScreenCapture(None)  # type: ignore[arg-type]
            else:
                self.session.setWindowCapture(None)  # type: ignore[arg-type]
        super().stop()
        if live:
            # The sink's bridge refers back to this track: drop it now (it is disconnected),
            # so that the track and its Qt objects go when the owner lets go, on this thread,
            # not when the cycle collector runs, on whatever thread that happens to be.
            del self._bridge
