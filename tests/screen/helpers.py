"""What the screen tests share: a window painted with a known pattern, and reading it back.

The pattern: four flat quadrants (red, green, blue, yellow) and, in the middle, a
black-and-white checkerboard of 16-pixel squares. Big flat areas survive VP8 at any bitrate,
so their mean colours can be compared with a tolerance; the checkerboard is mid-grey on
average but with a large spread, which no flat area and no blur has.

:func:`until` is :func:`tests.waiting.until`, named here for this folder's tests.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import av
import numpy as np
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QWidget

from gui.media.analysis import VideoReceiver
from tests.waiting import until

RED = (220, 30, 30)
GREEN = (30, 200, 30)
BLUE = (30, 30, 220)
YELLOW = (230, 220, 30)
#: Per channel, after capture, yuv420p, VP8 and back to RGB.
COLOUR_TOLERANCE = 40
CHECKER = 16
CHECKER_CELLS = 8


@dataclass(frozen=True)
class Region:
    """A rectangle in picture coordinates and the colour expected there (None: the checker)."""

    name: str
    x: int
    y: int
    width: int
    height: int
    colour: tuple[int, int, int] | None


class PatternWindow(QWidget):
    """A frameless top-level window at a known place, painted with the test pattern."""

    def __init__(self, x: int = 200, y: int = 120, width: int = 640, height: int = 480) -> None:
        super().__init__(None, Qt.WindowType.FramelessWindowHint)
        self.setWindowTitle("Parley screen test pattern")
        self.setGeometry(x, y, width, height)
        self.paints = 0

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w // 2, h // 2, QColor(*RED))
        painter.fillRect(w // 2, 0, w - w // 2, h // 2, QColor(*GREEN))
        painter.fillRect(0, h // 2, w // 2, h - h // 2, QColor(*BLUE))
        painter.fillRect(w // 2, h // 2, w - w // 2, h - h // 2, QColor(*YELLOW))
        side = CHECKER * CHECKER_CELLS
        left, top = (w - side) // 2, (h - side) // 2
        for row in range(CHECKER_CELLS):
            for col in range(CHECKER_CELLS):
                white = (row + col) % 2 == 0
                painter.fillRect(
                    QRect(left + col * CHECKER, top + row * CHECKER, CHECKER, CHECKER),
                    QColor(255, 255, 255) if white else QColor(0, 0, 0),
                )
        painter.end()
        self.paints += 1

    def regions(self, scale: float = 1.0, origin: tuple[int, int] | None = None) -> list[Region]:
        """Where each part of the pattern is in a picture of the screen (or of this window,
        with ``origin=(0, 0)``), scaled by ``scale``; a margin keeps clear of the edges."""
        x0, y0 = origin if origin is not None else (self.x(), self.y())
        return pattern_regions(x0, y0, self.width(), self.height(), scale)


def pattern_regions(x0: int, y0: int, w: int, h: int, scale: float = 1.0) -> list[Region]:
    """Where each part of a pattern of ``w`` x ``h`` at (``x0``, ``y0``) is in a picture,
    scaled by ``scale`` (see :meth:`PatternWindow.regions`)."""
    qw, qh = w // 2, h // 2
    margin = 24
    side = CHECKER * CHECKER_CELLS

    def at(name: str, x: int, y: int, rw: int, rh: int, colour) -> Region:
        return Region(
            name,
            round((x0 + x) * scale),
            round((y0 + y) * scale),
            max(2, round(rw * scale)),
            max(2, round(rh * scale)),
            colour,
        )

    # Quadrant samples: the outer part of each quadrant, away from the checker.
    sample_w, sample_h = qw // 2, qh // 2
    return [
        at("red", margin, margin, sample_w, sample_h, RED),
        at("green", w - margin - sample_w, margin, sample_w, sample_h, GREEN),
        at("blue", margin, h - margin - sample_h, sample_w, sample_h, BLUE),
        at("yellow", w - margin - sample_w, h - margin - sample_h, sample_w, sample_h, YELLOW),
        at("checker", (w - side) // 2 + 4, (h - side) // 2 + 4, side - 8, side - 8, None),
    ]


def rgb(frame: av.VideoFrame) -> np.ndarray:
    """A frame as an (height, width, 3) uint8 RGB array."""
    return frame.to_ndarray(format="rgb24")


def pattern_mismatches(picture: np.ndarray, regions: list[Region]) -> list[str]:
    """What does not match in ``picture`` (empty when every region is as expected)."""
    problems = []
    for region in regions:
        area = picture[region.y : region.y + region.height, region.x : region.x + region.width]
        if area.size == 0:
            problems.append(f"{region.name}: outside the picture")
            continue
        mean = area.reshape(-1, 3).mean(axis=0)
        if region.colour is None:
            spread = float(area.std())
            if not (90 < mean.mean() < 165 and spread > 70):
                problems.append(f"checker: mean {mean.round()} spread {spread:.0f}")
        elif np.any(np.abs(mean - np.array(region.colour)) > COLOUR_TOLERANCE):
            problems.append(f"{region.name}: mean {mean.round()} expected {region.colour}")
    return problems


async def shows_pattern(receiver: VideoReceiver, window: PatternWindow, timeout: float = 8) -> None:
    """Until the newest received frame shows the pattern at the window's place."""
    problems: list[str] = ["no frame yet"]

    def matches() -> bool:
        frame = receiver.latest_frame
        if frame is None:
            return False
        problems[:] = pattern_mismatches(rgb(frame), window.regions())
        return not problems

    try:
        await until(matches, timeout, "pattern on the receiver")
    except TimeoutError:
        raise AssertionError(f"the shared screen does not show the pattern: {problems}") from None


async def shown(window: QWidget) -> None:
    """Show ``window`` and wait until it is on the X server, painted."""
    window.show()
    window.raise_()
    await until(lambda: window.isVisible() and getattr(window, "paints", 1) > 0, 5, "painted")
    await asyncio.sleep(0.3)  # mapped and flushed to the X server


def rss_mb() -> float:
    """This process's resident memory, in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def thread_count() -> int:
    """Threads of this process, Qt's included."""
    return len(os.listdir("/proc/self/task"))
