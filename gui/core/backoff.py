"""Reconnection delays: exponential backoff with full jitter.

Full jitter (a random delay between 0 and the exponential cap) spreads a crowd
of clients that lost the same server, so they do not all come back in the
same instant. The random source is injectable so tests are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays for successive reconnection attempts."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    #: The first attempt after a drop waits at least this long (a short pause, not zero).
    minimum: float = 0.1
    rand: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one attempt."""
        cap = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return max(self.minimum, cap * self.rand())

    def reset(self) -> None:
        """A connection succeeded: start again from the shortest delay."""
        self.attempt = 0
