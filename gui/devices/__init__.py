"""Real devices through Qt Multimedia: camera, microphone and screen tracks, speaker sink, lists.

Every object here lives on the Qt main thread, which under qasync is also the asyncio loop
aiortc runs on. Each track and sink starts its device at construction and releases it in
``stop()``.
"""

from gui.devices.camera import (
    CameraTrack,
    FrameConverter,
    UnsupportedFrame,
    VideoSinkTrack,
    choose_camera_format,
    video_frame_to_av,
)
from gui.devices.catalog import DeviceCatalog, DeviceInfo, DeviceKind, DeviceWatch
from gui.devices.microphone import PROCESSING_PERIOD_FRAMES, MicrophoneTrack, capture_period
from gui.devices.screen import (
    CaptureSource,
    CaptureSupport,
    ScreenSource,
    ScreenTrack,
    WindowSource,
    active_captures,
    capture_supported,
    capture_thumbnail,
    list_screens,
    list_sources,
    list_windows,
    make_thumbnail,
    probe,
    window_source,
)
from gui.devices.speaker import SpeakerSink

__all__ = [
    "PROCESSING_PERIOD_FRAMES",
    "CameraTrack",
    "CaptureSource",
    "CaptureSupport",
    "DeviceCatalog",
    "DeviceInfo",
    "DeviceKind",
    "DeviceWatch",
    "FrameConverter",
    "MicrophoneTrack",
    "ScreenSource",
    "ScreenTrack",
    "SpeakerSink",
    "UnsupportedFrame",
    "VideoSinkTrack",
    "WindowSource",
    "active_captures",
    "capture_period",
    "capture_supported",
    "capture_thumbnail",
    "choose_camera_format",
    "list_screens",
    "list_sources",
    "list_windows",
    "make_thumbnail",
    "probe",
    "video_frame_to_av",
    "window_source",
]
