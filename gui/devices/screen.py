"""Screen sharing: a screen or a window, through Qt Multimedia, as an aiortc video track.

``QScreenCapture`` (a whole screen) or ``QWindowCapture`` (one window) →
``QMediaCaptureSession`` → ``QVideoSink`` → :class:`ScreenTrack`, a
:class:`~gui.devices.camera.VideoSinkTrack` tuned for what is on a screen:

* **Frame rate**: about 15 frames/s (:data:`SHARE_FPS`), favouring sharp text over motion.
  The capture itself is asked for no more (``setMaximumFrameRate``, Qt 6.12), and
  :meth:`ScreenTrack.recv` takes a frame no sooner than 0.9 / fps after the previous one and
  keeps only the newest, so a source that delivers faster is thinned out rather than
  queued, and a frame is never held back waiting for a slot of a schedule.
* **Size**: full resolution up to 1920x1080 (:data:`MAX_SIZE`); a larger screen is scaled down
  to fit, keeping its aspect (swscale's area filter, which keeps thin lines of text from
  aliasing). Output is yuv420p, stamped at 90 kHz from ``time.monotonic()`` (one origin for
  every screen track, so the timestamps on the call's screen slot keep increasing from one
  share to the next).
* **Cursor**: Qt's X11 capture (``XShmGetImage``) and its fallback (``QScreen.grabWindow``)
  leave the mouse pointer out of the picture, so the track draws a small arrow (black outline,
  white fill, in the luma plane, neutral chroma) where ``QCursor.pos()`` is. Set
  ``draw_cursor=False`` for a capture backend that draws it itself.
* **Cost**: capture runs on Qt's own grabbing thread; the copy out of the mapped frame is done
  on the Qt thread (under a millisecond at 1080p), the colour conversion and scaling in the
  event loop's default executor, beside aiortc's encoder jobs, so the window stays responsive.

Where capture cannot work, nothing black is ever sent: :func:`capture_supported` says so
plainly, before anything starts (a Wayland session without PipeWire or the desktop portal, an
app without a display), and a :class:`ScreenTrack` in that situation, or whose capture fails
later (the shared window closed, the screen unplugged), emits the pyee event ``"lost"``
(reason) once and sets :attr:`ScreenTrack.lost_reason`, like
:class:`~gui.devices.camera.CameraTrack`: its owner then calls ``CallSession.stop_screen()``.

On Wayland, Qt captures through the desktop portal (PipeWire) and the system shows its own
picker: the screen chosen in the app is then only a hint. Qt's X11 backend is used when
``XDG_SESSION_TYPE`` is ``x11`` (any X11 desktop session); on an X server without a session
type (Xvfb, a bare ``startx``) :func:`prefer_x11_capture` sets it, since the fallback
(``grabWindow`` on a thread) costs several times more CPU.

Sources for a picker: :func:`list_sources` (screens, then windows where the platform can
list them) as plain :class:`ScreenSource` / :class:`WindowSource` values;
:func:`make_thumbnail` and :func:`capture_thumbnail` give their pictures, :func:`probe` tries
a real capture. Everything here lives on the Qt main thread (the asyncio loop under qasync).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Literal

import av
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError
from av.video.reformatter import VideoReformatter
from PySide6.QtCore import QObject, QPoint, Qt, QTimer, Slot
from PySide6.QtGui import QCursor, QGuiApplication, QImage, QScreen, QWindow
from PySide6.QtMultimedia import (
    QCapturableWindow,
    QMediaCaptureSession,
    QScreenCapture,
    QVideoFrame,
    QVideoFrameFormat,
    QVideoSink,
    QWindowCapture,
)

from gui.devices.camera import FrameConverter, UnsupportedFrame, VideoSinkTrack

logger = logging.getLogger(__name__)

PixelFormat = QVideoFrameFormat.PixelFormat

#: Frames per second a share sends: enough for scrolling and pointing, cheap at 1080p.
SHARE_FPS = 15.0
#: The largest picture a share sends; larger screens are scaled down to fit, aspect kept.
MAX_SIZE = (1920, 1080)
#: With nothing new from the capture for this long, the last frame is sent again (a PipeWire
#: capture of a still screen delivers nothing; the receiver and the bandwidth estimate
#: still want a picture now and then).
REPEAT_AFTER_S = 1.0
#: Thumbnails for the picker are this wide.
THUMBNAIL_WIDTH = 320
#: swscale filter for downscaling: an area average keeps text legible without aliasing.
SCALE_INTERPOLATION = "AREA"

#: The origin of every screen track's timestamps.
_EPOCH = time.monotonic()

#: Packed 32-bit formats a screen capture delivers → FFmpeg format with the same byte order.
_PACKED_FORMATS: dict[PixelFormat, str] = {
    PixelFormat.Format_BGRX8888: "bgr0",
    PixelFormat.Format_BGRA8888: "bgra",
    PixelFormat.Format_BGRA8888_Premultiplied: "bgra",
    PixelFormat.Format_RGBX8888: "rgb0",
    PixelFormat.Format_RGBA8888: "rgba",
    PixelFormat.Format_XRGB8888: "0rgb",
    PixelFormat.Format_ARGB8888: "argb",
    PixelFormat.Format_ARGB8888_Premultiplied: "argb",
    PixelFormat.Format_XBGR8888: "0bgr",
    PixelFormat.Format_ABGR8888: "abgr",
}

_PORTAL = "org.freedesktop.portal.Desktop"


# Sources ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreenSource:
    """One screen, as ``QGuiApplication.screens()`` lists it.

    ``geometry`` is (x, y, width, height) in the desktop's logical pixels; the captured
    picture is ``device_pixel_ratio`` times larger.
    """

    index: int
    name: str
    geometry: tuple[int, int, int, int]
    primary: bool = False
    device_pixel_ratio: float = 1.0
    kind: Literal["screen"] = "screen"

    @property
    def size(self) -> tuple[int, int]:
        """The captured picture's size in device pixels, before any scaling."""
        ratio = self.device_pixel_ratio
        return round(self.geometry[2] * ratio), round(self.geometry[3] * ratio)

    @property
    def label(self) -> str:
        """What a picker shows: ``Screen 1: HDMI-1 (1920x1080)``."""
        width, height = self.size
        return f"Screen {self.index + 1}: {self.name} ({width}x{height})"


@dataclass(frozen=True, slots=True)
class WindowSource:
    """One window that can be captured.

    ``id`` is the native window id when it is known (a window of this app, see
    :func:`window_source`); Qt does not tell it for the windows it lists. ``handle`` is what
    ``QWindowCapture`` takes; it is not part of comparisons.
    """

    index: int
    title: str
    id: int | None = None
    handle: QCapturableWindow | None = field(default=None, compare=False, repr=False)
    kind: Literal["window"] = "window"

    @property
    def label(self) -> str:
        """What a picker shows: the window's title."""
        return self.title or f"Window {self.index + 1}"


CaptureSource = ScreenSource | WindowSource


def _screen_source(index: int, screen: QScreen) -> ScreenSource:
    geometry = screen.geometry()
    return ScreenSource(
        index=index,
        name=screen.name(),
        geometry=(geometry.x(), geometry.y(), geometry.width(), geometry.height()),
        primary=screen is QGuiApplication.primaryScreen(),
        device_pixel_ratio=float(screen.devicePixelRatio()),
    )


def list_screens() -> list[ScreenSource]:
    """The screens now, in Qt's order (index 0 first); empty without a QGuiApplication."""
    if QGuiApplication.instance() is None:
        return []
    return [_screen_source(i, s) for i, s in enumerate(QGuiApplication.screens())]


def list_windows() -> list[WindowSource]:
    """The windows that can be captured, where the platform lists them; else empty.

    Qt lists windows on X11 (those a window manager announces in ``_NET_CLIENT_LIST``: none
    on a bare X server), Windows and macOS. On Wayland the portal's own picker chooses.
    """
    support = capture_supported()
    if not support.supported or not support.windows:
        return []
    return [
        WindowSource(index=i, title=w.description(), handle=w)
        for i, w in enumerate(QWindowCapture.capturableWindows())
        if w.isValid()
    ]


def list_sources() -> list[CaptureSource]:
    """Everything a picker offers: the screens, then the windows."""
    return [*list_screens(), *list_windows()]


def window_source(window: QWindow, index: int = -1) -> WindowSource:
    """One of this app's own windows as a source (its id is known: the cursor is drawn)."""
    return WindowSource(
        index=index,
        title=window.title(),
        id=int(window.winId()),
        handle=QCapturableWindow(window),
    )


def _find_screen(source: ScreenSource) -> QScreen | None:
    """The QScreen of ``source``: by name first (the list may have changed), then by index."""
    screens = QGuiApplication.screens()
    for screen in screens:
        if screen.name() == source.name:
            return screen
    return screens[source.index] if 0 <= source.index < len(screens) else None


def _window_of(source: WindowSource) -> QWindow | None:
    """A QWindow for ``source`` (this app's own, or a foreign one) when its id is known."""
    if source.id is None:
        return None
    for window in QGuiApplication.allWindows():
        if int(window.winId()) == source.id:
            return window
    return QWindow.fromWinId(source.id)


# Can capture work here? ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaptureSupport:
    """Whether screen sharing can work here, and if not, why, in words for the user.

    ``backend`` names Qt's capture path: ``x11`` (shared memory), ``grabwindow`` (Qt's
    fallback: works on any X server, slower), ``pipewire`` (Wayland, through the desktop
    portal), ``windows``/``macos``, or what is missing. ``windows`` tells whether single
    windows can be listed; ``system_picker`` that the system asks the user which screen or
    window to share (the portal), whatever the app chose. ``reason`` is empty when supported.
    """

    supported: bool
    backend: str
    reason: str = ""
    windows: bool = False
    system_picker: bool = False
    #: The size of the frame :func:`probe` captured (None from :func:`capture_supported`).
    frame_size: tuple[int, int] | None = None


def prefer_x11_capture() -> bool:
    """On an X server with no session type set, set ``XDG_SESSION_TYPE=x11``; True if it did.

    Qt picks its shared-memory X11 capture only when ``XDG_SESSION_TYPE`` is ``x11``, which
    every X11 desktop session sets; without it (Xvfb, ``startx``, ssh -X) Qt falls back to
    ``grabWindow`` on a thread, which costs about four times the CPU. Nothing is changed
    under Wayland or when the variable is set already. Must run before the capture is made.
    """
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    on_x = bool(os.environ.get("DISPLAY")) and not os.environ.get("WAYLAND_DISPLAY")
    if on_x and session in ("", "tty", "unspecified"):
        os.environ["XDG_SESSION_TYPE"] = "x11"
        return True
    return False


def _pipewire_available() -> bool:
    """Whether libpipewire-0.3, which Qt loads at run time for Wayland capture, can be loaded."""
    try:
        ctypes.CDLL("libpipewire-0.3.so.0")
    except OSError:
        return False
    return True


def _portal_available() -> bool:
    """Whether the session bus has (or can start) the desktop portal."""
    try:
        from PySide6.QtDBus import QDBusConnection, QDBusMessage
    except ImportError:  # pragma: no cover - QtDBus is part of PySide6-Essentials
        return False
    name = "parley-portal-check"
    # By address when the session says where its bus is (libdbus reads that variable once
    # per process); else the default session bus.
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    bus = QDBusConnection.connectToBus(
        address if address else QDBusConnection.BusType.SessionBus, name
    )
    try:
        if not bus.isConnected():
            return False
        for method in ("NameHasOwner", "ListActivatableNames"):
            args = [_PORTAL] if method == "NameHasOwner" else []
            message = QDBusMessage.createMethodCall(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", method
            )
            if args:
                message.setArguments(args)
            reply = bus.call(message, timeout=2000)
            if reply.type() != QDBusMessage.MessageType.ReplyMessage or not reply.arguments():
                continue
            answer = reply.arguments()[0]
            if answer is True or (isinstance(answer, list) and _PORTAL in answer):
                return True
        return False
    finally:
        QDBusConnection.disconnectFromBus(name)


def capture_supported() -> CaptureSupport:
    """Whether screen sharing can work in this session, without starting any capture.

    Checks the Qt platform and the session type: no display (``offscreen``) → no; Wayland →
    only through PipeWire and the desktop portal, both checked (Qt otherwise falls back to
    grabbing the X11 root window, which shows black on Wayland); X11, Windows, macOS → yes.
    Needs a ``QGuiApplication``. Calls :func:`prefer_x11_capture` first, so that what it
    reports is what a capture made afterwards gets.
    """
    prefer_x11_capture()
    if QGuiApplication.instance() is None:
        return CaptureSupport(False, "none", "Screen sharing needs the app to be running.")
    platform = QGuiApplication.platformName()
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    if platform in ("offscreen", "minimal", "vnc", "linuxfb"):
        return CaptureSupport(
            False,
            "none",
            f"There is no screen to share: the app runs without a display ({platform}).",
        )
    if session == "wayland" or platform.startswith("wayland"):
        missing = []
        if not _pipewire_available():
            missing.append("PipeWire (libpipewire-0.3)")
        if not _portal_available():
            missing.append("the desktop portal (xdg-desktop-portal)")
        if missing:
            return CaptureSupport(
                False,
                "pipewire",
                "Screen sharing on Wayland goes through the desktop portal, and this system "
                f"lacks {' and '.join(missing)}. Install it, or log in to an X11 session.",
            )
        return CaptureSupport(True, "pipewire", system_picker=True)
    if platform == "xcb":
        if not QGuiApplication.screens():
            return CaptureSupport(False, "x11", "The X server reports no screen to share.")
        backend = "x11" if session == "x11" else "grabwindow"
        return CaptureSupport(True, backend, windows=backend == "x11")
    if platform == "windows":
        return CaptureSupport(True, "windows", windows=True)
    if platform == "cocoa":
        return CaptureSupport(True, "macos", windows=True)
    return CaptureSupport(
        False, platform, f"Screen sharing is not available on this platform ({platform})."
    )


# Scaling and the cursor --------------------------------------------------------------


def fit_within(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The size a ``width`` x ``height`` picture is sent at: within the maximum, aspect kept.

    Never larger than the source; even sides (yuv420p), at least 2x2.
    """
    scale = min(1.0, max_width / width, max_height / height)
    out_width = max(2, int(width * scale + 1e-6) & ~1)
    out_height = max(2, int(height * scale + 1e-6) & ~1)
    return out_width, out_height


class ScreenConverter:
    """A screen's ``QVideoFrame`` → yuv420p ``av.VideoFrame`` within ``max_width`` x ``max_height``.

    Split in two so that the heavy part can leave the Qt thread: :meth:`copy` maps the frame
    and copies its pixels out (packed 32-bit formats, what screen captures give; anything
    else through :class:`FrameConverter`), :meth:`scale` converts and scales with one
    swscale pass (an odd side is cropped by one pixel rather than resampled). One converter
    is used by one thread at a time.
    """

    def __init__(self, max_width: int = MAX_SIZE[0], max_height: int = MAX_SIZE[1]) -> None:
        self.max_width = max_width
        self.max_height = max_height
        self._reformatter = VideoReformatter()
        self._fallback = FrameConverter()

    def copy(self, frame: QVideoFrame) -> av.VideoFrame:
        """The frame's pixels in an ``av.VideoFrame`` of even size (Qt thread)."""
        if not frame.isValid():
            raise UnsupportedFrame("invalid video frame")
        av_format = _PACKED_FORMATS.get(frame.pixelFormat())
        if av_format is not None:
            copied = self._copy_packed(frame, av_format)
            if copied is not None:
                return copied
        return self._fallback.convert(frame)

    @staticmethod
    def _copy_packed(frame: QVideoFrame, av_format: str) -> av.VideoFrame | None:
        if not frame.map(QVideoFrame.MapMode.ReadOnly):
            return None
        try:
            width, height = frame.width() & ~1, frame.height() & ~1
            stride = frame.bytesPerLine(0)
            source = frame.bits(0)
            if width < 2 or height < 2 or len(source) < (height - 1) * stride + 4 * width:
                return None
            out = av.VideoFrame(width, height, av_format)
            plane = out.planes[0]
            rows = np.ndarray((height, 4 * width), np.uint8, buffer=source, strides=(stride, 1))
            np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, : 4 * width] = rows
            return out
        finally:
            frame.unmap()

    def scale(self, frame: av.VideoFrame) -> av.VideoFrame:
        """To yuv420p within the maximum size (any thread)."""
        width, height = fit_within(frame.width, frame.height, self.max_width, self.max_height)
        if (width, height) == (frame.width, frame.height) and frame.format.name == "yuv420p":
            return frame
        return self._reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="yuv420p",
            interpolation=SCALE_INTERPOLATION,
        )

    def convert(self, frame: QVideoFrame) -> av.VideoFrame:
        """Both steps at once."""
        return self.scale(self.copy(frame))


# The arrow drawn for the pointer: X outline (black), . fill (white), space transparent.
_ARROW = (
    "X           ",
    "XX          ",
    "X.X         ",
    "X..X        ",
    "X...X       ",
    "X....X      ",
    "X.....X     ",
    "X......X    ",
    "X.......X   ",
    "X........X  ",
    "X.........X ",
    "X......XXXXX",
    "X...X..X    ",
    "X..XX..X    ",
    "X.X  X..X   ",
    "XX   X..X   ",
    "X     X..X  ",
    "      X..X  ",
    "       XX   ",
)
_ARROW_OUTLINE = np.array([[c == "X" for c in row] for row in _ARROW])
_ARROW_FILL = np.array([[c == "." for c in row] for row in _ARROW])
CURSOR_BLACK_Y, CURSOR_WHITE_Y = 16, 235


def draw_pointer(frame: av.VideoFrame, x: int, y: int) -> bool:
    """Draw the pointer's arrow with its tip at (``x``, ``y``) into a yuv420p frame.

    Clipped at the edges; returns False (nothing drawn) when the tip is outside the frame.
    """
    if not (0 <= x < frame.width and 0 <= y < frame.height):
        return False
    rows, cols = _ARROW_OUTLINE.shape
    bottom, right = min(frame.height, y + rows), min(frame.width, x + cols)
    outline = _ARROW_OUTLINE[: bottom - y, : right - x]
    fill = _ARROW_FILL[: bottom - y, : right - x]
    luma_plane = frame.planes[0]
    luma = np.frombuffer(luma_plane, np.uint8).reshape(-1, luma_plane.line_size)
    area = luma[y:bottom, x:right]
    area[outline] = CURSOR_BLACK_Y
    area[fill] = CURSOR_WHITE_Y
    # Neutral chroma under the arrow, so it is not tinted by what it covers.
    covered = outline | fill
    chroma_rows = np.zeros(((bottom + 1) // 2 - y // 2, (right + 1) // 2 - x // 2), bool)
    ys, xs = np.nonzero(covered)
    chroma_rows[(ys + y) // 2 - y // 2, (xs + x) // 2 - x // 2] = True
    for plane in frame.planes[1:3]:
        chroma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        chroma[y // 2 : (bottom + 1) // 2, x // 2 : (right + 1) // 2][chroma_rows] = 128
    return True


def _scale_and_draw(
    converter: ScreenConverter, frame: av.VideoFrame, cursor: tuple[float, float] | None
) -> tuple[av.VideoFrame, tuple[int, int] | None]:
    """Scale to yuv420p and draw the pointer (``cursor`` as fractions of the picture)."""
    out = converter.scale(frame)
    if cursor is not None:
        x, y = round(cursor[0] * out.width), round(cursor[1] * out.height)
        if draw_pointer(out, x, y):
            return out, (x, y)
    return out, None


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
        self.capture.start()

    # Events ---------------------------------------------------------------------

    def _on_frame(self, frame: QVideoFrame) -> None:
        if self.first_frame_at is None and self.readyState == "live" and frame.isValid():
            self.first_frame_at = time.monotonic()
        super()._on_frame(frame)

    def _capture_failed(self, message: str) -> None:
        if isinstance(self.source, WindowSource):
            reason = f"The window “{self.source.label}” cannot be captured any more ({message})."
        else:
            reason = f"{self.source.label} cannot be captured ({message})."
        self._report_lost(reason)

    def _screen_removed(self, screen: QScreen) -> None:
        if screen is self._screen:
            self._report_lost(f"{self.source.label} was disconnected.")

    def _report_lost(self, reason: str) -> None:
        if self.lost_reason is not None or self.readyState != "live":
            return
        self.lost_reason = reason
        logger.warning("screen share lost: %s", reason)
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

    def stop(self) -> None:
        """Stop the capture and end the track (idempotent)."""
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


# Pictures for the picker -----------------------------------------------------------


def make_thumbnail(source: CaptureSource, width: int = THUMBNAIL_WIDTH) -> QImage:
    """A ``width``-pixel-wide picture of ``source`` for the picker; a null QImage if none.

    Uses ``QScreen.grabWindow``: screens, and windows whose id is known. Nothing on Wayland
    (the portal shows its own previews); for windows listed by Qt use
    :func:`capture_thumbnail`.
    """
    support = capture_supported()
    if not support.supported or support.system_picker:
        return QImage()
    if isinstance(source, ScreenSource):
        screen = _find_screen(source)
        pixmap = screen.grabWindow(0) if screen is not None else None
    else:
        window = _window_of(source)
        screen = window.screen() if window is not None else QGuiApplication.primaryScreen()
        pixmap = (
            screen.grabWindow(source.id) if screen is not None and source.id is not None else None
        )
    if pixmap is None or pixmap.isNull():
        return QImage()
    return pixmap.toImage().scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)


async def _first_frame(source: CaptureSource, within_s: float) -> tuple[QImage | None, str]:
    """One frame through the real capture path: (picture, "") or (None, why not)."""
    track = ScreenTrack(source, draw_cursor=False, start=False)
    got: asyncio.Future[QVideoFrame] = asyncio.get_running_loop().create_future()

    def on_frame(frame: QVideoFrame) -> None:
        if frame.isValid() and not got.done():
            got.set_result(QVideoFrame(frame))

    def on_lost(reason: str) -> None:
        if not got.done():
            got.set_exception(RuntimeError(reason))

    track.sink.videoFrameChanged.connect(on_frame)
    track.on("lost", on_lost)
    try:
        track.start()
        frame = await asyncio.wait_for(got, within_s)
        return frame.toImage(), ""
    except TimeoutError:
        return None, f"The capture delivered no picture within {within_s:g} s."
    except RuntimeError as exc:
        return None, str(exc)
    finally:
        with contextlib.suppress(RuntimeError, TypeError):
            track.sink.videoFrameChanged.disconnect(on_frame)
        track.stop()


async def capture_thumbnail(
    source: CaptureSource, width: int = THUMBNAIL_WIDTH, within_s: float = 3.0
) -> QImage:
    """Like :func:`make_thumbnail`, from one frame of a real capture (any window)."""
    image, _ = await _first_frame(source, within_s)
    if image is None or image.isNull():
        return QImage()
    return image.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)


async def probe(source: CaptureSource | None = None, within_s: float = 3.0) -> CaptureSupport:
    """Try a real capture of ``source`` (the primary screen by default) for one frame.

    Returns :func:`capture_supported`'s answer when that is already no; otherwise whether
    a frame came, with its size. On Wayland this shows the portal's dialog: call it when the
    user asks to share, not to decide whether to show the control.
    """
    support = capture_supported()
    if not support.supported:
        return support
    if source is None:
        screens = list_screens()
        if not screens:
            return CaptureSupport(False, support.backend, "There is no screen to share.")
        source = next((s for s in screens if s.primary), screens[0])
    image, reason = await _first_frame(source, within_s)
    if image is None:
        return CaptureSupport(
            False, support.backend, reason, support.windows, support.system_picker
        )
    return CaptureSupport(
        True,
        support.backend,
        "",
        support.windows,
        support.system_picker,
        frame_size=(image.width(), image.height()),
    )


__all__ = [
    "MAX_SIZE",
    "SHARE_FPS",
    "CaptureSource",
    "CaptureSupport",
    "ScreenConverter",
    "ScreenSource",
    "ScreenTrack",
    "WindowSource",
    "active_captures",
    "capture_supported",
    "capture_thumbnail",
    "draw_pointer",
    "fit_within",
    "list_screens",
    "list_sources",
    "list_windows",
    "make_thumbnail",
    "prefer_x11_capture",
    "probe",
    "window_source",
]
