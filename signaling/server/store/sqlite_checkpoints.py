"""The SQLite store's checkpoints, on a thread and a connection of their own, once a second.

In WAL mode a commit appends to the log, and a *checkpoint* copies the log back into the database
file, syncing the log before and the file after. SQLite runs one by default in the commit that
takes the log past 1,000 pages, on the writer's thread: its two syncs then stall every write
queued behind it. Here the writer only keeps a far larger threshold as a safety net
(:data:`BACKSTOP_PAGES`), and :class:`Checkpointer` runs a ``PASSIVE`` checkpoint every
:data:`INTERVAL_S` from its own thread: it copies what no reader still needs and waits for
nobody, and the writer appends meanwhile.

Its sync of the log is also what makes the commits that were not synced (the calls' history,
:mod:`.sqlite_writes`) durable against a power cut: at most about a second of them is at risk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from signaling.server.logs import log_event

#: Seconds between two checkpoints.
INTERVAL_S = 1.0
#: The writer's own automatic checkpoint, should this thread fall far behind (pages of 4 KiB).
BACKSTOP_PAGES = 16_000


class Checkpointer:
    """A thread that checkpoints the database at ``path`` every ``interval`` seconds."""

    def __init__(self, path: str, interval: float = INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        #: Checkpoints run so far (the tests wait for one).
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="parley-store-checkpoint", daemon=True
        )

    @property
    def running(self) -> bool:
        """Whether its thread is alive."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (its connection is opened there)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, after the checkpoint under way if there is one."""
        self._stop.set()
        if self.running:
            self._thread.join()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log_event("store.checkpoints_off", logging.WARNING, error=str(exc))
            return
        try:
            db.execute("PRAGMA busy_timeout = 1000")
            while not self._stop.wait(self.interval):
                self.checkpoint(db)
        finally:
            db.close()

    def checkpoint(self, db: sqlite3.Connection) -> None:
        """One ``PASSIVE`` checkpoint; a failure is logged and the next one tries again."""
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log_event("store.checkpoint_failed", logging.WARNING, error=str(exc))
        self.runs += 1
