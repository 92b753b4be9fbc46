"""The calls' history in PostgreSQL, written in batches: one transaction for all that wait.

Every invite writes a row and every end updates it, two writes per call. Written one by
one, each is a pool connection taken and given back, a statement and a commit flushed to
PostgreSQL's log, all on the event loop's thread: on the coordinator of several instances
that was a quarter of its time (docs/performance.md, issue 12). Here the writes that arrive
while a batch is being written wait for the next, and a batch is one transaction of at most
three statements (the new rows, the answers, the ends), each over arrays (``unnest``), so its
cost hardly grows with its size, as SQLite's group commit does (``store/sqlite.py``).

Each caller is answered once its batch is committed, as before. A call id already used
fails that insert alone (``ON CONFLICT DO NOTHING`` and the ids the insert returned); a
database that fails fails the whole batch, each caller with the store's error; a batch that
PostgreSQL refuses for what one write holds, or that lost a deadlock, is written again one
write at a time, so that only the write at fault fails. One trade-off: a batch waiting for a
lock on ``calls`` (a deletion of an account, say) holds up the instance's other call writes
meanwhile, where each write waited alone before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from signaling.server.store.answers import PacedAnswers
from signaling.server.store.base import CallIdTaken, CallRecord, StoreUnavailable

Connection = Any  # asyncpg.Connection; asyncpg ships no stubs
#: The store's way to run ``fn`` in one transaction on a pooled connection.
Transact = Callable[[Callable[[Connection], Awaitable[Any]]], Awaitable[Any]]

#: What makes a batch be written again one write at a time: PostgreSQL refused what one write
#: holds (SQLSTATE classes 22 and 23), or the batch lost a deadlock to another transaction
#: (class 40). Anything else (a database gone or busy) fails the whole batch.
_ONE_AT_A_TIME: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.TransactionRollbackError,
)

_INSERT = """
    INSERT INTO calls
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[],
                         $6::float8[], $7::float8[], $8::float8[], $9::text[])
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id
"""
_ANSWERED = """
    UPDATE calls SET answered_at = v.at
    FROM unnest($1::text[], $2::float8[]) AS v(call_id, at)
    WHERE calls.call_id = v.call_id
"""
_ENDED = """
    UPDATE calls SET ended_at = v.at, reason = v.reason
    FROM unnest($1::text[], $2::float8[], $3::text[]) AS v(call_id, at, reason)
    WHERE calls.call_id = v.call_id AND calls.ended_at IS NULL
"""


@dataclass
class _Batch:
    """The writes waiting for one transaction, each with the future its caller awaits."""

    inserts: list[tuple[CallRecord, asyncio.Future[None]]] = field(default_factory=list)
    #: call id -> (time, futures): the last answer of a call wins, as one update after another.
    answered: dict[str, tuple[float, list[asyncio.Future[None]]]] = field(default_factory=dict)
    #: call id -> (time, reason, futures): the first end of a call wins (``ended_at IS NULL``).
    ended: dict[str, tuple[float, str, list[asyncio.Future[None]]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.answered or self.ended)

    def single(self) -> bool:
        """Whether this is one write (one call's row, answer or end)."""
        return len(self.inserts) + len(self.answered) + len(self.ended) <= 1

    def split(self) -> list[_Batch]:
        """One batch per write, in the order they are written."""
        return [
            *(_Batch(inserts=[insert]) for insert in self.inserts),
            *(_Batch(answered={call: one}) for call, one in self.answered.items()),
            *(_Batch(ended={call: one}) for call, one in self.ended.items()),
        ]

    def fail(self, error: BaseException, answers: PacedAnswers) -> None:
        """Answer every caller still waiting with ``error``."""
        for future in self.futures():
            answers.exception(future, error)

    def futures(self) -> list[asyncio.Future[None]]:
        return [
            *(future for _, future in self.inserts),
            *(f for _, futures in self.answered.values() for f in futures),
            *(f for _, _, futures in self.ended.values() for f in futures),
        ]


async def _write(db: Connection, batch: _Batch) -> set[str]:
    """The batch's statements (inserts first: a call may start and end in one batch); returns
    the call ids inserted."""
    inserted: set[str] = set()
    if batch.inserts:
        firsts: dict[str, CallRecord] = {}
        for record, _ in batch.inserts:
            firsts.setdefault(record.call_id, record)  # a second row of one id is taken anyway
        rows = list(firsts.values())
        returned = await db.fetch(
            _INSERT,
            [r.call_id for r in rows],
            [r.caller for r in rows],
            [r.callee for r in rows],
            [int(r.media.audio) for r in rows],
            [int(r.media.video) for r in rows],
            [r.started_at for r in rows],
            [r.answered_at for r in rows],
            [r.ended_at for r in rows],
            [r.reason for r in rows],
        )
        inserted = {row["call_id"] for row in returned}
    if batch.answered:
        ids = list(batch.answered)
        await db.execute(_ANSWERED, ids, [batch.answered[i][0] for i in ids])
    if batch.ended:
        ids = list(batch.ended)
        await db.execute(
            _ENDED, ids, [batch.ended[i][0] for i in ids], [batch.ended[i][1] for i in ids]
        )
    return inserted


class CallWrites:
    """Batches :meth:`insert`, :meth:`answered` and :meth:`ended` into one transaction each
    time, through the store's ``transact``."""

    def __init__(self, transact: Transact) -> None:
        self._transact = transact
        self._waiting = _Batch()
        self._writer: asyncio.Task[None] | None = None
        #: Committed writes are answered a few per turn (answers.py: after a slow commit).
        self._answers = PacedAnswers()

    async def insert(self, record: CallRecord) -> None:
        """A new call's row; :class:`CallIdTaken` if its id is used."""
        future = self._future()
        self._waiting.inserts.append((record, future))
        await future

    async def answered(self, call_id: str, at: float) -> None:
        """A call's answer time."""
        future = self._future()
        _, futures = self._waiting.answered.pop(call_id, (at, []))
        self._waiting.answered[call_id] = (at, [*futures, future])
        await future

    async def ended(self, call_id: str, at: float, reason: str) -> None:
        """A call's end, once: a second end of a call leaves the first."""
        future = self._future()
        first_at, first_reason, futures = self._waiting.ended.get(call_id, (at, reason, []))
        self._waiting.ended[call_id] = (first_at, first_reason, [*futures, future])
        await future

    async def drain(self) -> None:
        """Wait for what is waiting or being written (before the store closes)."""
        while self._writer is not None:
            await asyncio.wait([self._writer])
        self._answers.flush()

    def _future(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if self._writer is None:
            self._writer = loop.create_task(self._write_all())
        return loop.create_future()

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, _Batch()
                with contextlib.suppress(Exception):  # its callers have it
                    await self._commit(batch)
        except BaseException:  # cancelled: what waits will not be written
            self._waiting.fail(_cancelled(), self._answers)
            self._waiting = _Batch()
            raise
        finally:
            self._writer = None

    async def _commit(self, batch: _Batch) -> None:
        try:
            inserted: set[str] = await self._transact(lambda db: _write(db, batch))
        except _ONE_AT_A_TIME as exc:
            if batch.single():
                batch.fail(exc, self._answers)
                raise
            try:
                for one in batch.split():  # so that only the write at fault fails
                    with contextlib.suppress(Exception):  # its caller has it
                        await self._commit(one)
            except BaseException:
                batch.fail(_cancelled(), self._answers)
                raise
            return
        except Exception as exc:  # the database gone or busy: each caller gets it
            batch.fail(exc, self._answers)
            raise
        except BaseException:
            batch.fail(_cancelled(), self._answers)
            raise
        claimed: set[str] = set()
        for record, future in batch.inserts:
            won = record.call_id in inserted and record.call_id not in claimed
            if won:
                claimed.add(record.call_id)
            if won:
                self._answers.result(future)
            else:
                self._answers.exception(future, CallIdTaken(record.call_id))
        for _, futures in batch.answered.values():
            for future in futures:
                self._answers.result(future)
        for _, _, futures in batch.ended.values():
            for future in futures:
                self._answers.result(future)


def _cancelled() -> StoreUnavailable:
    """The error of a write whose writer was cancelled (the loop shutting down): not committed,
    so it may be tried again."""
    return StoreUnavailable("the write was cancelled before it was committed")
