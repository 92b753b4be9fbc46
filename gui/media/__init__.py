"""Synthetic media sources and received-media analysis for Parley's call engine and its tests.

Qt-free on purpose: these modules run in plain asyncio (tests, benchmarks, headless calls)
as well as under qasync in the desktop client.
"""

from gui.media.analysis import AudioReceiver, VideoReceiver
from gui.media.pattern import PatternVideoTrack, decode_frame_number
from gui.media.tone import ToneAudioTrack, dominant_frequency

__all__ = [
    "AudioReceiver",
    "PatternVideoTrack",
    "ToneAudioTrack",
    "VideoReceiver",
    "decode_frame_number",
    "dominant_frequency",
]
