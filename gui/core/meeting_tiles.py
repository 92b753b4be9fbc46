"""What a meeting window decides without Qt: the grid's shape, who is speaking, history wording.

Pure functions and one small state machine with the clock passed in, so that
the rules (how many columns for five people, how long a ring stays after the
voice stops, how a meeting reads in the history) are tested without widgets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: The grid steps as people come and go: 1, 2 side by side, 2x2, 3x3, 4x4.
GRID_STEPS = ((1, 1, 1), (2, 2, 1), (4, 2, 2), (9, 3, 3), (16, 4, 4))


def grid_shape(count: int) -> tuple[int, int]:
    """``(columns, rows)`` of the grid for ``count`` tiles (at least one cell)."""
    for most, columns, rows in GRID_STEPS:
        if count <= most:
            return columns, rows
    columns = 4
    return columns, -(-count // columns)


def grid_cells(
    count: int, width: int, height: int, gap: int = 6
) -> list[tuple[int, int, int, int]]:
    """Where each of ``count`` tiles goes in a ``width`` x ``height`` area: ``(x, y, w, h)``.

    Cells share the area evenly; a last row that is not full is centred.
    """
    if count <= 0:
        return []
    columns, rows = grid_shape(count)
    cell_w = max(1, (width - gap * (columns - 1)) // columns)
    cell_h = max(1, (height - gap * (rows - 1)) // rows)
    cells = []
    for index in range(count):
        row, column = divmod(index, columns)
        in_row = min(columns, count - row * columns)
        offset = (columns - in_row) * (cell_w + gap) // 2
        cells.append((offset + column * (cell_w + gap), row * (cell_h + gap), cell_w, cell_h))
    return cells


def strip_cells(
    count: int, width: int, height: int, gap: int = 6
) -> list[tuple[int, int, int, int]]:
    """Tiles in one row under a shared screen: 16:9 cells as tall as the strip, centred."""
    if count <= 0:
        return []
    cell_w = min(height * 16 // 9, max(1, (width - gap * (count - 1)) // count))
    cell_h = min(height, cell_w * 9 // 16) if cell_w < height * 16 // 9 else height
    total = count * cell_w + gap * (count - 1)
    left = max(0, (width - total) // 2)
    return [(left + i * (cell_w + gap), height - cell_h, cell_w, cell_h) for i in range(count)]


@dataclass(slots=True)
class _Voice:
    speaking: bool = False
    last_loud: float = float("-inf")


@dataclass(slots=True)
class SpeakingDetector:
    """Who is speaking, from audio levels (RMS, 0..1) sampled a few times a second.

    A participant starts speaking on one level at or above ``on_level`` and stops once
    nothing reached ``off_level`` for ``hold_s`` (so the ring does not flicker between
    words). A participant who sends nothing (muted) is fed level 0.
    """

    on_level: float = 0.02
    off_level: float = 0.01
    hold_s: float = 0.6
    _voices: dict[str, _Voice] = field(default_factory=dict)

    def feed(self, key: str, level: float, now: float) -> bool:
        """One level for ``key`` at ``now`` (seconds); returns whether they are speaking."""
        voice = self._voices.setdefault(key, _Voice())
        if level >= self.on_level or (voice.speaking and level >= self.off_level):
            voice.speaking = True
            voice.last_loud = now
        elif voice.speaking and now - voice.last_loud >= self.hold_s:
            voice.speaking = False
        return voice.speaking

    def speaking(self, key: str) -> bool:
        """Whether ``key`` was speaking at the last level fed."""
        voice = self._voices.get(key)
        return voice is not None and voice.speaking

    def forget(self, key: str) -> None:
        """``key`` left."""
        self._voices.pop(key, None)


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def names_phrase(names: list[str], shown: int = 2) -> str:
    """ "Ada", "Ada and Grace", "Ada, Grace and Bob", "Ada, Grace and 2 others"."""
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    if len(names) <= shown + 1:
        return ", ".join(names[:-1]) + f" and {names[-1]}"
    rest = len(names) - shown
    return ", ".join(names[:shown]) + f" and {rest} other{'s' if rest != 1 else ''}"


def meeting_others(record: Mapping[str, Any], me: str | None) -> list[str]:
    """The usernames of a MeetingRecord besides ``me``, in order of joining (host first if
    nobody joined)."""
    people = [p for p in record.get("participants") or [] if isinstance(p, str)]
    host = record.get("host")
    if not people and isinstance(host, str):
        people = [host]
    return [p for p in dict.fromkeys(people) if p != me]


def meeting_minutes(record: Mapping[str, Any]) -> int | None:
    """How many minutes this user was in the meeting (``None``: never joined)."""
    joined, left = _parse_time(record.get("joined_at")), _parse_time(record.get("left_at"))
    if joined is None:
        return None
    if left is None:
        left = _parse_time(record.get("ended_at"))
    if left is None:
        return None
    return max(0, round((left - joined).total_seconds() / 60))


def meeting_title(record: Mapping[str, Any], names: Mapping[str, str], me: str | None) -> str:
    """A meeting in the history: "Meeting with Ada, Grace and 2 others"."""
    others = [names.get(u, u) for u in meeting_others(record, me)]
    return f"Meeting with {names_phrase(others)}" if others else "Meeting"


def meeting_line(record: Mapping[str, Any], names: Mapping[str, str], me: str | None) -> str:
    """The whole sentence: "Meeting with Ada, Grace and 2 others, 34 min" (or "missed")."""
    minutes = meeting_minutes(record)
    tail = "missed" if minutes is None else f"{minutes} min"
    return f"{meeting_title(record, names, me)}, {tail}"


def newest_first(*groups: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Calls and meetings in one list, newest first by ``started_at``."""
    rows = [dict(r) for group in groups for r in group]
    return sorted(rows, key=lambda r: str(r.get("started_at") or ""), reverse=True)
