"""QVideoFrame → av.VideoFrame conversion, the sink→track path, and CameraTrack's "lost".

There is no camera on the test machines: frames are built as a camera's would be
(QVideoFrame of a given pixel format, Qt's own strides) and pushed into the track's
QVideoSink with ``setVideoFrame``, which emits ``videoFrameChanged`` exactly as the capture
session does.
"""

from __future__ import annotations

import asyncio
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import VIDEO_TIME_BASE, MediaStreamError
from PySide6.QtCore import QSize
from PySide6.QtMultimedia import QCamera, QCameraDevice, QVideoFrame, QVideoFrameFormat

from gui.devices import (
    CameraTrack,
    DeviceCatalog,
    FrameConverter,
    UnsupportedFrame,
    VideoSinkTrack,
    choose_camera_format,
    video_frame_to_av,
)
from gui.devices.camera import SUPPORTED_PIXEL_FORMATS
from gui.media.pattern import PatternVideoTrack, decode_frame_number
from tests.devices.frames import (
    LAYOUTS,
    PixelFormat,
    pattern_qframe,
    qvideoframe_from_av,
    solid_qframe,
)

pytestmark = pytest.mark.usefixtures("qt_app")

YUV_FORMATS = [
    PixelFormat.Format_NV12,
    PixelFormat.Format_NV21,
    PixelFormat.Format_YUV420P,
    PixelFormat.Format_YV12,
    PixelFormat.Format_YUV422P,
    PixelFormat.Format_YUYV,
    PixelFormat.Format_UYVY,
]
RGB_FORMATS = [
    PixelFormat.Format_BGRA8888,
    PixelFormat.Format_BGRX8888,
    PixelFormat.Format_RGBA8888,
    PixelFormat.Format_RGBX8888,
    PixelFormat.Format_XRGB8888,
    PixelFormat.Format_ARGB8888,
]


def luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[
        : frame.height, : frame.width
    ]


# Conversion -------------------------------------------------------------------------


@pytest.mark.parametrize("pixel_format", YUV_FORMATS + RGB_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("size", [(640, 480), (642, 362)], ids=["640x480", "642x362"])
def test_converts_a_frame_to_yuv420p(pixel_format: PixelFormat, size: tuple[int, int]) -> None:
    """Frame number, size and picture survive, whatever the format and strides."""
    width, height = size
    source = PatternVideoTrack(width, height).make_frame(4242)
    qframe = qvideoframe_from_av(source, pixel_format)
    assert qframe.bytesPerLine(0) != source.planes[0].line_size or width == 640

    out = video_frame_to_av(qframe)

    assert (out.width, out.height, out.format.name) == (width, height, "yuv420p")
    assert decode_frame_number(out) == 4242
    difference = np.abs(luma(out).astype(int) - luma(source).astype(int))
    if pixel_format in YUV_FORMATS:
        assert difference.max() == 0  # luma is copied untouched
    else:
        assert difference.mean() < 1.5  # through RGB and back: rounding only


@pytest.mark.parametrize("pixel_format", RGB_FORMATS, ids=lambda f: f.name)
def test_rgb_channel_order_and_bt601_levels(pixel_format: PixelFormat) -> None:
    """Pure red lands where BT.601 limited range puts it (Y 81, U 90, V 240)."""
    out = video_frame_to_av(solid_qframe((255, 0, 0), pixel_format))
    y, u, v = (np.frombuffer(p, np.uint8)[0] for p in out.planes)
    assert abs(int(y) - 81) <= 2
    assert abs(int(u) - 90) <= 2
    assert abs(int(v) - 240) <= 2


@pytest.mark.parametrize(
    "pixel_format", [PixelFormat.Format_NV12, PixelFormat.Format_YUV420P], ids=lambda f: f.name
)
def test_full_range_yuv_is_brought_to_limited_range(pixel_format: PixelFormat) -> None:
    source = av.VideoFrame(64, 64, "yuv420p")
    y_plane = np.frombuffer(source.planes[0], np.uint8).reshape(64, -1)
    y_plane[:, :32] = 0
    y_plane[:, 32:] = 255
    for chroma in source.planes[1:]:
        np.frombuffer(chroma, np.uint8)[:] = 128
    qframe = qvideoframe_from_av(source, pixel_format, QVideoFrameFormat.ColorRange.ColorRange_Full)
    out = video_frame_to_av(qframe)
    assert abs(int(luma(out)[0, 0]) - 16) <= 1
    assert abs(int(luma(out)[0, 63]) - 235) <= 1


def test_other_formats_go_through_to_image() -> None:
    """AYUV is not copied plane by plane: QVideoFrame.toImage() renders it."""
    red = solid_qframe((255, 0, 0), PixelFormat.Format_BGRA8888)
    image = red.toImage()
    ayuv = QVideoFrame(QVideoFrameFormat(QSize(64, 64), PixelFormat.Format_AYUV))
    assert ayuv.map(QVideoFrame.MapMode.WriteOnly)
    data = np.frombuffer(ayuv.bits(0), np.uint8).reshape(64, -1)[:, : 64 * 4]
    data.reshape(64, 64, 4)[...] = (255, 81, 90, 240)  # A, Y, U, V
    ayuv.unmap()
    assert not image.isNull()
    out = video_frame_to_av(ayuv)
    assert (out.width, out.height, out.format.name) == (64, 64, "yuv420p")
    assert abs(int(luma(out)[10, 10]) - 81) <= 6


def test_invalid_frame_is_refused() -> None:
    with pytest.raises(UnsupportedFrame):
        video_frame_to_av(QVideoFrame())


def test_converter_measures_720p_cost() -> None:
    """The figures in the report: conversion per 720p frame (asserted generously).

    The CPU time of the converting thread, not the clock's: on a loaded machine a conversion
    can wait longer for a core than it takes to run, and that says nothing of the converter.
    """
    converter = FrameConverter()
    costs = {}
    for pixel_format in (PixelFormat.Format_NV12, PixelFormat.Format_BGRA8888):
        qframe = pattern_qframe(7, pixel_format, 1280, 720)
        converter.convert(qframe)
        timings = []
        for _ in range(30):
            started = time.thread_time()
            converter.convert(qframe)
            timings.append(1000 * (time.thread_time() - started))
        costs[pixel_format.name] = float(np.median(timings))
    print(f"720p conversion, median ms of CPU: {costs}")
    assert costs["Format_NV12"] < 5
    assert costs["Format_BGRA8888"] < 20


def test_every_format_the_tests_build_is_copied_plane_by_plane() -> None:
    assert set(LAYOUTS) <= SUPPORTED_PIXEL_FORMATS


# The sink → track path --------------------------------------------------------------


async def test_recv_returns_the_newest_frame_only() -> None:
    track = VideoSinkTrack()
    try:
        for number in (1, 2, 3):
            track.sink.setVideoFrame(pattern_qframe(number))
        frame = await asyncio.wait_for(track.recv(), 1)
        assert decode_frame_number(frame) == 3
        assert (track.frames_received, track.frames_dropped) == (3, 2)

        track.sink.setVideoFrame(pattern_qframe(4))
        frame = await asyncio.wait_for(track.recv(), 1)
        assert decode_frame_number(frame) == 4
        assert track.frames_delivered == 2
        assert (track.width, track.height) == (640, 480)
    finally:
        track.stop()


async def test_recv_waits_for_a_new_frame() -> None:
    track = VideoSinkTrack()
    try:
        track.sink.setVideoFrame(pattern_qframe(1))
        await track.recv()
        pending = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.1)
        assert not pending.done()  # no new frame: the same one is not returned twice
        track.sink.setVideoFrame(QVideoFrame())  # invalid frames are ignored
        await asyncio.sleep(0.05)
        assert not pending.done()
        track.sink.setVideoFrame(pattern_qframe(2))
        frame = await asyncio.wait_for(pending, 1)
        assert decode_frame_number(frame) == 2
    finally:
        track.stop()


async def test_timestamps_follow_the_monotonic_clock_at_90khz() -> None:
    track = VideoSinkTrack()
    try:
        track.sink.setVideoFrame(pattern_qframe(1))
        first = await track.recv()
        await asyncio.sleep(0.2)
        track.sink.setVideoFrame(pattern_qframe(2))
        track.sink.setVideoFrame(pattern_qframe(3))  # same instant: pts still increase
        second = await track.recv()
        assert first.time_base == VIDEO_TIME_BASE
        assert first.pts == 0
        assert 0.18 * 90000 < second.pts < 2 * 90000  # 0.2 s later, and more if the sleep overslept
        track.sink.setVideoFrame(pattern_qframe(4))
        third = await track.recv()
        assert third.pts > second.pts
    finally:
        track.stop()


async def test_stop_ends_a_waiting_recv_and_disconnects() -> None:
    track = VideoSinkTrack()
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.05)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(pending, 1)
    track.sink.setVideoFrame(pattern_qframe(1))
    assert track.frames_received == 0
    with pytest.raises(MediaStreamError):
        await track.recv()
    track.stop()


async def test_unreadable_frames_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    track = VideoSinkTrack()
    real_convert = track.converter.convert
    failures = [True]

    def convert(frame: QVideoFrame) -> av.VideoFrame:
        if failures and failures.pop():
            raise UnsupportedFrame("test")
        return real_convert(frame)

    monkeypatch.setattr(track.converter, "convert", convert)
    try:
        track.sink.setVideoFrame(pattern_qframe(1))
        pending = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.05)
        assert not pending.done()
        track.sink.setVideoFrame(pattern_qframe(2))
        assert decode_frame_number(await asyncio.wait_for(pending, 1)) == 2
        assert track.frames_failed == 1
    finally:
        track.stop()


# CameraTrack ------------------------------------------------------------------------


async def lost_reason(track: CameraTrack) -> str:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    track.on("lost", lambda reason: future.done() or future.set_result(reason))
    return await asyncio.wait_for(future, 2)


async def test_no_camera_is_reported_as_lost_not_raised() -> None:
    track = CameraTrack(QCameraDevice())
    try:
        assert await lost_reason(track) == "no camera"
        assert track.readyState == "live"  # the owner decides: replace_camera(None)
        assert not track.camera.isActive()
    finally:
        track.stop()


async def test_camera_error_signal_reports_lost_once() -> None:
    track = CameraTrack(QCameraDevice(), start=False)
    try:
        reason = asyncio.ensure_future(lost_reason(track))
        await asyncio.sleep(0)
        track.camera.errorOccurred.emit(QCamera.Error.CameraError, "device unplugged")
        track.camera.errorOccurred.emit(QCamera.Error.CameraError, "again")
        assert await reason == "camera error: device unplugged"
        assert track.lost_reason == "camera error: device unplugged"
    finally:
        track.stop()


async def test_camera_leaving_the_device_list_reports_lost() -> None:
    catalog = DeviceCatalog()
    track = CameraTrack(QCameraDevice(), start=False, catalog=catalog)
    try:
        reason = asyncio.ensure_future(lost_reason(track))
        await asyncio.sleep(0)
        catalog.cameras_changed.emit([])
        assert "removed" in await reason
    finally:
        track.stop()


async def test_lost_camera_track_still_passes_sink_frames_and_stops_cleanly() -> None:
    """The camera's own sink is the one the tests feed: same path as a real camera's frames."""
    track = CameraTrack(QCameraDevice())
    try:
        await lost_reason(track)
        track.sink.setVideoFrame(pattern_qframe(9, PixelFormat.Format_YUYV))
        frame = await asyncio.wait_for(track.recv(), 1)
        assert decode_frame_number(frame) == 9
        waiting = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.05)
    finally:
        track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiting, 1)
    assert not track.camera.isActive()
    assert track.session.camera() is None
    assert track.session.videoSink() is None
    track.stop()


async def test_lost_is_not_emitted_after_stop() -> None:
    track = CameraTrack(QCameraDevice())
    events: list[str] = []
    track.on("lost", events.append)
    track.stop()
    await asyncio.sleep(0.1)
    assert events == []


def test_chooses_the_nearest_size_then_rate_then_cheap_format() -> None:
    formats = [
        (640, 480, 30.0, PixelFormat.Format_YUYV),
        (1280, 720, 10.0, PixelFormat.Format_YUYV),
        (1280, 720, 30.0, PixelFormat.Format_Jpeg),
        (1280, 720, 30.0, PixelFormat.Format_NV12),
        (1920, 1080, 30.0, PixelFormat.Format_NV12),
    ]
    assert choose_camera_format(formats) == 3
    assert choose_camera_format(formats, 640, 480) == 0
    assert choose_camera_format(formats[:3]) == 2  # 30 fps MJPEG beats 10 fps raw
    assert choose_camera_format([]) is None
