"""Real devices through Qt Multimedia: camera and microphone tracks, speaker sink, device lists.

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
from gui.devices.microphone import MicrophoneTrack
from gui.devices.speaker import SpeakerSink

__all__ = [
    "CameraTrack",
    "DeviceCatalog",
    "DeviceInfo",
    "DeviceKind",
    "DeviceWatch",
    "FrameConverter",
    "MicrophoneTrack",
    "SpeakerSink",
    "UnsupportedFrame",
    "VideoSinkTrack",
    "choose_camera_format",
    "video_frame_to_av",
]
