"""Other people's words on screen: always shown as the characters they typed, never as markup.

Qt guesses. A ``QLabel`` in its default ``AutoText`` format, a tooltip and a tray
notification show a string that *looks* like HTML (``Qt.mightBeRichText``) as
HTML, so a display name ``<h1 style="color:#c00">ALERT</h1><a href=x>pay</a>``
became a large red "ALERT" and a link. Every text another user controls
(display name, chat, meeting title, a message relayed from a peer or the server)
goes through one of these helpers, which say "plain text" whatever it looks like.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import QLabel, QWidget


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A label that shows its text literally, now and after every later ``setText``."""
    label = QLabel(parent)
    set_plain(label, text)
    return label


def set_plain(label: QLabel, text: str) -> None:
    """Show ``text`` on ``label`` literally: the format is fixed first, so Qt never guesses."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)


def plain_tooltip(text: str) -> str:
    """A tooltip string that shows ``text`` literally.

    Tooltips have no format setting: Qt renders them as rich text when they look like
    it, so the text is escaped and marked up as one paragraph (line breaks kept).
    """
    return GuiQt.convertFromPlainText(text)


def plain_notification(text: str) -> str:
    """The body of a desktop notification, which servers read as markup: escaped."""
    return html.escape(text, quote=False)


def plain_title(text: str) -> str:
    """A window title that shows ``text`` literally: Qt reads ``[*]`` as a placeholder."""
    return text.replace("[*]", "[*][*]")
