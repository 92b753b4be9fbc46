"""Bounds on what a lying video sender can make the decoder do.

A VP8 key frame announces its size in its first ten bytes, and libvpx
allocates for that size before it reads the rest: a peer that sends key frames
claiming 16383x16383 made a receiver here take 885 MB and a whole core while
every frame failed to decode. One that changes size on every key frame makes
it reallocate each time. aiortc decodes whatever arrives and logs every
failure, so a garbage stream also writes a warning per frame.

So each remote video decoder aiortc creates is wrapped (:func:`install`, which
replaces the decoder factory aiortc's receivers call; aiortc has no hook for
it): a VP8 key frame announcing more than :data:`MAX_PIXELS`, or a size change
beyond :data:`SIZE_CHANGES` in :data:`SIZE_WINDOW_S`, is dropped before libvpx
sees it; H.264 gets FFmpeg's own ``max_pixels`` limit. Dropped frames are
counted in :data:`dropped`; aiortc's "failed to decode" warnings are logged at
the 1st, 10th, 100th... of each kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

#: 4K UHD: the largest picture a peer may send (Parley's own screen share is at most 1080p).
MAX_PIXELS = 3840 * 2160
#: Size changes allowed in any window of SIZE_WINDOW_S (a camera switch or a new shared
#: screen is one).
SIZE_CHANGES = 5
SIZE_WINDOW_S = 10.0

#: Frames dropped by the guards of this process, by cause (``too_large``, ``size_churn``).
dropped: Counter[str] = Counter()
_lock = threading.Lock()  # decoders run on aiortc's decoder threads

log = logging.getLogger("parley.media")


def vp8_key_frame_size(data: bytes) -> tuple[int, int] | None:
    """The size a VP8 key frame announces (RFC 6386 9.1), or None for other frames."""
    if len(data) < 10 or data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


class SizeGuard:
    """Decides, frame by frame, whether an announced picture size may reach the decoder."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.size: tuple[int, int] | None = None
        self._changes: deque[float] = deque()

    def admit(self, size: tuple[int, int] | None) -> bool:
        """Whether a frame announcing ``size`` (None: no size, a delta frame) may be decoded."""
        if size is None or size == self.size:
            return True
        if size[0] * size[1] > MAX_PIXELS:
            _count("too_large")
            return False
        now = self.clock()
        while self._changes and now - self._changes[0] > SIZE_WINDOW_S:
            self._changes.popleft()
        if self.size is not None and len(self._changes) >= SIZE_CHANGES:
            _count("size_churn")
            return False
        if self.size is not None:
            self._changes.append(now)
        self.size = size
        return True


def _is_power_of_ten(count: int) -> bool:
    """1, 10, 100...: when a repeated event is worth a log line."""
    return count == 10 ** (len(str(count)) - 1)


def _count(cause: str) -> None:
    with _lock:
        dropped[cause] += 1
        count = dropped[cause]
    if _is_power_of_ten(count):
        log.warning("dropped %d video frame(s) from the peer: %s", count, cause)


class GuardedVp8Decoder:
    """aiortc's VP8 decoder behind a :class:`SizeGuard`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.guard = SizeGuard()

    def decode(self, encoded_frame: Any) -> list[Any]:
        """Decode, unless the frame announces a size the guard refuses."""
        if not self.guard.admit(vp8_key_frame_size(encoded_frame.data)):
            return []
        return list(self.inner.decode(encoded_frame))


class PowersOfTen(logging.Filter):
    """Lets a repeated log message through at its 1st, 10th, 100th... time."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to log this record (counted by its message template)."""
        with _lock:
            self.seen[str(record.msg)] += 1
            count = self.seen[str(record.msg)]
        return _is_power_of_ten(count)


_installed = False


def install() -> None:
    """Guard every decoder aiortc's receivers create from now on (idempotent)."""
    global _installed
    if _installed:
        return
    from aiortc import codecs, rtcrtpreceiver

    factory = codecs.get_decoder

    def guarded(codec: Any) -> Any:
        decoder = factory(codec)
        mime = codec.mimeType.lower()
        if mime == "video/vp8":
            return GuardedVp8Decoder(decoder)
        if mime == "video/h264" and hasattr(decoder, "codec"):
            decoder.codec.options = {"max_pixels": str(MAX_PIXELS)}  # FFmpeg checks it
        return decoder

    rtcrtpreceiver.get_decoder = guarded
    logging.getLogger("aiortc.rtcrtpreceiver").addFilter(PowersOfTen())
    _installed = True
