"""Rate limits: a token bucket for requests, a failure counter for logins.

Both take the current time as an argument instead of reading a clock, so the
tests step time by hand.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


def _retry_after(seconds: float) -> int:
    """Whole seconds to wait, at least 1 (the protocol's ``retry_after``)."""
    return max(1, math.ceil(seconds))


class TokenBucket:
    """Allows ``burst`` requests at once and ``rate`` per second after that."""

    __slots__ = ("_level", "_stamp", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._stamp = now

    def take(self, now: float) -> int | None:
        """Spend one token; ``None`` if allowed, else seconds to wait."""
        self._level = min(self.burst, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._level >= 1:
            self._level -= 1
            return None
        return _retry_after((1 - self._level) / self.rate)


@dataclass(slots=True)
class _Window:
    started: float
    failures: int


class FailureLimiter:
    """Counts failures per key (a username, an address) in fixed windows.

    After ``limit`` failures within ``window`` seconds the key is refused
    until the window ends. Memory stays bounded: at most ``max_keys`` keys,
    the oldest dropped first.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def blocked(self, key: str, now: float) -> int | None:
        """``None`` if ``key`` may try; else seconds until it may."""
        entry = self._windows.get(key)
        if entry is None:
            return None
        if now - entry.started >= self.window:
            del self._windows[key]
            return None
        if entry.failures >= self.limit:
            return _retry_after(entry.started + self.window - now)
        return None

    def failed(self, key: str, now: float) -> None:
        """Count one failure."""
        entry = self._windows.get(key)
        if entry is None or now - entry.started >= self.window:
            self._windows[key] = _Window(now, 1)
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        else:
            entry.failures += 1

    def succeeded(self, key: str) -> None:
        """Forget past failures (after a right password)."""
        self._windows.pop(key, None)
