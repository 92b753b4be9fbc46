"""One participant's tile in the meeting grid: video or avatar, name, mute icon, speaking ring.

A view of one row of :class:`~gui.app.meeting_model.TilesModel` (a :class:`Tile`); the meeting
window places the tiles and hands each its row when it changes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QLabel, QWidget

from gui.app.meeting_model import LINK_TEXT, Tile
from gui.app.models import initials
from gui.app.plain import plain_label, set_plain
from gui.app.resources import icon
from gui.app.video_view import VideoView
from gui.app.widgets import Avatar

#: The speaking ring's width (px) and colour.
RING = 4
RING_COLOR = QColor("#2fb344")


class TileView(QWidget):
    """One person: their video (or avatar), name, mute icon, and a ring while they speak."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tile: Tile | None = None
        self.setObjectName("meetingTile")
        self.video = VideoView(self, mirrored=False)
        self.video.started.connect(self._arrange)
        self.avatar = Avatar(72, self)
        self.name = plain_label(parent=self)
        self.name.setObjectName("tileName")
        self.name.setStyleSheet(
            "background: rgba(0, 0, 0, 150); color: white; padding: 2px 6px; border-radius: 4px;"
        )
        self.mute_icon = QLabel(self)
        self.mute_icon.setPixmap(icon("mic-off", "#ffffff", 16).pixmap(16, 16))
        self.mute_icon.setStyleSheet("background: #d63939; border-radius: 11px; padding: 3px;")
        self.mute_icon.setAccessibleName("Muted")
        self.mute_icon.setToolTip("Muted")
        self.mute_icon.hide()
        self.link_note = plain_label(parent=self)
        self.link_note.setStyleSheet("color: white;")
        self.link_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.link_note.hide()

    @property
    def speaking(self) -> bool:
        """Whether the ring is shown."""
        return self.tile is not None and self.tile.speaking

    @property
    def muted(self) -> bool:
        """Whether the mute icon is shown."""
        return not self.mute_icon.isHidden()

    def show_tile(self, tile: Tile) -> None:
        """Present ``tile`` (a row of the model)."""
        old, self.tile = self.tile, tile
        set_plain(self.name, f"{tile.display_name} (you)" if tile.me else tile.display_name)
        self.setAccessibleName(f"{tile.display_name}, {tile.status}")
        self.avatar.set_person(initials(tile.display_name), tile.username)
        self.mute_icon.setVisible(not tile.audio)
        note = "" if tile.me else LINK_TEXT[tile.link]
        set_plain(self.link_note, note)
        self.link_note.setVisible(bool(note))
        if not tile.video and (old is None or old.video):
            self.video.clear()
        self._arrange()
        if old is None or old.speaking != tile.speaking:
            self.update()

    def _arrange(self) -> None:
        area = self.rect().adjusted(RING, RING, -RING, -RING)
        self.video.setGeometry(area)
        has_video = self.tile is not None and self.tile.video and self.video.frame is not None
        self.video.setVisible(has_video)
        size = max(32, min(96, area.height() // 2, area.width() // 3))
        self.avatar.setFixedSize(size, size)
        self.avatar.move(area.center().x() - size // 2, area.center().y() - size // 2)
        self.avatar.setVisible(not has_video)
        self.name.adjustSize()
        self.name.setMaximumWidth(max(40, area.width() - 48))
        self.name.move(area.left() + 6, area.bottom() - self.name.height() - 6)
        self.mute_icon.adjustSize()
        self.mute_icon.move(
            area.right() - self.mute_icon.width() - 6,
            area.bottom() - self.mute_icon.height() - 6,
        )
        self.link_note.setGeometry(area.left(), area.center().y() + size // 2 + 4, area.width(), 20)
        for child in (self.name, self.mute_icon, self.link_note):
            child.raise_()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Re-place the parts."""
        super().resizeEvent(event)
        self._arrange()

    def paintEvent(self, event: QPaintEvent) -> None:
        """A dark card, and the ring while speaking."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#1b1e25"))
        if self.speaking:
            pen = QPen(RING_COLOR, RING)
            painter.setPen(pen)
            painter.drawRoundedRect(self.rect().adjusted(2, 2, -2, -2), 6, 6)
        painter.end()
