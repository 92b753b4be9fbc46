"""A synthetic camera: a moving test pattern that carries its own frame number.

The frame number is drawn as a grid of large black/white blocks in the top-left corner, so a
receiver can read it back after VP8/H.264 compression and tell which frames arrived, in which
order, and how long each took (see :attr:`PatternVideoTrack.sent_at`).

Strip layout: 44 cells of 16x16 px (aligned to the 16-px macroblock grid) in 4 rows of 11,
read row by row: a start marker (white, black), the 32-bit frame number Gray-coded (MSB
first; Gray code makes consecutive frames differ in one cell, which is cheap to encode), a
CRC-8 of those 32 bits, and a stop marker (black, white). The markers give the reader its
black and white reference levels; the CRC rejects misread strips.
"""

from __future__ import annotations

import time

import av
import numpy as np
from aiortc.mediastreams import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    MediaStreamError,
    MediaStreamTrack,
)

from gui.media.pacing import RealtimePacer

#: Side of one strip cell, in pixels: one macroblock.
BLOCK = 16
STRIP_COLUMNS = 11
STRIP_ROWS = 4
STRIP_WIDTH = STRIP_COLUMNS * BLOCK
STRIP_HEIGHT = STRIP_ROWS * BLOCK
DATA_BITS = 32
CRC_BITS = 8
#: The largest frame number the strip holds; frame numbers wrap around after it.
MAX_FRAME_NUMBER = (1 << DATA_BITS) - 1
#: Smallest frame the pattern fits in (the strip, a quiet row, the moving block).
MIN_WIDTH = STRIP_WIDTH
MIN_HEIGHT = STRIP_HEIGHT + 2 * BLOCK
#: How many recent frames :attr:`PatternVideoTrack.sent_at` remembers.
SENT_AT_LIMIT = 1000

BLACK_Y = 16
WHITE_Y = 235
#: Minimum white-minus-black difference of the markers for a strip to count as readable.
MIN_CONTRAST = 80
#: A cell whose level is closer than this fraction of the contrast to the threshold is
#: ambiguous, and makes the strip unreadable rather than risk a wrong number.
AMBIGUITY = 0.15

_START = (1, 0)
_STOP = (0, 1)

# 75 % colour bars, as (R, G, B) in 0..1: white, yellow, cyan, green, magenta, red, blue.
_BARS = np.array(
    [
        (0.75, 0.75, 0.75),
        (0.75, 0.75, 0.0),
        (0.0, 0.75, 0.75),
        (0.0, 0.75, 0.0),
        (0.75, 0.0, 0.75),
        (0.75, 0.0, 0.0),
        (0.0, 0.0, 0.75),
    ]
)


def _rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited range, what VP8 and aiortc's H.264 assume for yuv420p."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return np.stack([y, u, v], axis=-1)


def _crc8(value: int) -> int:
    """CRC-8 (polynomial 0x07) of the four big-endian bytes of ``value``."""
    crc = 0
    for byte in value.to_bytes(4, "big"):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _gray_encode(n: int) -> int:
    return n ^ (n >> 1)


def _gray_decode(g: int) -> int:
    n = g
    shift = g >> 1
    while shift:
        n ^= shift
        shift >>= 1
    return n


def _bits(value: int, count: int) -> list[int]:
    return [(value >> (count - 1 - i)) & 1 for i in range(count)]


def strip_cells(number: int) -> np.ndarray:
    """The strip's cells for ``number`` as a (rows, columns) array of 0/1, in reading order."""
    if not 0 <= number <= MAX_FRAME_NUMBER:
        raise ValueError(f"frame number out of range: {number}")
    gray = _gray_encode(number)
    bits = [*_START, *_bits(gray, DATA_BITS), *_bits(_crc8(gray), CRC_BITS), *_STOP]
    return np.array(bits, dtype=np.uint8).reshape(STRIP_ROWS, STRIP_COLUMNS)


def _plane_view(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A writable (height, width) numpy view of a frame plane, without its line padding."""
    array = np.frombuffer(plane, dtype=np.uint8)
    return array.reshape(plane.height, plane.line_size)[:, : plane.width]


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The luma plane as a (height, width) uint8 array, converting only when needed."""
    if frame.format.name not in {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "nv12",
        "nv21",
        "gray",
    }:
        frame = frame.reformat(format="gray")
    return _plane_view(frame.planes[0])


def decode_frame_number(frame: av.VideoFrame) -> int | None:
    """Read the frame number drawn by :class:`PatternVideoTrack`; None when it is not readable.

    Averages the centre 8x8 pixels of each 16x16 cell of the luma plane, takes the black and
    white references from the start/stop markers, and thresholds halfway between them. A strip
    with too little contrast, an ambiguous cell, or a CRC mismatch gives None.
    """
    if frame.width < STRIP_WIDTH or frame.height < STRIP_HEIGHT:
        return None
    luma = _luma(frame)[:STRIP_HEIGHT, :STRIP_WIDTH]
    cells = luma.reshape(STRIP_ROWS, BLOCK, STRIP_COLUMNS, BLOCK)
    quarter = BLOCK // 4
    centres = cells[:, quarter:-quarter, :, quarter:-quarter].mean(axis=(1, 3)).ravel()
    white = (centres[0] + centres[-1]) / 2
    black = (centres[1] + centres[-2]) / 2
    contrast = white - black
    if contrast < MIN_CONTRAST:
        return None
    threshold = (white + black) / 2
    if np.any(np.abs(centres - threshold) < AMBIGUITY * contrast):
        return None
    bits = (centres > threshold).astype(np.uint8)
    if tuple(bits[:2]) != _START or tuple(bits[-2:]) != _STOP:
        return None
    payload = bits[2 : 2 + DATA_BITS + CRC_BITS]
    gray = int("".join(map(str, payload[:DATA_BITS])), 2)
    crc = int("".join(map(str, payload[DATA_BITS:])), 2)
    if _crc8(gray) != crc:
        return None
    return _gray_decode(gray)


def _bounce(position: int, span: int) -> int:
    """Triangle wave: ``position`` folded back and forth into 0..span."""
    if span <= 0:
        return 0
    phase = position % (2 * span)
    return phase if phase <= span else 2 * span - phase


class PatternVideoTrack(MediaStreamTrack):
    """A camera stand-in: colour bars, a moving block, and a machine-readable frame number.

    Frames are yuv420p (what the VP8 and H.264 encoders take, so aiortc converts nothing),
    produced in real time at ``fps`` with 90 kHz timestamps like aiortc's ``VideoStreamTrack``.
    The background is computed once; each frame costs one plane copy plus drawing the block
    and the strip. :attr:`sent_at` maps recent frame numbers to the ``time.monotonic()`` at
    which each frame was made, so a receiver in the same process can measure latency.
    """

    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30) -> None:
        super().__init__()
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            raise ValueError(f"frame too small for the pattern: {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.width = width
        self.height = height
        self.fps = fps
        #: Frame number -> time.monotonic() when the frame was made; the last SENT_AT_LIMIT.
        self.sent_at: dict[int, float] = {}
        #: How many frames recv() has returned.
        self.frames_made = 0
        self._pacer = RealtimePacer(1 / fps)
        self._planes = self._background()
        self._block_size = max(2, min(4 * BLOCK, (height - STRIP_HEIGHT - BLOCK) // 2) & ~1)
        self._block_top = STRIP_HEIGHT + BLOCK
        block_rgb = np.array([[0.9, 0.3, 0.1]])
        self._block_yuv = np.clip(np.round(_rgb_to_yuv(block_rgb)[0]), 0, 255).astype(np.uint8)

    def _background(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colour bars over the top two thirds, a grey ramp below, neutral under the strip."""
        w, h = self.width, self.height
        bar_of_column = np.arange(w) * len(_BARS) // w
        ramp = np.linspace(0.0, 1.0, w)[:, None].repeat(3, axis=1)
        rgb = np.empty((h, w, 3))
        split = (2 * h // 3) & ~1
        rgb[:split] = _BARS[bar_of_column][None, :, :]
        rgb[split:] = ramp[None, :, :]
        yuv = np.clip(np.round(_rgb_to_yuv(rgb)), 0, 255).astype(np.uint8)
        y = np.ascontiguousarray(yuv[..., 0])
        # Chroma: average each 2x2 block.
        chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).astype(np.uint16).mean(axis=(1, 3))
        u = np.ascontiguousarray(np.round(chroma[..., 0]).astype(np.uint8))
        v = np.ascontiguousarray(np.round(chroma[..., 1]).astype(np.uint8))
        # The strip and a quiet block around it: neutral chroma, black luma.
        y[: STRIP_HEIGHT + BLOCK, : STRIP_WIDTH + BLOCK] = BLACK_Y
        u[: (STRIP_HEIGHT + BLOCK) // 2, : (STRIP_WIDTH + BLOCK) // 2] = 128
        v[: (STRIP_HEIGHT + BLOCK) // 2, : (STRIP_WIDTH + BLOCK) // 2] = 128
        return y, u, v

    def _block_position(self, number: int) -> tuple[int, int]:
        size = self._block_size
        x = _bounce(number * 6, self.width - size) & ~1
        y = self._block_top + (_bounce(number * 4, self.height - self._block_top - size) & ~1)
        return x, y

    def make_frame(self, number: int) -> av.VideoFrame:
        """Draw frame ``number`` (no pacing, no timestamp): for recv(), tests and benchmarks."""
        cells = strip_cells(number)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        y_plane, u_plane, v_plane = (_plane_view(p) for p in frame.planes)
        y_plane[...] = self._planes[0]
        u_plane[...] = self._planes[1]
        v_plane[...] = self._planes[2]

        x, y = self._block_position(number)
        size = self._block_size
        block_y, block_u, block_v = self._block_yuv
        y_plane[y : y + size, x : x + size] = block_y
        u_plane[y // 2 : (y + size) // 2, x // 2 : (x + size) // 2] = block_u
        v_plane[y // 2 : (y + size) // 2, x // 2 : (x + size) // 2] = block_v

        levels = np.where(cells, WHITE_Y, BLACK_Y).astype(np.uint8)
        y_plane[:STRIP_HEIGHT, :STRIP_WIDTH] = levels.repeat(BLOCK, axis=0).repeat(BLOCK, axis=1)
        return frame

    def stop(self) -> None:
        """End the track; a recv() waiting for its next slot raises MediaStreamError at once."""
        super().stop()
        self._pacer.interrupt()

    async def recv(self) -> av.VideoFrame:
        """Return the next frame when it is due; MediaStreamError once the track is stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._pacer.wait()
        if self.readyState != "live":
            raise MediaStreamError
        number = self.frames_made & MAX_FRAME_NUMBER
        frame = self.make_frame(number)
        frame.pts = round(slot * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.sent_at[number] = time.monotonic()
        self.sent_at.pop((number - SENT_AT_LIMIT) & MAX_FRAME_NUMBER, None)
        self.frames_made += 1
        return frame
