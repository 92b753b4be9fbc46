"""Structured logs: one ``logfmt`` line per event (``event=conn.open conn=7 addr=…``).

Callers pass fields as keywords and never a password or a token: the field
names ``password`` and ``token`` are refused outright, so a slip shows in
tests instead of in a log file.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import Any, TextIO

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

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        second = int(record.created)
        if second != self._second:  # the date and time are rendered once a second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        line = f"ts={self._stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
        message = record.getMessage()
        line += message if message.startswith("event=") else f"msg={_quote(message)}"
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


class TurnBufferedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines of one turn of the event loop at once.

    A line logged on a thread running an event loop waits for the end of the loop's turn
    (``call_soon``), so the three or four lines of a call's busy turn cost one ``write`` to
    the stream instead of one each (with its flush: stderr is line-buffered). Warnings and
    errors, lines from threads without a loop or with another loop than the one due, and
    anything logged with no loop running are written at once, after what waits, so the order
    is kept; so is what waits when logging shuts down, or when a loop closed before its turn
    ended (the next line's loop takes over).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        #: The loop whose turn's end will write what waits, if any.
        self._due: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's line for the end of this turn, or write it now."""
        try:
            self._waiting.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if record.levelno < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                if self._due is None or self._due.is_closed():  # (closed before its turn ended)
                    self._due = loop
                    loop.call_soon(self._end_of_turn)
                if self._due is loop:
                    return
        self._write_waiting()

    def _end_of_turn(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._due = None
            self._write_waiting()

    def _write_waiting(self) -> None:
        if self._waiting:
            text = "".join(self._waiting)
            self._waiting.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": text}))

    def flush(self) -> None:
        """Write what waits, then flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self._write_waiting()
        super().flush()


def configure(level: str = "info") -> None:
    """Send the server's logs (and websockets' warnings) to stderr as logfmt.

    The records' fields that the format never shows are not gathered (the logging HOWTO's
    "Optimization": the caller's file and line, thread, process and task names): each
    costs a lookup per line, and a call logs three or four lines."""
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # 3.12; not in typeshed
    handler = TurnBufferedHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets logs every failed handshake at INFO with a traceback; keep its warnings only.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
