"""The track a sender keeps for a whole call, whatever device feeds it.

aiortc ends a sender for good when the track it reads raises
``MediaStreamError``, which a track does when it is stopped while the
sender waits in its ``recv()``. Switching cameras (or losing one) would
therefore silence that slot for the rest of the call. A ``SlotTrack`` stands
between: the sender only ever reads the slot, the source underneath can be
swapped or can end, and the slot simply waits for the next one. It also
restamps every frame on its own clock, so that timestamps keep rising across
sources that each start from their own zero.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90000


class SlotTrack(MediaStreamTrack):
    """One sender's track: forwards a swappable source's frames."""

    def __init__(self, kind: str, source: MediaStreamTrack | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._source = source
        self._changed = asyncio.Event()
        self._started = time.monotonic()
        self._samples = 0
        self._last_pts = -1

    @property
    def source(self) -> MediaStreamTrack | None:
        """The track feeding this slot now (``None``: nothing is sent)."""
        return self._source

    def set_source(self, source: MediaStreamTrack | None) -> MediaStreamTrack | None:
        """Feed the slot from ``source`` from the next frame on; returns the previous source.

        The caller may stop the previous source at once: a ``recv`` waiting on it ends,
        and the slot moves on to the new source.
        """
        previous, self._source = self._source, source
        self._changed.set()
        return previous

    async def recv(self) -> av.frame.Frame:
        """The current source's next frame, restamped; waits while there is no source."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source = self._source
            if source is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                frame = await source.recv()
            except MediaStreamError:
                if source is self._source:  # it ended by itself (a device went away)
                    self._source = None
                continue
            assert isinstance(frame, av.frame.Frame)
            return self._stamp(frame)

    def _stamp(self, frame: av.frame.Frame) -> av.frame.Frame:
        if isinstance(frame, av.AudioFrame):
            frame.pts = self._samples
            frame.time_base = fractions.Fraction(1, frame.sample_rate)
            self._samples += frame.samples
            return frame
        pts = int((time.monotonic() - self._started) * VIDEO_CLOCK)
        frame.pts = max(pts, self._last_pts + 1)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._last_pts = frame.pts
        return frame

    def stop(self) -> None:
        """End the slot (the call is over); the source is stopped by its owner."""
        super().stop()
        self._changed.set()
