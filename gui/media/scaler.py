"""A video track that sends its source smaller or less often, as the network allows.

The sender's adaptation (``gui/core/adaptation.py``) decides a scale (1.0 is the
source's own size) and a frame rate; this track applies them between the call's
slot and the encoder: frames are scaled down with FFmpeg's scaler (to even sizes,
as VP8 and H.264 want) and frames beyond the rate are dropped before they cost
an encode. What it does not touch (scale 1, no rate limit) passes through as it is.
"""

from __future__ import annotations

import av
from aiortc.mediastreams import MediaStreamTrack

#: The smallest side a scaled frame keeps (pixels).
MIN_SIDE = 90


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``width`` x ``height`` times ``scale``, even, at least :data:`MIN_SIDE` on the short side."""
    if scale >= 1.0:
        return width, height
    short = min(width, height)
    scale = max(scale, min(1.0, MIN_SIDE / short)) if short else 1.0
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class ScaledVideoTrack(MediaStreamTrack):
    """Reads ``source`` and hands on its frames at ``scale`` and at most ``max_fps``."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        #: Linear scale of the frames sent (1.0: as they come).
        self.scale = 1.0
        #: At most this many frames a second (``None``: every frame).
        self.max_fps: float | None = None
        #: The size of the last frame handed on (what the encoder sees).
        self.sent_size: tuple[int, int] | None = None
        self.frames_sent = 0
        self._last_time: float | None = None

    async def recv(self) -> av.VideoFrame:
        """The source's next frame that the rate allows, scaled."""
        while True:
            frame = await self.source.recv()
            assert isinstance(frame, av.VideoFrame)
            if self._keep(frame):
                break
        width, height = scaled_size(frame.width, frame.height, self.scale)
        if (width, height) != (frame.width, frame.height):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        self.sent_size = (frame.width, frame.height)
        self.frames_sent += 1
        return frame

    def _keep(self, frame: av.VideoFrame) -> bool:
        """Whether ``frame`` fits the rate (by its timestamp, so a slow reader drops nothing)."""
        if self.max_fps is None or frame.pts is None or frame.time_base is None:
            return True
        at = float(frame.pts * frame.time_base)
        if self._last_time is not None and 0 <= at - self._last_time < 0.9 / self.max_fps:
            return False
        self._last_time = at
        return True

    def stop(self) -> None:
        """Stop this track only; the source belongs to whoever made it."""
        super().stop()
