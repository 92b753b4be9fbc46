"""Building QVideoFrames for the camera tests (there is no camera on the test machines)."""

from __future__ import annotations

import functools

import av
import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtMultimedia import QVideoFrame, QVideoFrameFormat

from gui.media.pattern import PatternVideoTrack

PixelFormat = QVideoFrameFormat.PixelFormat

#: Qt pixel format -> (FFmpeg format with the same memory layout, Qt plane of each av plane).
LAYOUTS: dict[PixelFormat, tuple[str, tuple[int, ...]]] = {
    PixelFormat.Format_NV12: ("nv12", (0, 1)),
    PixelFormat.Format_NV21: ("nv21", (0, 1)),
    PixelFormat.Format_YUV420P: ("yuv420p", (0, 1, 2)),
    PixelFormat.Format_YV12: ("yuv420p", (0, 2, 1)),
    PixelFormat.Format_YUV422P: ("yuv422p", (0, 1, 2)),
    PixelFormat.Format_YUYV: ("yuyv422", (0,)),
    PixelFormat.Format_UYVY: ("uyvy422", (0,)),
    PixelFormat.Format_BGRA8888: ("bgra", (0,)),
    PixelFormat.Format_BGRX8888: ("bgr0", (0,)),
    PixelFormat.Format_RGBA8888: ("rgba", (0,)),
    PixelFormat.Format_RGBX8888: ("rgb0", (0,)),
    PixelFormat.Format_XRGB8888: ("0rgb", (0,)),
    PixelFormat.Format_ARGB8888: ("argb", (0,)),
    PixelFormat.Format_Y8: ("gray", (0,)),
}


def row_bytes(frame: av.VideoFrame, index: int) -> int:
    """Meaningful bytes in one row of plane ``index`` (without FFmpeg's line padding)."""
    name = frame.format.name
    plane = frame.planes[index]
    if name in {"yuyv422", "uyvy422"}:
        return 4 * -(-frame.width // 2)
    if name in {"bgra", "bgr0", "rgba", "rgb0", "0rgb", "argb"}:
        return 4 * frame.width
    if name in {"nv12", "nv21"} and index == 1:
        return 2 * -(-frame.width // 2)
    return plane.width


def qvideoframe_from_av(
    frame: av.VideoFrame,
    pixel_format: PixelFormat,
    color_range: QVideoFrameFormat.ColorRange | None = None,
) -> QVideoFrame:
    """A QVideoFrame in ``pixel_format`` holding ``frame``'s picture (converted by FFmpeg).

    Planes are copied row by row into Qt's buffer, whose ``bytesPerLine`` differs from
    FFmpeg's line size (Qt aligns to 16, FFmpeg to 32 or 64), as a camera's would.
    """
    av_format, qt_planes = LAYOUTS[pixel_format]
    source = frame if frame.format.name == av_format else frame.reformat(format=av_format)
    surface = QVideoFrameFormat(QSize(frame.width, frame.height), pixel_format)
    if color_range is not None:
        surface.setColorRange(color_range)
    out = QVideoFrame(surface)
    assert out.map(QVideoFrame.MapMode.WriteOnly), "cannot map a new QVideoFrame"
    try:
        for av_index, plane in enumerate(source.planes):
            qt_index = qt_planes[av_index]
            stride = out.bytesPerLine(qt_index)
            width = row_bytes(source, av_index)
            rows = plane.height
            target = np.ndarray(
                (rows, width), dtype=np.uint8, buffer=out.bits(qt_index), strides=(stride, 1)
            )
            data = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
            target[...] = data[:rows, :width]
    finally:
        out.unmap()
    return out


def pattern_qframe(
    number: int,
    pixel_format: PixelFormat = PixelFormat.Format_NV12,
    width: int = 640,
    height: int = 480,
) -> QVideoFrame:
    """Test pattern frame ``number`` (readable by ``decode_frame_number``) as a QVideoFrame."""
    return qvideoframe_from_av(_pattern(width, height).make_frame(number), pixel_format)


@functools.cache
def _pattern(width: int, height: int) -> PatternVideoTrack:
    return PatternVideoTrack(width, height)


def solid_qframe(
    rgb: tuple[int, int, int], pixel_format: PixelFormat, size: int = 64
) -> QVideoFrame:
    """A frame of one colour, given as 8-bit R, G, B."""
    array = np.empty((size, size, 3), dtype=np.uint8)
    array[...] = rgb
    return qvideoframe_from_av(av.VideoFrame.from_ndarray(array, format="rgb24"), pixel_format)
