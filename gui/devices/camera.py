"""The camera as an aiortc video track, through Qt Multimedia.

``QCamera`` → ``QMediaCaptureSession`` → ``QVideoSink``; every ``videoFrameChanged`` replaces
the one frame the track holds (never a backlog), and :meth:`VideoSinkTrack.recv` converts
the newest frame to a yuv420p ``av.VideoFrame`` stamped from a monotonic clock at 90 kHz.
Conversion happens in ``recv()``, so frames nobody asks for cost nothing.

:func:`video_frame_to_av` (and :class:`FrameConverter`, which keeps the scaler between
frames) is the ``QVideoFrame`` → ``av.VideoFrame`` step on its own: tests and the local
preview can use it with frames they build.

:class:`VideoSinkTrack` is the sink→track part (feed its ``sink`` with ``setVideoFrame``);
:class:`CameraTrack` adds the camera and reports, through the pyee event ``"lost"`` (one
argument: the reason), a camera that fails or is unplugged, so that the owner can call
``CallSession.replace_camera(None)``. The track itself keeps waiting for frames until it is
stopped: raising ``MediaStreamError`` would end the RTP sender for good. For the same
reason, whoever swaps tracks on a running ``RTCRtpSender`` must not stop the old track while
the sender may still be waiting in its ``recv()`` (``stop()`` makes that ``recv()`` raise, as
aiortc's own tracks do, and the sender then never sends again, whatever track it gets next).

Frame rotation and mirroring metadata (``QVideoFrame.rotation()``/``mirrored()``, set by some
mobile camera backends) are not applied.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    MediaStreamError,
    MediaStreamTrack,
)
from av.video.plane import VideoPlane
from av.video.reformatter import VideoReformatter
from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QImage
from PySide6.QtMultimedia import (
    QCamera,
    QCameraDevice,
    QCameraFormat,
    QMediaCaptureSession,
    QVideoFrame,
    QVideoFrameFormat,
    QVideoSink,
)

from gui.devices.catalog import (
    DeviceCatalog,
    DeviceKind,
    DeviceWatch,
    LossReporter,
    device_id,
)

logger = logging.getLogger(__name__)

PixelFormat = QVideoFrameFormat.PixelFormat

#: How many conversion times a track keeps for :attr:`VideoSinkTrack.conversion_ms`.
TIMING_SAMPLES = 300


@dataclass(frozen=True, slots=True)
class _Plane:
    """Bytes per unit of a plane's row, and how many pixels one unit covers (log2)."""

    unit_bytes: int
    x_shift: int = 0

    def row_bytes(self, width: int) -> int:
        return self.unit_bytes * -(-width // (1 << self.x_shift))


@dataclass(frozen=True, slots=True)
class _Layout:
    av_format: str
    planes: tuple[_Plane, ...]
    #: Qt plane index for each av plane (YV12 stores V before U).
    order: tuple[int, ...] | None = None
    yuv: bool = True


_PACKED4 = (_Plane(4),)
_LAYOUTS: dict[PixelFormat, _Layout] = {
    PixelFormat.Format_YUV420P: _Layout("yuv420p", (_Plane(1), _Plane(1, 1), _Plane(1, 1))),
    PixelFormat.Format_YV12: _Layout(
        "yuv420p", (_Plane(1), _Plane(1, 1), _Plane(1, 1)), order=(0, 2, 1)
    ),
    PixelFormat.Format_YUV422P: _Layout("yuv422p", (_Plane(1), _Plane(1, 1), _Plane(1, 1))),
    PixelFormat.Format_YUV420P10: _Layout("yuv420p10le", (_Plane(2), _Plane(2, 1), _Plane(2, 1))),
    PixelFormat.Format_NV12: _Layout("nv12", (_Plane(1), _Plane(2, 1))),
    PixelFormat.Format_NV21: _Layout("nv21", (_Plane(1), _Plane(2, 1))),
    PixelFormat.Format_P010: _Layout("p010le", (_Plane(2), _Plane(4, 1))),
    PixelFormat.Format_P016: _Layout("p016le", (_Plane(2), _Plane(4, 1))),
    PixelFormat.Format_YUYV: _Layout("yuyv422", (_Plane(4, 1),)),
    PixelFormat.Format_UYVY: _Layout("uyvy422", (_Plane(4, 1),)),
    PixelFormat.Format_Y8: _Layout("gray", (_Plane(1),)),
    PixelFormat.Format_Y16: _Layout("gray16le", (_Plane(2),)),
    # Qt names these in memory byte order, as FFmpeg does.
    PixelFormat.Format_BGRA8888: _Layout("bgra", _PACKED4, yuv=False),
    PixelFormat.Format_BGRA8888_Premultiplied: _Layout("bgra", _PACKED4, yuv=False),
    PixelFormat.Format_BGRX8888: _Layout("bgr0", _PACKED4, yuv=False),
    PixelFormat.Format_RGBA8888: _Layout("rgba", _PACKED4, yuv=False),
    PixelFormat.Format_RGBX8888: _Layout("rgb0", _PACKED4, yuv=False),
    PixelFormat.Format_ARGB8888: _Layout("argb", _PACKED4, yuv=False),
    PixelFormat.Format_ARGB8888_Premultiplied: _Layout("argb", _PACKED4, yuv=False),
    PixelFormat.Format_XRGB8888: _Layout("0rgb", _PACKED4, yuv=False),
    PixelFormat.Format_ABGR8888: _Layout("abgr", _PACKED4, yuv=False),
    PixelFormat.Format_XBGR8888: _Layout("0bgr", _PACKED4, yuv=False),
}

#: Pixel formats converted by copying planes (anything else goes through ``toImage()``).
SUPPORTED_PIXEL_FORMATS = frozenset(_LAYOUTS)

#: Camera pixel formats by preference: cheapest to turn into yuv420p first, MJPEG last.
_CAMERA_PREFERENCE = (
    PixelFormat.Format_YUV420P,
    PixelFormat.Format_NV12,
    PixelFormat.Format_YV12,
    PixelFormat.Format_NV21,
    PixelFormat.Format_YUYV,
    PixelFormat.Format_UYVY,
    PixelFormat.Format_BGRA8888,
    PixelFormat.Format_BGRX8888,
    PixelFormat.Format_RGBX8888,
    PixelFormat.Format_XRGB8888,
)


class UnsupportedFrame(ValueError):
    """A video frame that could not be read (invalid, or not mappable and not an image)."""


def _copy_plane(
    source: bytes | bytearray | memoryview,
    source_stride: int,
    rows: int,
    row_bytes: int,
    plane: VideoPlane,
) -> None:
    """Copy ``rows`` rows of ``row_bytes`` bytes, respecting both strides."""
    rows = min(rows, plane.height, (len(source) - row_bytes) // source_stride + 1)
    row_bytes = min(row_bytes, source_stride, plane.line_size)
    if rows <= 0:
        return
    src = np.ndarray((rows, row_bytes), dtype=np.uint8, buffer=source, strides=(source_stride, 1))
    dst = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    dst[:rows, :row_bytes] = src


class FrameConverter:
    """Turns ``QVideoFrame`` into yuv420p ``av.VideoFrame``, reusing one scaler context.

    Formats in :data:`SUPPORTED_PIXEL_FORMATS` are mapped read-only and their planes copied
    (line by line where the strides differ) into a frame of the matching FFmpeg format;
    yuv420p needs nothing more, other formats go through swscale. Full-range YUV is brought
    to the limited range VP8 and H.264 assume. Anything else (MJPEG, GPU-only frames that
    cannot be mapped) is rendered by ``QVideoFrame.toImage()`` first: correct, but slower.
    One converter is for one thread.
    """

    def __init__(self, output_format: str = "yuv420p") -> None:
        self.output_format = output_format
        self._reformatter = VideoReformatter()

    def convert(self, frame: QVideoFrame) -> av.VideoFrame:
        """Convert one frame; raises :class:`UnsupportedFrame` when it cannot be read."""
        if not frame.isValid():
            raise UnsupportedFrame("invalid video frame")
        layout = _LAYOUTS.get(frame.pixelFormat())
        copied = self._copy_mapped(frame, layout) if layout is not None else None
        if copied is None:
            return self._via_image(frame)
        full_range = (
            layout is not None
            and layout.yuv
            and frame.surfaceFormat().colorRange() == QVideoFrameFormat.ColorRange.ColorRange_Full
        )
        if copied.format.name == self.output_format and not full_range:
            return copied
        return self._reformatter.reformat(
            copied,
            format=self.output_format,
            src_color_range="JPEG" if full_range else None,
            dst_color_range="MPEG" if full_range else None,
        )

    def _copy_mapped(self, frame: QVideoFrame, layout: _Layout) -> av.VideoFrame | None:
        if not frame.map(QVideoFrame.MapMode.ReadOnly):
            return None
        try:
            if frame.planeCount() != len(layout.planes):
                return None
            width, height = frame.width(), frame.height()
            out = av.VideoFrame(width, height, layout.av_format)
            order = layout.order or range(len(layout.planes))
            for av_index, qt_index in enumerate(order):
                spec = layout.planes[av_index]
                plane = out.planes[av_index]
                _copy_plane(
                    frame.bits(qt_index),
                    frame.bytesPerLine(qt_index),
                    plane.height,
                    spec.row_bytes(width),
                    plane,
                )
            return out
        finally:
            frame.unmap()

    def _via_image(self, frame: QVideoFrame) -> av.VideoFrame:
        image = frame.toImage()
        if image.isNull():
            raise UnsupportedFrame(f"cannot read a {frame.pixelFormat().name} frame")
        image = image.convertToFormat(QImage.Format.Format_RGBX8888)
        out = av.VideoFrame(image.width(), image.height(), "rgb0")
        _copy_plane(
            memoryview(image.constBits()),
            image.bytesPerLine(),
            image.height(),
            4 * image.width(),
            out.planes[0],
        )
        return self._reformatter.reformat(out, format=self.output_format)


def video_frame_to_av(frame: QVideoFrame, converter: FrameConverter | None = None) -> av.VideoFrame:
    """One ``QVideoFrame`` as a yuv420p ``av.VideoFrame`` (no timestamp set).

    Pass a :class:`FrameConverter` to convert a stream of frames: it keeps the swscale
    context from one frame to the next.
    """
    return (converter or FrameConverter()).convert(frame)


class _SinkBridge(QObject):
    """Receives the sink's frames on the Qt main thread (queued if emitted elsewhere)."""

    def __init__(self, track: VideoSinkTrack) -> None:
        super().__init__()
        self._track = track

    @Slot(QVideoFrame)
    def on_frame(self, frame: QVideoFrame) -> None:
        self._track._on_frame(frame)


class VideoSinkTrack(MediaStreamTrack):
    """A video track fed by a ``QVideoSink``: it keeps only the newest frame.

    Every ``videoFrameChanged`` replaces the frame held (the replaced one counts in
    :attr:`frames_dropped`); :meth:`recv` waits for a frame it has not returned yet, converts
    it with a :class:`FrameConverter`, and stamps it with 90 kHz timestamps taken from
    ``time.monotonic()`` at the frame's arrival (strictly increasing). Frames that cannot be
    converted are logged, counted in :attr:`frames_failed` and skipped.
    """

    kind = "video"

    def __init__(self, sink: QVideoSink | None = None) -> None:
        super().__init__()
        self.sink = sink if sink is not None else QVideoSink()
        self.converter = FrameConverter()
        #: Frames the sink delivered, frames replaced before recv() took them, frames returned.
        self.frames_received = 0
        self.frames_dropped = 0
        self.frames_delivered = 0
        self.frames_failed = 0
        #: Size of the last frame returned.
        self.width: int | None = None
        self.height: int | None = None
        #: Recent conversion times (milliseconds), newest last.
        self.conversion_ms: collections.deque[float] = collections.deque(maxlen=TIMING_SAMPLES)
        self._pending: QVideoFrame | None = None
        self._pending_at = 0.0
        self._start: float | None = None
        self._last_pts = -1
        self._waiter: asyncio.Future[None] | None = None
        self._bridge = _SinkBridge(self)
        self.sink.videoFrameChanged.connect(self._bridge.on_frame)

    def _on_frame(self, frame: QVideoFrame) -> None:
        if self.readyState != "live" or not frame.isValid():
            return
        self.frames_received += 1
        if self._pending is not None:
            self.frames_dropped += 1
        self._pending = frame
        self._pending_at = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> av.VideoFrame:
        """The newest frame not returned yet (waits for one); MediaStreamError once stopped."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            while self._pending is None:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                if self.readyState != "live":
                    raise MediaStreamError
            frame, arrived = self._pending, self._pending_at
            self._pending = None
            started = time.perf_counter()
            try:
                converted = self.converter.convert(frame)
            except UnsupportedFrame as exc:
                self.frames_failed += 1
                if self.frames_failed == 1:
                    logger.warning("%s: skipping frame: %s", type(self).__name__, exc)
                continue
            self.conversion_ms.append(1000 * (time.perf_counter() - started))
            return self._stamp(converted, arrived)

    def _stamp(self, frame: av.VideoFrame, arrived: float) -> av.VideoFrame:
        if self._start is None:
            self._start = arrived
        pts = max(round((arrived - self._start) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self.frames_delivered += 1
        self.width, self.height = frame.width, frame.height
        return frame

    def stop(self) -> None:
        """End the track: disconnect from the sink; a waiting recv() raises MediaStreamError."""
        if self.readyState == "live":
            with contextlib.suppress(RuntimeError, TypeError):
                self.sink.videoFrameChanged.disconnect(self._bridge.on_frame)
        super().stop()
        self._pending = None
        self._wake()


def choose_camera_format(
    formats: Iterable[tuple[int, int, float, PixelFormat]],
    width: int = 1280,
    height: int = 720,
    fps: float = 30.0,
) -> int | None:
    """Index of the best ``(width, height, max_fps, pixel_format)`` for a call, or None.

    Prefers the size nearest to the wanted one (a larger size over a smaller one at equal
    distance), then a frame rate reaching ``fps``, then a pixel format cheap to convert
    (raw YUV before RGB, MJPEG and unknown formats last).
    """
    best: tuple[object, ...] | None = None
    best_index = None
    for index, (w, h, max_fps, pixel_format) in enumerate(formats):
        size_error = abs(w * h - width * height) / (width * height)
        too_small = w * h < width * height
        slow = max_fps + 0.5 < fps
        rank = (
            _CAMERA_PREFERENCE.index(pixel_format)
            if pixel_format in _CAMERA_PREFERENCE
            else len(_CAMERA_PREFERENCE)
        )
        key = (round(size_error, 2), too_small, slow, rank, -max_fps)
        if best is None or key < best:
            best, best_index = key, index
    return best_index


class _CameraEvents(QObject):
    """Receives ``QCamera`` signals on the Qt main thread."""

    def __init__(self, track: CameraTrack) -> None:
        super().__init__()
        self._track = track

    @Slot(QCamera.Error, str)
    def on_error(self, error: QCamera.Error, message: str) -> None:
        if error != QCamera.Error.NoError:
            self._track._report_lost(f"camera error: {message or error.name}")


class CameraTrack(VideoSinkTrack, LossReporter):
    """The camera ``device`` (the default one when None) as an aiortc video track.

    Picks the camera format nearest to ``width`` x ``height`` at ``fps`` with
    :func:`choose_camera_format` and starts the camera at once (or at :meth:`start` when
    ``start`` is False). A camera error (including "no camera" at start) or the device
    leaving ``catalog``'s list emits the pyee event ``"lost"`` (reason) once,
    asynchronously, and sets :attr:`lost_reason`; the track then stays live, without
    frames, until stopped. :meth:`stop` stops the camera and releases the capture session.
    """

    device_word = "camera"

    def __init__(
        self,
        device: QCameraDevice | None = None,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        catalog: DeviceCatalog | None = None,
        start: bool = True,
    ) -> None:
        super().__init__(QVideoSink())
        self.lost_reason: str | None = None
        self.device = device if device is not None else DeviceCatalog.default_camera()
        self.device_id = device_id(self.device)
        self.camera = QCamera(self.device)
        self.camera_format: QCameraFormat | None = None
        formats = list(self.device.videoFormats())
        index = choose_camera_format(
            (
                (f.resolution().width(), f.resolution().height(), f.maxFrameRate(), f.pixelFormat())
                for f in formats
            ),
            width,
            height,
            fps,
        )
        if index is not None:
            self.camera_format = formats[index]
            self.camera.setCameraFormat(self.camera_format)
        self.session = QMediaCaptureSession()
        self.session.setCamera(self.camera)
        self.session.setVideoSink(self.sink)
        self._camera_events = _CameraEvents(self)
        self.camera.errorOccurred.connect(self._camera_events.on_error)
        self.catalog = catalog if catalog is not None else DeviceCatalog()
        self._watch = DeviceWatch(
            self.catalog, DeviceKind.CAMERA, self.device_id, self._report_lost
        )
        if start:
            self.start()

    def start(self) -> None:
        """Start the camera (done by the constructor unless ``start=False``)."""
        if self.readyState != "live" or self.lost_reason is not None:
            return
        if self.device.isNull():
            self._report_lost("no camera")
        elif self.camera.error() != QCamera.Error.NoError:
            self._report_lost(f"camera error: {self.camera.errorString()}")
        else:
            self.camera.start()

    def stop(self) -> None:
        """Stop the camera and the track (idempotent)."""
        if self.readyState == "live":
            self._watch.close()
            with contextlib.suppress(RuntimeError, TypeError):
                self.camera.errorOccurred.disconnect(self._camera_events.on_error)
            self.camera.stop()
            # PySide6 accepts None (the C++ nullptr) where its stubs say otherwise.
            self.session.setVideoSink(None)  # type: ignore[arg-type]
            self.session.setCamera(None)  # type: ignore[arg-type]
        super().stop()
