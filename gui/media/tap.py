"""A pass-through track that lets others look at the frames it sends (the self-view)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger(__name__)


class TappedTrack(MediaStreamTrack):
    """Wraps a source track: every frame it returns is also handed to ``frame_listeners``.

    (Not ``listeners``: tracks are pyee emitters, which have a method of that name.)

    The self-view shows exactly what is sent, at the sender's pace, and stops
    when the camera is off (nothing pulls frames then). Stopping this track
    stops the source.
    """

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self.frame_listeners: list[Callable[[av.frame.Frame], None]] = []

    async def recv(self) -> av.frame.Frame:
        """The source's next frame, shown to the frame_listeners on its way."""
        frame = await self.source.recv()
        assert isinstance(frame, av.frame.Frame)
        for listener in self.frame_listeners:
            try:
                listener(frame)
            except Exception:
                log.exception("frame listener failed")
        return frame

    def stop(self) -> None:
        """Stop this track and its source."""
        super().stop()
        self.source.stop()
