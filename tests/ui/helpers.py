"""Driving the app's windows like a person: typing, clicking, waiting for what appears."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import av
import numpy as np
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLineEdit, QListView, QWidget

from gui.app.models import Role
from gui.media.pattern import decode_frame_number


async def until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "") -> None:
    """Let the loop run (Qt and asyncio alike) until ``predicate()`` is true."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.03)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or predicate}") from None


def type_into(field: QLineEdit, text: str) -> None:
    """Replace a field's text by typing, as a person would."""
    field.setFocus()
    field.selectAll()
    QTest.keyClick(field, Qt.Key.Key_Backspace)
    QTest.keyClicks(field, text)


def click(button: QAbstractButton) -> None:
    """A left click in the middle of a button."""
    assert button.isVisible() and button.isEnabled(), f"{button.text()!r} cannot be clicked"
    QTest.mouseClick(button, Qt.MouseButton.LeftButton, pos=button.rect().center())


def row_of(view: QListView, username: str) -> QModelIndex:
    """The row showing ``username``, or an invalid index."""
    model = view.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if index.data(Role.USERNAME) == username:
            return index
    return QModelIndex()


def select(view: QListView, username: str) -> None:
    """Click a person's row."""
    index = row_of(view, username)
    assert index.isValid(), f"{username} is not listed"
    view.scrollTo(index)
    rect = view.visualRect(index)
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def grab_frame_number(widget: QWidget) -> int | None:
    """Read the test pattern's frame number from what the widget shows on screen."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    if width < 64 or height < 64:
        return None
    data = np.frombuffer(image.constBits(), dtype=np.uint8)
    rows = data.reshape(height, image.bytesPerLine())[:, : width * 3].reshape(height, width, 3)
    view_rect = getattr(widget, "target_rect", None)
    if view_rect is not None:
        rect = view_rect()
        left, top = max(0, int(rect.left())), max(0, int(rect.top()))
        right = min(width, int(rect.right()) + 1)
        bottom = min(height, int(rect.bottom()) + 1)
        rows = rows[top:bottom, left:right]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rows), format="rgb24")
    frame = frame.reformat(width=640, height=480, format="yuv420p")
    return decode_frame_number(frame)


def center(widget: QWidget) -> QPoint:
    """The middle of a widget."""
    return widget.rect().center()


def process_events() -> None:
    """Let Qt deliver what is pending."""
    QApplication.processEvents()
