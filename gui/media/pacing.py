"""Real-time pacing shared by the synthetic tracks."""

from __future__ import annotations

import asyncio
import math
import time


class RealtimePacer:
    """Hands out frame slots on a ``time.monotonic`` schedule: slot k is due at start + k * period.

    Deadlines are absolute, so sleep overshoot never accumulates into drift (aiortc's own tracks
    use ``time.time()``, which jumps with the wall clock). When the consumer falls more than
    ``max_lag`` seconds behind (a blocked event loop, a suspended laptop), the pacer skips
    ahead instead of bursting out every missed frame: the returned slot index jumps, so
    timestamps derived from it keep following real time.
    """

    def __init__(self, period: float, max_lag: float = 0.5) -> None:
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self.max_lag = max_lag
        self.start: float | None = None
        self.slot = -1
        #: How many slots were skipped because the consumer fell behind.
        self.skipped = 0
        self._wakeup: asyncio.Future[None] | None = None

    async def wait(self) -> int:
        """Sleep until the next slot is due and return its index (0 for the first call)."""
        now = time.monotonic()
        if self.start is None:
            self.start = now
            self.slot = 0
            return 0
        self.slot += 1
        due = self.start + self.slot * self.period
        if now - due > self.max_lag:
            behind = math.floor((now - self.start) / self.period)
            self.skipped += behind - self.slot
            self.slot = behind
            due = self.start + self.slot * self.period
        delay = due - now
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._wakeup = wakeup = loop.create_future()
            timer = loop.call_later(delay, _wake, wakeup)
            try:
                await wakeup
            finally:
                timer.cancel()
                self._wakeup = None
        return self.slot

    def interrupt(self) -> None:
        """End the current wait now (the track was stopped: its recv() should not linger)."""
        if self._wakeup is not None:
            _wake(self._wakeup)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
