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
