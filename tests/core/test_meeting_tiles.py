"""The meeting window's rules without Qt: grid steps, the speaking ring, history wording."""

from __future__ import annotations

from gui.core.meeting_tiles import (
    SpeakingDetector,
    grid_cells,
    grid_shape,
    meeting_line,
    names_phrase,
    newest_first,
    strip_cells,
)


def test_the_grid_steps_1_2_2x2_3x3_4x4() -> None:
    shapes = {n: grid_shape(n) for n in (1, 2, 3, 4, 5, 9, 10, 16)}
    assert shapes == {
        1: (1, 1),
        2: (2, 1),
        3: (2, 2),
        4: (2, 2),
        5: (3, 3),
        9: (3, 3),
        10: (4, 4),
        16: (4, 4),
    }
    assert grid_shape(0) == (1, 1)


def test_cells_share_the_area_and_a_short_last_row_is_centred() -> None:
    cells = grid_cells(3, 806, 606, gap=6)
    assert cells[:2] == [(0, 0, 400, 300), (406, 0, 400, 300)]
    assert cells[2] == (203, 306, 400, 300)  # alone in its row, in the middle
    assert all(x + w <= 806 and y + h <= 606 for x, y, w, h in grid_cells(16, 806, 606))
    assert grid_cells(0, 100, 100) == []


def test_the_strip_keeps_16_by_9_and_fits() -> None:
    cells = strip_cells(3, 1000, 90)
    assert all(h == 90 and w == 160 for _, _, w, h in cells)
    assert cells[0][0] == (1000 - 3 * 160 - 2 * 6) // 2
    narrow = strip_cells(4, 300, 90)
    assert all(x + w <= 300 for x, _, w, _ in narrow)


def test_speaking_starts_at_once_and_stops_after_the_hold() -> None:
    detector = SpeakingDetector(on_level=0.02, off_level=0.01, hold_s=0.6)
    assert not detector.feed("ada", 0.005, 0.0)
    assert detector.feed("ada", 0.1, 0.1)
    assert detector.feed("ada", 0.0, 0.5)  # a pause between words
    assert detector.feed("ada", 0.015, 0.6)  # quieter, still above the off level: kept
    assert detector.feed("ada", 0.0, 1.1)
    assert not detector.feed("ada", 0.0, 1.25)  # 0.65 s below the off level
    assert not detector.speaking("bob")
    detector.forget("ada")
    assert not detector.speaking("ada")


def test_a_meeting_reads_as_a_sentence_in_the_history() -> None:
    names = {"ada": "Ada", "grace": "Grace", "bob": "Bob", "cyd": "Cyd"}
    record = {
        "kind": "meeting",
        "host": "me",
        "participants": ["me", "ada", "grace", "bob", "cyd"],
        "started_at": "2026-12-01T10:00:00Z",
        "ended_at": "2026-12-01T10:40:00Z",
        "joined_at": "2026-12-01T10:01:00Z",
        "left_at": "2026-12-01T10:35:00Z",
    }
    assert meeting_line(record, names, "me") == "Meeting with Ada, Grace and 2 others, 34 min"
    three = dict(record, participants=["ada", "me", "grace", "bob"])
    assert meeting_line(three, names, "me").startswith("Meeting with Ada, Grace and Bob,")
    missed = {k: v for k, v in record.items() if k not in ("joined_at", "left_at")}
    assert meeting_line(missed, names, "me").endswith(", missed")
    alone = dict(record, participants=["me"])
    assert meeting_line(alone, names, "me") == "Meeting, 34 min"
    assert names_phrase(["Ada", "Grace", "Bob"], shown=1) == "Ada and 2 others"
    assert names_phrase(["Ada", "Bob"], shown=1) == "Ada and Bob"


def test_calls_and_meetings_newest_first() -> None:
    calls = [{"call_id": "c", "started_at": "2026-12-01T09:00:00Z"}]
    meetings = [{"meeting_id": "m", "started_at": "2026-12-01T10:00:00Z"}]
    assert [r.get("call_id") or r.get("meeting_id") for r in newest_first(calls, meetings)] == [
        "m",
        "c",
    ]
