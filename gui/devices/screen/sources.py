"""The screens and windows a share can show, as plain values, and their pictures for a picker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QScreen, QWindow
from PySide6.QtMultimedia import (
    QCapturableWindow,
    QWindowCapture,
)

from gui.devices.screen.support import capture_supported

#: Thumbnails for the picker are this wide.
THUMBNAIL_WIDTH = 320


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
