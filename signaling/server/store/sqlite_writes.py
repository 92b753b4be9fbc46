"""The SQLite store's writes: one connection on one thread, with *group commit*.

Writes that arrive while a commit is under way wait and then share the next transaction (each in
its own savepoint, so one failing write rolls back alone; a write of one statement needs none,
since SQLite backs a failing statement out by itself), and every caller is answered only after
that transaction's ``COMMIT``, a few per turn of the loop (:mod:`.answers`).

A commit syncs the log to the disk when one of its writes asks for it (``synced``, the default:
accounts, contacts, meetings). The calls' history rows, a thousand a second under load, do not:
the connection runs ``synchronous=NORMAL`` and switches to ``FULL`` for a transaction that holds
a synced write. A commit that is not synced survives a killed process (the log's pages are the
kernel's once written) but not a power cut; the log is synced by the next synced commit or by
the next checkpoint (:mod:`.sqlite_checkpoints`, once a second), whichever comes first.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from signaling.server.store.answers import PacedAnswers
from signaling.server.store.base import StoreError

T = TypeVar("T")


class GroupCommit:
    """The writing connection's transactions, one at a time on its thread."""

    def __init__(self, thread: ThreadPoolExecutor) -> None:
        self._thread = thread
        #: The writing connection, while the store is open.
        self.db: sqlite3.Connection | None = None
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._committing = False
        #: Committed writes are answered a few per turn (answers.py: after a slow sync).
        self._answers = PacedAnswers()
        #: Transactions that committed a write (the tests check that writes share them).
        self.commits = 0

    async def run(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        one_statement: bool = False,
        synced: bool = True,
    ) -> T:
        """Run ``fn`` in a write transaction; returns once that transaction is committed.
        ``one_statement``: ``fn`` runs a single SQL statement, so it needs no savepoint of its
        own (two statements fewer, each a hand-off of the GIL, on the calls' path).
        ``synced``: the commit waits for the disk's sync (a power cut cannot undo it); without
        it, a killed process still cannot."""
        if self.db is None:
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((Write(fn, one_statement, synced), future))
        if not self._committing:
            self._commit_pending(loop)
        return await future

    async def drain(self) -> None:
        """Wait for the writes under way and waiting, and answer them all (the store closes)."""
        # A few milliseconds at most, once, at shutdown.
        while self._committing or self._pending:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        self._answers.flush()

    def _commit_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        self._committing = True
        db = self.db
        assert db is not None
        done = loop.run_in_executor(self._thread, _commit_batch, db, [w for w, _ in batch])
        done.add_done_callback(lambda outcome: self._committed(loop, batch, outcome))

    def _committed(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Write, asyncio.Future[Any]]],
        outcome: asyncio.Future[list[tuple[bool, Any]]],
    ) -> None:
        error = outcome.exception() if not outcome.cancelled() else StoreError("cancelled")
        if error is None and any(ok for ok, _ in outcome.result()):
            self.commits += 1  # a lone write that failed rolled back: nothing was committed
        for index, (_, future) in enumerate(batch):
            if error is not None:
                self._answers.exception(future, error)
                continue
            ok, value = outcome.result()[index]
            if ok:
                self._answers.result(future, value)
            else:
                self._answers.exception(future, value)
        self._committing = False
        if self._pending and self.db is not None:
            self._commit_pending(loop)


class Write(NamedTuple):
    """One write waiting for the next transaction."""

    fn: Callable[[sqlite3.Connection], Any]
    #: ``fn`` is one statement: SQLite backs it out alone when it fails, no savepoint needed.
    one_statement: bool = False
    #: Its commit syncs the log to the disk (``synchronous=FULL`` for that transaction).
    synced: bool = True


def _commit_batch(db: sqlite3.Connection, writes: list[Write]) -> list[tuple[bool, Any]]:
    """Run ``writes`` in one transaction, each in a savepoint unless it is one statement;
    commit once, synced if one of them asks for it (the connection runs ``synchronous=NORMAL``
    otherwise). An error that ends the whole transaction (a full disk, say) fails them all:
    it is raised as soon as it is seen (by a one-statement write itself, else by the
    ``ROLLBACK TO`` of a savepoint that is gone).

    A batch of one write of one statement (most of them: a commit carries 1.08 writes on
    average at 1,000 calls/s) runs in autocommit mode, a transaction of its own with the same
    sync at its end, without the ``BEGIN`` and ``COMMIT`` statements: two calls into SQLite
    fewer, each a hand-off of the GIL to the event loop and back."""
    if not any(write.synced for write in writes):
        return _transaction(db, writes)
    db.execute("PRAGMA synchronous = FULL")
    try:
        return _transaction(db, writes)
    finally:
        db.execute("PRAGMA synchronous = NORMAL")


def _transaction(db: sqlite3.Connection, writes: list[Write]) -> list[tuple[bool, Any]]:
    if len(writes) == 1 and writes[0].one_statement:
        try:
            return [(True, writes[0].fn(db))]
        except Exception as exc:
            return [(False, exc)]
    results: list[tuple[bool, Any]] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for write in writes:
            if write.one_statement:
                try:
                    results.append((True, write.fn(db)))
                except Exception as exc:
                    if not db.in_transaction:
                        raise  # the error ended the transaction: every write is undone
                    results.append((False, exc))
                continue
            db.execute("SAVEPOINT one_write")
            try:
                results.append((True, write.fn(db)))
            except Exception as exc:
                db.execute("ROLLBACK TO one_write")
                results.append((False, exc))
            db.execute("RELEASE one_write")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return results
