"""Committed writes are answered a few per turn of the event loop, not all in one turn.

A write's caller waits for its transaction's commit, and a commit answers every write it carried.
Most commits carry one or two writes (1.08 on average at 1,000 writes/s). But a disk's sync now
and then takes much longer: on the 2-core test machine, 10 of 10,181 commits in 10 s took 5-330 ms.
The writes that arrive meanwhile all share the next commit, 40-230 of them. Answered in one turn,
their callers all go on in the next one (each invite's ``ok`` and ``call.ringing``, each cancel's
``ok`` and ``call.ended`` to both parties) before any frame that has just come in is read, and
invites arriving then waited 15-25 ms for ``call.incoming``, which otherwise needs no commit. With
the database on disk, the invite benchmark's slowest invites came in those clusters, and its p99
was 3-5 times the bare relay's, against 1.1-1.5 times with the same database in memory on a quiet
host (docs/performance.md, "A slow sync, answered in slices").

:class:`PacedAnswers` hands out :data:`PER_TURN` answers a turn, in the order the writes were
committed (across commits too), so that what arrived meanwhile is read and handled between
slices. The writes answered later had already waited for the sync; a slice more is nothing beside
it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

#: Answers handed out per turn of the loop. Under 200 ms stalls, 8 gave the lowest invite p99 of
#: 4, 8 and 16 (docs/performance.md).
PER_TURN = 8


class PacedAnswers:
    """Settles write futures at most :data:`PER_TURN` a turn, in order: at once while the share
    lasts, then from a queue. A share that runs out is refilled on the loop's next turn, so a
    turn costs no callback of its own until it has answered :data:`PER_TURN` (one per commit
    cost 1.6% of a call's instructions)."""

    def __init__(self, per_turn: int = PER_TURN) -> None:
        self.per_turn = per_turn
        self._waiting: deque[tuple[asyncio.Future[Any], bool, Any]] = deque()
        self._share = per_turn
        #: The loop on whose next turn the share is refilled, once it has run out.
        self._refill_on: asyncio.AbstractEventLoop | None = None

    def result(self, future: asyncio.Future[Any], value: Any = None) -> None:
        """Answer ``future`` with ``value``, after the answers already waiting."""
        self._answer(future, True, value)

    def exception(self, future: asyncio.Future[Any], error: BaseException) -> None:
        """Answer ``future`` with ``error``, after the answers already waiting."""
        self._answer(future, False, error)

    def flush(self) -> None:
        """Hand out every answer waiting now (the store is closing)."""
        while self._waiting:
            _settle(*self._waiting.popleft())

    def _answer(self, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        if self._refill_on is not None and self._refill_on.is_closed():  # (closed first)
            self._refill_on = None
            self._share = self.per_turn
        if self._share > 0 and not self._waiting:
            self._share -= 1
            _settle(future, ok, value)
        else:
            self._waiting.append((future, ok, value))
        if (self._share == 0 or self._waiting) and self._refill_on is None:
            self._refill_on = future.get_loop()
            self._refill_on.call_soon(self._refill)

    def _refill(self) -> None:
        self._share = self.per_turn
        while self._share > 0 and self._waiting:
            self._share -= 1
            _settle(*self._waiting.popleft())
        loop = self._refill_on
        if self._share == 0 and loop is not None and not loop.is_closed():
            loop.call_soon(self._refill)
        else:
            self._refill_on = None


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done() or future.get_loop().is_closed():  # its caller was cancelled, or is gone
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


__all__ = ["PER_TURN", "PacedAnswers"]
