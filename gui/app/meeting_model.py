"""The meeting window's model: one row per person in the meeting (you first), kept in order.

The window's tiles and its participant panel are two views of this one model:
the tiles grid follows its rows (inserted, removed, changed), the panel is a
``QListView`` over it. The controller's meeting session feeds it (participants,
their media state, who is speaking); the views never touch the session for
what they show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from gui.app.models import Index, Role, initials
from gui.app.plain import plain_tooltip
from gui.core.meeting_machine import LinkState, Participant

LINK_TEXT = {
    LinkState.WAITING: "Joining…",
    LinkState.CONNECTING: "Connecting…",
    LinkState.CONNECTED: "",
    LinkState.RECONNECTING: "Reconnecting…",
    LinkState.FAILED: "Cannot connect",
}


class TileRole(IntEnum):
    """The model's roles beyond the shared ones (name, username, initials, subtitle)."""

    MUTED = Qt.ItemDataRole.UserRole + 20
    VIDEO = Qt.ItemDataRole.UserRole + 21
    SCREEN = Qt.ItemDataRole.UserRole + 22
    SPEAKING = Qt.ItemDataRole.UserRole + 23
    LINK = Qt.ItemDataRole.UserRole + 24
    ME = Qt.ItemDataRole.UserRole + 25
    HOST = Qt.ItemDataRole.UserRole + 26


@dataclass(frozen=True, slots=True)
class Tile:
    """One person as the window shows them."""

    username: str
    display_name: str
    me: bool = False
    host: bool = False
    audio: bool = False
    video: bool = False
    screen: bool = False
    link: LinkState = LinkState.CONNECTED
    speaking: bool = False

    @property
    def status(self) -> str:
        """The second line in the participant panel: "You · Host · Muted · Camera off"."""
        parts = []
        if self.me:
            parts.append("You")
        if self.host:
            parts.append("Host")
        if not self.audio:
            parts.append("Muted")
        if not self.video:
            parts.append("Camera off")
        if self.screen:
            parts.append("Sharing the screen")
        if not self.me and LINK_TEXT[self.link]:
            parts.append(LINK_TEXT[self.link])
        return " · ".join(parts) or "In the meeting"


def tile_of(participant: Participant, host: str | None) -> Tile:
    """A row for another participant."""
    return Tile(
        username=participant.username,
        display_name=participant.display_name,
        host=participant.username == host,
        audio=participant.audio,
        video=participant.video,
        screen=participant.screen,
        link=participant.link,
    )


class TilesModel(QAbstractListModel):
    """Everyone in the meeting, this user first, then the others in order of joining."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[Tile] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Number of people in the meeting."""
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """The value of one person for ``role``."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        tile = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{tile.display_name} (you)" if tile.me else tile.display_name
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(f"{tile.display_name} (@{tile.username})")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{tile.display_name}, {tile.status}"
        values: dict[int, Any] = {
            Role.USERNAME: tile.username,
            Role.INITIALS: initials(tile.display_name),
            Role.SUBTITLE: tile.status,
            TileRole.MUTED: not tile.audio,
            TileRole.VIDEO: tile.video,
            TileRole.SCREEN: tile.screen,
            TileRole.SPEAKING: tile.speaking,
            TileRole.LINK: tile.link,
            TileRole.ME: tile.me,
            TileRole.HOST: tile.host,
        }
        return values.get(role)

    def tiles(self) -> list[Tile]:
        """Every row, in order."""
        return list(self._rows)

    def tile(self, username: str) -> Tile | None:
        """The row of ``username``."""
        return next((t for t in self._rows if t.username == username), None)

    def row_of(self, username: str) -> int:
        """The row number of ``username`` (-1: not in the meeting)."""
        return next((i for i, t in enumerate(self._rows) if t.username == username), -1)

    def set_tiles(self, tiles: list[Tile]) -> None:
        """The people now, in order: rows leave, arrive and change (speaking is kept)."""
        wanted = {t.username for t in tiles}
        for row in reversed(range(len(self._rows))):
            if self._rows[row].username not in wanted:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
        for position, tile in enumerate(tiles):
            row = self.row_of(tile.username)
            if row < 0:
                self.beginInsertRows(QModelIndex(), position, position)
                self._rows.insert(position, tile)
                self.endInsertRows()
                continue
            kept = replace(tile, speaking=self._rows[row].speaking)
            if row != position:  # rare (order of joining): out and in again
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
                self.beginInsertRows(QModelIndex(), position, position)
                self._rows.insert(position, kept)
                self.endInsertRows()
            else:
                self._update(position, kept)

    def set_speaking(self, username: str, speaking: bool) -> None:
        """The speaking ring of ``username`` on or off."""
        row = self.row_of(username)
        if row >= 0 and self._rows[row].speaking != speaking:
            self._update(row, replace(self._rows[row], speaking=speaking))

    def _update(self, row: int, tile: Tile) -> None:
        if self._rows[row] != tile:
            self._rows[row] = tile
            index = self.index(row, 0)
            self.dataChanged.emit(index, index)
