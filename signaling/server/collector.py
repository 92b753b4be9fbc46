"""Python's full garbage collections, kept short in a server that holds many connections.

CPython 3.12 runs a full collection each time the objects that survived its young
collections add up to a quarter of the long-lived ones, and a full collection walks every
tracked object. A server with 15,000 connections holds about 1.2 million (some 80 per
connection); measured (docs/performance.md, issue 12), its full collections then stopped the
event loop for 0.7 to 1 s, almost all of them finding nothing: the connections' objects are
alive, and were walked again and again. With one such pause in every ten seconds of invites,
the p99 of invite → ``call.incoming`` was about 1 s on an idle machine.

:class:`LongLivedCollector` takes what survived a full collection out of the collector's
view (``gc.freeze()``), and runs a full collection itself every second: each one walks only
what became long-lived in that second (tens of milliseconds at most), where CPython's walked
every connection. Frozen objects still die by reference counting. What the collector no
longer finds is a frozen cycle: a closed connection is one (websockets' connection refers to
itself through its logger, its transport and its tasks; about 70 objects each, measured). So
when the process's resident memory has grown by half since the last time, ten minutes ago
or more, or has doubled since a minute ago or more (and by 64 MiB at least), every frozen
object is handed back and collected once: one pause as long as CPython's own, only when that
much may be garbage. A server whose connections stay pays no such pause; one that has just
taken its connections pays one a minute after its start (CPython's own rule paid one at each
growth by a quarter, while the connections came). (Counting the frozen objects instead,
``gc.get_freeze_count()``, walks all of them: done each second at 15,000 connections, it put
the p99 at 150 to 250 ms.)

Process-wide (the collector is): for ``parley-server`` and the benchmarks' servers, never for
the app, whose collector runs on the Qt thread (``gui/app/collector.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from signaling.server.logs import log_event

#: How often a full collection runs over what is new (and the memory is looked at).
CHECK_EVERY_S = 1.0
#: Growth of the resident memory, as a share of it just after the last reclaim, that makes
#: the next check hand every frozen object back and collect, once ``RECLAIM_AFTER_S`` passed
#: since the last reclaim (the memory of a server still taking its connections grows with
#: nothing to reclaim) ...
RECLAIM_GROWTH = 0.5
RECLAIM_AFTER_S = 600.0
#: ... and the growth that does sooner, ``RECLAIM_SOON_S`` after the last (a storm of
#: reconnections leaves its garbage; a server just started grows with nothing to reclaim).
RECLAIM_GROWTH_SOON = 1.0
RECLAIM_SOON_S = 60.0
#: The least growth that does, in bytes (a server just started is small).
RECLAIM_FLOOR = 64 << 20


#: A threshold of collections of the middle generation that is never reached.
NEVER = 1 << 30


def resident_bytes() -> int | None:
    """This process's resident memory (Linux's ``/proc/self/statm``), or None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class LongLivedCollector:
    """Freezes the survivors of every full collection; collects them again when the memory
    grew."""

    def __init__(
        self,
        growth: float = RECLAIM_GROWTH,
        floor: int = RECLAIM_FLOOR,
        after_s: float = RECLAIM_AFTER_S,
    ) -> None:
        self.growth = growth
        self.floor = floor
        self.after_s = after_s
        #: Resident memory just after the last reclaim (or the start); None: not measurable.
        self.kept: int | None = None
        #: ``time.monotonic()`` of the last reclaim (or the start).
        self.kept_at = time.monotonic()
        #: Reclaims so far.
        self.reclaims = 0
        self._thresholds = gc.get_threshold()

    def start(self) -> None:
        """Freeze what exists (what the server set up lives as long as it) and every full
        collection's survivors from now on."""
        gc.collect()
        gc.freeze()
        self.kept, self.kept_at = resident_bytes(), time.monotonic()
        gc.callbacks.append(self._collected)
        # Full collections are this collector's (:meth:`run`): CPython's own rule, a quarter
        # of the few objects left unfrozen, would start one every few young collections.
        self._thresholds = gc.get_threshold()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        """Leave the collector as CPython runs it."""
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._collected)
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()  # what a full collection kept is long-lived

    def due(self) -> bool:
        """Whether the memory grew enough since the last reclaim to collect every frozen
        object again: by half after ``after_s``, or doubled after a minute (where it cannot
        be measured, never: frozen cycles then wait for :meth:`reclaim`)."""
        now = resident_bytes()
        if now is None or self.kept is None:
            return False
        grown, since = now - self.kept, time.monotonic() - self.kept_at
        if grown < self.floor:
            return False
        if grown >= self.kept * RECLAIM_GROWTH_SOON and since >= RECLAIM_SOON_S:
            return True
        return grown >= self.kept * self.growth and since >= self.after_s

    def reclaim(self) -> int:
        """Hand every frozen object back, collect, freeze the survivors: the cycles that
        died while frozen (closed connections) are freed. Returns the objects found."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.kept, self.kept_at = resident_bytes(), time.monotonic()
        self.reclaims += 1
        log_event(
            "gc.reclaimed",
            found=found,
            resident_mb=None if self.kept is None else self.kept >> 20,
            ms=round((time.perf_counter() - started) * 1000),
        )
        return found

    async def run(self, every_s: float = CHECK_EVERY_S) -> None:
        """Every ``every_s``, reclaim when due, else a full collection over what is new (kept
        short by its pace), until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            if self.due():
                self.reclaim()
            else:
                gc.collect()


@contextlib.asynccontextmanager
async def long_lived_heap(every_s: float = CHECK_EVERY_S) -> AsyncIterator[LongLivedCollector]:
    """A :class:`LongLivedCollector` at work on the running loop while the block runs."""
    collector = LongLivedCollector()
    collector.start()
    task = asyncio.get_running_loop().create_task(collector.run(every_s))
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        collector.stop()
