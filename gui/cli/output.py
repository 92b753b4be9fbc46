"""What parley-cli tells its caller: one JSON line per event on stdout, the errors
reported in one line on stderr, and the endings that make the exit status 0."""

from __future__ import annotations

import json
from typing import Any

#: Endings a person chose; anything else means the call could not be made or broke.
NORMAL_ENDINGS = frozenset({"hangup", "cancelled", "declined", "answered_elsewhere"})
#: The same for meetings: this end left or declined, the host ended it, or all left.
MEETING_NORMAL_ENDINGS = frozenset(
    {"left", "declined", "ended", "empty", "answered_elsewhere", "declined_elsewhere"}
)


class CliError(Exception):
    """A failure to report in one line, with exit status 1."""


class BadArguments(CliError):
    """An option's value makes no sense: exit status 2, like argparse's own errors."""


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


def nothing_received() -> dict[str, Any]:
    """A summary's media figures before anything arrived (a call's, or one participant's)."""
    return {
        "frames_received": 0,
        "width": None,
        "height": None,
        "audio_ms_received": 0,
        "audio_peak_hz": None,
    }
