"""A captured screen frame → a yuv420p ``av.VideoFrame`` within the size a share sends, and the
pointer's arrow drawn into it."""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PySide6.QtMultimedia import (
    QVideoFrame,
    QVideoFrameFormat,
)

from gui.devices.camera import FrameConverter, UnsupportedFrame

PixelFormat = QVideoFrameFormat.PixelFormat

#: The largest picture a share sends; larger screens are scaled down to fit, aspect kept.
MAX_SIZE = (1920, 1080)

#: swscale filter for downscaling: an area average keeps text legible without aliasing.
SCALE_INTERPOLATION = "AREA"

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
