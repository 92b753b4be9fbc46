"""The PostgreSQL store's batches of call writes (signaling/server/store/postgres_calls.py) when
their writer is cancelled: every caller is answered, none waits forever. (The batches against a
real PostgreSQL: tests/server/test_store.py and test_store_failures.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from signaling.protocol.messages import Media
from signaling.server.store import CallRecord, StoreUnavailable
from signaling.server.store.postgres_calls import CallWrites

AV = Media(audio=True, video=True)


class Database:
    """A ``transact`` that refuses any batch of several writes for its data and holds a batch of
    one until told, as a lock held elsewhere would."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.go_on = asyncio.Event()

    async def transact(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        connection = Recorder()
        await fn(connection)
        if connection.rows > 1:
            raise asyncpg.exceptions.DataError("invalid byte sequence")
        self.held.set()
        await self.go_on.wait()
        return connection.inserted


class Recorder:
    """Stands in for a connection: counts the rows of a batch's statements."""

    def __init__(self) -> None:
        self.rows = 0
        self.inserted: set[str] = set()

    async def fetch(self, _sql: str, ids: list[str], *_columns: list[Any]) -> list[dict[str, str]]:
        self.rows += len(ids)
        self.inserted.update(ids)
        return [{"call_id": call_id} for call_id in ids]

    async def execute(self, _sql: str, ids: list[str], *_columns: list[Any]) -> str:
        self.rows += len(ids)
        return f"UPDATE {len(ids)}"


@pytest.mark.parametrize("when", ["writing one at a time", "waiting for the next batch"])
async def test_a_cancelled_writer_answers_every_caller(when: str) -> None:
    database = Database()
    writes = CallWrites(database.transact)
    callers = [
        asyncio.create_task(writes.insert(CallRecord(f"c{n}", "ada", "bob", AV, float(n))))
        for n in range(3)
    ]
    await asyncio.wait_for(database.held.wait(), 10)  # the batch refused, its first write alone
    if when == "waiting for the next batch":
        callers.append(asyncio.create_task(writes.ended("c0", 9.0, "hangup")))
        await asyncio.sleep(0)
    writer = writes._writer
    assert writer is not None
    writer.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 10)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    await asyncio.wait_for(writes.drain(), 10)
    assert writes._writer is None
