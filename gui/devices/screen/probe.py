"""One frame through the real capture path: live thumbnails and a real check that capture works."""

from __future__ import annotations

import asyncio
import contextlib

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtMultimedia import (
    QVideoFrame,
)

from gui.devices.screen.sources import THUMBNAIL_WIDTH, CaptureSource, list_screens
from gui.devices.screen.support import CaptureSupport, capture_supported
from gui.devices.screen.track import ScreenTrack


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
