"""Waiting for a condition inside an async test, one way for every folder that needs it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until[T](predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
    """Poll ``predicate`` every 20 ms until it returns something true, and return that.

    After ``timeout`` seconds, TimeoutError naming ``what``. The loop keeps running between
    polls, so Qt signals and asyncio callbacks are delivered while it waits.
    """
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.02)
    return value


async def until_async[T](
    check: Callable[[], Awaitable[T]], timeout: float = 10.0, what: str = "", every: float = 0.2
) -> T:
    """As :func:`until`, for a ``check`` that must itself wait (a query to another process):
    awaited every ``every`` seconds until it gives something true."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(every)
    return value


async def settled[T](
    value: Callable[[], T], hold: float = 1.0, timeout: float = 20.0, what: str = ""
) -> T:
    """Wait until ``value()`` has stayed the same for ``hold`` seconds, and return it.

    For "nothing more comes" after a change whose notice can overtake what was already on its
    way: the server tells the others of a mute over TCP while audio sent before it still waits
    in their UDP sockets, each datagram read on a pass of the loop of its own (at load 20, up
    to 0.8 s of audio came after the notice). ``hold`` counts polls too (half of those it
    would take on an idle loop): a loop that did not run, starved or blocked, has read
    nothing, so wall time alone would call a backlog settled. After ``timeout`` seconds of
    change, TimeoutError naming ``what``.
    """
    every = 0.02
    deadline = time.monotonic() + timeout
    last, since, polls = value(), time.monotonic(), 0
    while True:
        await asyncio.sleep(every)
        now, current = time.monotonic(), value()
        if current != last:
            last, since, polls = current, now, 0
        else:
            polls += 1
            if now - since >= hold and polls >= hold / every / 2:
                return last
        if now > deadline:
            raise TimeoutError(f"still changing after {timeout:g} s: {what}")
