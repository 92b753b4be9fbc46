"""Structured logs: one ``logfmt`` line per event (``event=conn.open conn=7 addr=…``).

Callers pass fields as keywords and never a password or a token: the field
names ``password`` and ``token`` are refused outright, so a slip shows in
tests instead of in a log file.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

FORBIDDEN_FIELDS = frozenset({"password", "token", "password_hash", "token_hash"})

logger = logging.getLogger("parley.server")


#: What a value may be made of to go unquoted (``\w``: what ``str.isalnum`` accepts, and ``_``).
_BARE = re.compile(r"[\w.\-:/@\[\]]+")


def _quote(value: Any) -> str:
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields."""
    leaked = FORBIDDEN_FIELDS.intersection(fields)
    if leaked:
        raise ValueError(f"refusing to log secret fields: {sorted(leaked)}")
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={event}"]
    parts += [f"{key}={_quote(value)}" for key, value in fields.items() if value is not None]
    logger.log(level, " ".join(parts))


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… <message>`` on one line; exceptions folded onto it."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"ts={stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
        message = record.getMessage()
        line += message if message.startswith("event=") else f"msg={_quote(message)}"
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


def configure(level: str = "info") -> None:
    """Send the server's logs (and websockets' warnings) to stderr as logfmt."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets logs every failed handshake at INFO with a traceback; keep its warnings only.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
