"""Qt item models for the lists the windows show: contacts, contact requests and call history.

The models own the data (updated from server events by the controller); the
views only display them. Contacts come in one model; the contacts list and
the requests list are two filtered views of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from gui.app.plain import plain_tooltip
from gui.core.meeting_tiles import meeting_line, meeting_minutes, meeting_others, meeting_title
from signaling.protocol.constants import ECHO_USERNAME

Index = QModelIndex | QPersistentModelIndex

PRESENCE_ORDER = {"online": 0, "in_call": 1, "away": 2, "dnd": 3, "offline": 4}
PRESENCE_TEXT = {
    "online": "Online",
    "away": "Away",
    "dnd": "Do not disturb",
    "in_call": "In a call",
    "offline": "Offline",
}


class Role(IntEnum):
    """Custom data roles of the models."""

    USERNAME = Qt.ItemDataRole.UserRole + 1
    PRESENCE = Qt.ItemDataRole.UserRole + 2
    STATUS = Qt.ItemDataRole.UserRole + 3
    INITIALS = Qt.ItemDataRole.UserRole + 4
    SUBTITLE = Qt.ItemDataRole.UserRole + 5
    MISSED = Qt.ItemDataRole.UserRole + 6
    RECORD = Qt.ItemDataRole.UserRole + 7


def initials(name: str) -> str:
    """Up to two letters for an avatar: "Ada Lovelace" → "AL", "echo" → "E"."""
    words = [w for w in name.replace(".", " ").replace("_", " ").split() if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][0].upper()
    return (words[0][0] + words[-1][0]).upper()


@dataclass(frozen=True, slots=True)
class Contact:
    """One row of the contacts model."""

    username: str
    display_name: str
    status: str
    presence: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Contact:
        """From the protocol's Contact object."""
        return cls(
            str(data["username"]),
            str(data.get("display_name") or data["username"]),
            str(data.get("status", "accepted")),
            str(data.get("presence", "offline")),
        )


class ContactsModel(QAbstractListModel):
    """Every contact relation of the signed-in user, kept sorted: Echo Test, then by presence."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[Contact] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Number of contacts."""
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """The value of one contact for ``role``."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        contact = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return contact.display_name
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(f"{contact.display_name} (@{contact.username})")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{contact.display_name}, {self._subtitle(contact)}"
        values: dict[int, Any] = {
            Role.USERNAME: contact.username,
            Role.PRESENCE: contact.presence,
            Role.STATUS: contact.status,
            Role.INITIALS: initials(contact.display_name),
            Role.SUBTITLE: self._subtitle(contact),
        }
        return values.get(role)

    @staticmethod
    def _subtitle(contact: Contact) -> str:
        if contact.username == ECHO_USERNAME:
            return "Check your camera, microphone and speakers"
        if contact.status == "incoming":
            return "Wants to be your contact"
        if contact.status == "outgoing":
            return "Request sent"
        return PRESENCE_TEXT.get(contact.presence, contact.presence)

    @staticmethod
    def _key(contact: Contact) -> tuple[int, int, str]:
        echo = 0 if contact.username == ECHO_USERNAME else 1
        return (echo, PRESENCE_ORDER.get(contact.presence, 9), contact.display_name.casefold())

    def contact(self, username: str) -> Contact | None:
        """The row for ``username``."""
        for row in self._rows:
            if row.username == username:
                return row
        return None

    def contacts(self) -> list[Contact]:
        """All rows, in display order."""
        return list(self._rows)

    def reset(self, contacts: list[Contact]) -> None:
        """Replace everything (after signing in or reconnecting)."""
        self.beginResetModel()
        self._rows = sorted(contacts, key=self._key)
        self.endResetModel()

    def upsert(self, contact: Contact) -> None:
        """Add a contact or update it, keeping the order (a ``contact`` event)."""
        self._remove_row(contact.username)
        position = 0
        while position < len(self._rows) and self._key(self._rows[position]) <= self._key(contact):
            position += 1
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.insert(position, contact)
        self.endInsertRows()

    def remove(self, username: str) -> None:
        """Drop a contact (status ``removed``)."""
        self._remove_row(username)

    def _remove_row(self, username: str) -> None:
        for position, row in enumerate(self._rows):
            if row.username == username:
                self.beginRemoveRows(QModelIndex(), position, position)
                del self._rows[position]
                self.endRemoveRows()
                return

    def set_presence(self, username: str, presence: str, display_name: str | None) -> None:
        """A ``presence`` event."""
        current = self.contact(username)
        if current is None:
            return
        updated = replace(
            current, presence=presence, display_name=display_name or current.display_name
        )
        if updated != current:
            self.upsert(updated)


class ContactFilter(QSortFilterProxyModel):
    """Only the rows with one of ``statuses``: the contacts list, or the requests list."""

    def __init__(self, source: ContactsModel, statuses: set[str]) -> None:
        super().__init__()
        self.statuses = statuses
        self.setSourceModel(source)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        """Whether the contact's status is one this view shows."""
        index = self.sourceModel().index(source_row, 0, source_parent)
        return index.data(Role.STATUS) in self.statuses


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


REASON_TEXT = {
    "hangup": "",
    "declined": "Declined",
    "cancelled": "Cancelled",
    "busy": "Busy",
    "timeout": "No answer",
    "offline": "Unavailable",
    "answered_elsewhere": "Answered on another device",
    "lost": "Connection lost",
    "failed": "Could not connect",
}


def is_missed(record: dict[str, Any]) -> bool:
    """An incoming call nobody answered (and that was not declined on purpose)."""
    return (
        record.get("direction") == "in"
        and not record.get("answered_at")
        and record.get("reason") not in ("declined", "answered_elsewhere")
    )


class HistoryModel(QAbstractListModel):
    """The user's recent calls, newest first, with missed calls marked."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[dict[str, Any]] = []
        self.names: dict[str, str] = {}
        #: The signed-in user (left out of "Meeting with …").
        self.me: str | None = None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Number of calls listed."""
        return 0 if parent.isValid() else len(self._rows)

    @property
    def missed_count(self) -> int:
        """How many missed calls are listed (for the tray badge)."""
        return sum(1 for record in self._rows if is_missed(record))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """The value of one call for ``role``."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        record = self._rows[index.row()]
        if record.get("kind") == "meeting":
            return self._meeting_data(record, role)
        peer = str(record.get("peer", "?"))
        name = self.names.get(peer, peer)
        if role == Qt.ItemDataRole.DisplayRole:
            return name
        if role in (Role.SUBTITLE, Qt.ItemDataRole.AccessibleTextRole):
            return self._subtitle(record)
        values: dict[int, Any] = {
            Role.USERNAME: peer,
            Role.MISSED: is_missed(record),
            Role.INITIALS: initials(name),
            Role.RECORD: record,
        }
        return values.get(role)

    def _meeting_data(self, record: dict[str, Any], role: int) -> Any:
        """A meeting row: "Meeting with Ada, Grace and 2 others", "Meeting, 34 min · date"."""
        title = meeting_title(record, self.names, self.me)
        if role == Qt.ItemDataRole.DisplayRole:
            return title
        minutes = meeting_minutes(record)
        started = _parse_time(record.get("started_at"))
        when = started.astimezone().strftime("%d %b %H:%M") if started else ""
        what = "Missed meeting" if minutes is None else f"Meeting, {minutes} min"
        if role == Role.SUBTITLE:
            return f"{what} · {when}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{meeting_line(record, self.names, self.me)}, {when}"
        others = meeting_others(record, self.me)
        values: dict[int, Any] = {
            Role.MISSED: False,
            Role.INITIALS: initials(self.names.get(others[0], others[0])) if others else "M",
            Role.RECORD: record,
        }
        return values.get(role)

    @staticmethod
    def _subtitle(record: dict[str, Any]) -> str:
        started = _parse_time(record.get("started_at"))
        when = started.astimezone().strftime("%d %b %H:%M") if started else ""
        if is_missed(record):
            what = "Missed call"
        else:
            what = "Outgoing" if record.get("direction") == "out" else "Incoming"
            answered, ended = (
                _parse_time(record.get("answered_at")),
                _parse_time(record.get("ended_at")),
            )
            if answered and ended:
                seconds = int((ended - answered).total_seconds())
                what += f", {seconds // 60}:{seconds % 60:02d}"
            reason = REASON_TEXT.get(str(record.get("reason")), "")
            if reason and not answered:
                what += f" · {reason}"
        video = (record.get("media") or {}).get("video")
        return f"{what} · {'video' if video else 'audio'} · {when}"

    def reset(self, records: list[dict[str, Any]]) -> None:
        """Replace the list (from ``history.list``)."""
        self.beginResetModel()
        self._rows = list(records)
        self.endResetModel()


class UsersModel(QAbstractListModel):
    """Search results: users one could add (User objects from ``users.search``)."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[dict[str, Any]] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Number of users found."""
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """The value of one user for ``role``."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        user = self._rows[index.row()]
        name = str(user.get("display_name") or user["username"])
        if role == Qt.ItemDataRole.DisplayRole:
            return name
        values: dict[int, Any] = {
            Role.USERNAME: user["username"],
            Role.INITIALS: initials(name),
            Role.SUBTITLE: f"@{user['username']}",
        }
        return values.get(role)

    def reset(self, users: list[dict[str, Any]]) -> None:
        """Show new results."""
        self.beginResetModel()
        self._rows = [u for u in users if isinstance(u, dict) and "username" in u]
        self.endResetModel()


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One message in the call's chat panel."""

    id: str
    text: str
    mine: bool
    delivered: bool = False
    #: Who wrote it, in a meeting (a display name; empty in a 1:1 call).
    sender: str = ""
    #: When it was sent (the sender's ``time.time()``; 0: unknown), for earlier messages
    #: put in their place.
    at: float = 0.0


class ChatModel(QAbstractListModel):
    """The chat of the current call, oldest first; own messages show when they were delivered."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[ChatLine] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Number of messages."""
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """A message's text, with a tick once the peer has it."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        line = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if line.mine:
                return f"{line.text}  {'✓✓' if line.delivered else '✓'}"
            return f"{line.sender}: {line.text}" if line.sender else line.text
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return Qt.AlignmentFlag.AlignRight if line.mine else Qt.AlignmentFlag.AlignLeft
        if role == Qt.ItemDataRole.AccessibleTextRole:
            who = "You" if line.mine else line.sender or "They"
            return f"{who}: {line.text}" + (" (delivered)" if line.delivered else "")
        return None

    def add(self, line: ChatLine) -> None:
        """Append a message."""
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(line)
        self.endInsertRows()

    def add_earlier(self, line: ChatLine) -> None:
        """A message from before (a meeting's chat history): in its place by time, after
        every message sent at or before it; one already shown (same id) is not added."""
        if any(row.id == line.id for row in self._rows):
            return
        row = len(self._rows)
        while row > 0 and self._rows[row - 1].at > line.at:
            row -= 1
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.insert(row, line)
        self.endInsertRows()

    def mark_delivered(self, message_id: str) -> None:
        """The peer acknowledged a message."""
        for row, line in enumerate(self._rows):
            if line.id == message_id:
                self._rows[row] = replace(line, delivered=True)
                index = self.index(row, 0)
                self.dataChanged.emit(index, index)
                return

    def lines(self) -> list[ChatLine]:
        """All messages."""
        return list(self._rows)
