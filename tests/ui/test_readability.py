"""Text is readable in both themes, measured on the painted pixels: the contact list's rows
(selected or not) and the windows that are not a QMainWindow or a QDialog."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication

from gui.app.controller import AppController
from gui.app.incoming import IncomingCallWindow
from gui.app.main_window import _list_view
from gui.app.models import Contact, ContactsModel
from gui.app.resources import stylesheet
from gui.core.profile import Profile
from tests.app.test_resources import _contrast

#: Names and statuses without descenders, so each half of a row holds one line of text.
PEOPLE = [("ada", "Ada Lovelace", "online"), ("bob", "Bob", "offline")]


@pytest.fixture
def app() -> Iterator[QApplication]:
    """The application, its style sheet put back after the test."""
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    before = app.styleSheet()
    yield app
    app.setStyleSheet(before)


def pixels(image: QImage) -> np.ndarray:
    """The image as a height x width x 3 array."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    data = np.frombuffer(image.constBits(), dtype=np.uint8)
    rows = data.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3]
    return rows.reshape(image.height(), image.width(), 3)


def hex_of(rgb: np.ndarray) -> str:
    """``#rrggbb`` of one pixel."""
    return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2])).name()


def text_contrast(region: np.ndarray) -> float:
    """Contrast of the region's strongest text pixel with its background (its commonest colour)."""
    flat = region.reshape(-1, 3)
    background = Counter(map(tuple, flat)).most_common(1)[0][0]
    others = {tuple(p) for p in flat if tuple(p) != background}
    assert others, "no text painted"
    back = hex_of(np.array(background))
    return max(_contrast(hex_of(np.array(p)), back) for p in others)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_selected_and_plain_rows_are_readable(app: QApplication, theme: str) -> None:
    app.setStyleSheet(stylesheet(theme))
    model = ContactsModel()
    model.reset(
        [Contact.from_json({"username": u, "display_name": n, "presence": p}) for u, n, p in PEOPLE]
    )
    view = _list_view(model, "Contacts")
    view.resize(360, 160)
    view.show()
    try:
        view.setCurrentIndex(model.index(0, 0))  # Ada selected, Bob not
        app.processEvents()
        image = pixels(view.viewport().grab().toImage())
        for row, state in ((0, "selected"), (1, "plain")):
            rect = view.visualRect(model.index(row, 0))
            left = rect.left() + 64  # past the avatar
            middle = rect.center().y()
            name = image[rect.top() + 4 : middle, left : rect.right() - 8]
            status = image[middle : rect.bottom() - 4, left : rect.right() - 8]
            for what, region in (("name", name), ("status", status)):
                ratio = text_contrast(region)
                assert ratio >= 4.5, f"{theme}, {state} row: the {what} is {ratio:.2f}:1"
    finally:
        view.close()


@pytest.mark.usefixtures("isolated_home")
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_incoming_call_window_follows_the_theme(app: QApplication, theme: str) -> None:
    app.setStyleSheet(stylesheet(theme))
    window = IncomingCallWindow(AppController(Profile("readable")))
    window.caller.setText("Ada Lovelace")
    window.what.setText("is calling you — video call")
    window.show()
    try:
        app.processEvents()
        image = pixels(window.grab().toImage())
        for label in (window.caller, window.what):
            box = label.geometry()
            region = image[box.top() : box.bottom(), box.left() : box.right()]
            ratio = text_contrast(region)
            assert ratio >= 4.5, f"{theme}: {label.text()!r} is {ratio:.2f}:1"
    finally:
        window.close()
