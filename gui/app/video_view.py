"""A widget that shows video frames: remote ``av.VideoFrame``s or the local preview.

Only the newest frame is kept (older ones are replaced, so there is never a
backlog). Painting converts it once, with PyAV, straight to the size it is
drawn at and to BGRA, and draws that image unscaled: on these machines, with
no GPU, this costs about 1.8 ms a 720p frame against 2.8 ms for
``QVideoFrame.paint`` (which converts the whole frame, then scales), and PyAV
releases the GIL while it scales. A frame is converted at most once per size;
the self-view (mirrored, as in every video app) pays for its small size only.
See bench/app.py for the figures.
"""

from __future__ import annotations

import time

import av
from av.video.reformatter import Interpolation, VideoReformatter
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QTransform
from PySide6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor("#0b0d12")


class VideoView(QWidget):
    """Shows the newest frame it was given, letterboxed, optionally mirrored."""

    #: Frames started (after none, or after ``clear``): whoever shows an avatar instead hides it.
    started = Signal()
    #: A click on the picture (the call window swaps the large and the small view).
    clicked = Signal()

    def __init__(self, parent: QWidget | None = None, *, mirrored: bool = False) -> None:
        super().__init__(parent)
        self.mirrored = mirrored
        self.frame: av.VideoFrame | None = None
        #: While True, frames given are dropped: a media server stopped sending this video,
        #: and frames still on their way would leave a late picture frozen where the view
        #: shows nothing (see :meth:`pause`).
        self.paused = False
        self.frames_shown = 0
        self.frames_given = 0
        self.last_frame_at: float | None = None
        self._reformatter = VideoReformatter()
        self._image: QImage | None = None
        self._image_frame: av.VideoFrame | None = None
        self._converted: av.VideoFrame | None = None  # keeps the image's pixels alive
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(160, 90)

    def show_frame(self, frame: av.frame.Frame) -> None:
        """Take a new frame (a receiver's listener calls this for every frame)."""
        if self.paused or not isinstance(frame, av.VideoFrame):
            return
        first = self.frame is None
        self.frame = frame
        self.frames_given += 1
        self.last_frame_at = time.monotonic()
        if first:
            self.started.emit()
        self.update()

    def clear(self) -> None:
        """Show nothing (the camera went off)."""
        self.frame = None
        self._image = self._image_frame = self._converted = None
        self.update()

    def pause(self, paused: bool) -> None:
        """Show nothing and take no frames until unpaused (a video no longer sent), or take
        them again. Pausing clears: the frames still on their way are dropped, not shown."""
        self.paused = paused
        if paused:
            self.clear()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Report a click."""
        self.clicked.emit()
        super().mousePressEvent(event)

    def sizeHint(self) -> QSize:
        """16:9 by default."""
        return QSize(640, 360)

    def target_rect(self) -> QRectF:
        """Where the frame is drawn: as large as fits, aspect kept, centred, whole pixels."""
        if self.frame is None:
            return QRectF(self.rect())
        size = QSize(self.frame.width, self.frame.height).scaled(
            self.size(), Qt.AspectRatioMode.KeepAspectRatio
        )
        width, height = max(2, size.width()), max(2, size.height())
        left = (self.width() - width) // 2
        top = (self.height() - height) // 2
        return QRectF(left, top, width, height)

    def image(self) -> QImage | None:
        """The newest frame converted for the current size (cached until either changes)."""
        frame = self.frame
        if frame is None:
            return None
        target = self.target_rect()
        width, height = int(target.width()), int(target.height())
        cached = self._image
        if (
            cached is not None
            and self._image_frame is frame
            and (cached.width(), cached.height()) == (width, height)
        ):
            return cached
        small = width * height < 320 * 180
        converted = self._reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="bgra",
            interpolation=Interpolation.FAST_BILINEAR if small else Interpolation.BILINEAR,
        )
        plane = converted.planes[0]
        image = QImage(
            memoryview(plane), width, height, plane.line_size, QImage.Format.Format_RGB32
        )
        self._image, self._image_frame, self._converted = image, frame, converted
        return image

    def paintEvent(self, event: QPaintEvent) -> None:
        """Black bars, then the frame."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        image = self.image()
        if image is not None:
            target = self.target_rect()
            if self.mirrored:
                painter.setTransform(
                    QTransform().translate(self.width(), 0).scale(-1, 1), combine=True
                )
                target.moveLeft(self.width() - target.right())
            painter.drawImage(QPointF(target.left(), target.top()), image)
            self.frames_shown += 1
        painter.end()
