"""The coordinator's lease, as one instance holds it: taken, renewed, lost, with fencing.

One instance of a service holds ``parley:coordinator`` (``SET NX PX``, 4 s, renewed every
tick) and its hub decides for everyone. An instance can stall (not scheduled, SIGSTOP, Redis
slow) for longer than its lease, and meanwhile another may take over: two hubs must never
decide at once. So every take increments the fencing token ``parley:epoch`` (:data:`TAKE`),
and the holder renews with the epoch it took (:data:`RENEW`): a lease found free is taken back
only when no one took it since (the epoch unchanged: we only stalled) or when Redis lost
everything (no epoch: it restarted); otherwise it is lost. And the holder decides only while
the lease it last renewed surely holds (sent time + :data:`LEASE_MS` - :data:`LEASE_MARGIN_S`),
waiting for the next renewal past that (:meth:`Lease.until_deciding`).
"""

from __future__ import annotations

import asyncio
import time
from enum import IntEnum

from signaling.server.bus.keys import EPOCH, LEASE, Client

LEASE_MS = 4000
#: What a coordinator allows for Redis's clock and the renewal's trip: it stops deciding this
#: long before the lease it last renewed runs out.
LEASE_MARGIN_S = 0.5

#: Take the free lease: the new epoch (fencing token), or 0 if someone holds it.
TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""

#: Renew our lease (taken in epoch ARGV[3]): 1 if it was ours; 2 if it was free and the epoch gone
#: too (Redis restarted: lists and mirror gone); 3 if it lapsed and nobody took it since (we
#: stalled; retaken); 0 if another instance holds it or took it after us: we lost it.
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  local epoch = redis.call('GET', KEYS[2])
  if not epoch then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    redis.call('SET', KEYS[2], ARGV[3])
    return 2
  elseif epoch == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 3
  end
end
return 0
"""

#: Delete the lease if it is still ours (a clean stop hands over at once).
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"


class Renewal(IntEnum):
    """What a renewal found (:data:`RENEW`'s answers)."""

    LOST = 0
    HELD = 1
    REDIS_RESTARTED = 2
    LAPSED = 3


class Lease:
    """The lease as instance ``instance`` holds it (``held``) or not."""

    def __init__(self, instance: int) -> None:
        self.instance = instance
        #: The epoch in which we took the lease, while we hold it (taking over included).
        self.epoch: int | None = None
        #: Set for good when another instance took the lease we held.
        self.lost = False
        #: Until when (``time.monotonic()``) the lease we last renewed surely still holds.
        self._until = 0.0
        #: Set at each renewal and when the lease is lost: wakes work waiting for the lease.
        self._news = asyncio.Event()

    @property
    def held(self) -> bool:
        """Whether we hold the lease (taking over included)."""
        return self.epoch is not None

    async def take(self, redis: Client) -> bool:
        """Take the lease if it is free; from then on :meth:`renew` it every tick."""
        sent = time.monotonic()
        epoch = int(await redis.eval(TAKE, 2, LEASE, EPOCH, str(self.instance), LEASE_MS))
        if epoch == 0:
            return False
        self.epoch = epoch
        self._until = sent + LEASE_MS / 1000 - LEASE_MARGIN_S
        return True

    async def renew(self, redis: Client) -> Renewal:
        """Renew the lease we hold; :attr:`Renewal.LOST` means call :meth:`lose`."""
        assert self.epoch is not None
        sent = time.monotonic()
        answer = Renewal(
            await redis.eval(RENEW, 2, LEASE, EPOCH, str(self.instance), LEASE_MS, str(self.epoch))
        )
        if answer is not Renewal.LOST:
            self._until = sent + LEASE_MS / 1000 - LEASE_MARGIN_S
            self._news.set()
        return answer

    async def release(self, redis: Client) -> None:
        """Give the lease up if we hold it (the next instance need not wait for it to lapse)."""
        if self.epoch is not None:
            await redis.eval(RELEASE, 1, LEASE, str(self.instance))

    def lose(self) -> None:
        """Another instance took the lease after ours lapsed: for good."""
        self.lost = True
        self.epoch = None
        self._news.set()

    def deciding(self) -> bool:
        """Whether the lease we hold surely has not run out (we may have stalled meanwhile)."""
        return self.epoch is not None and time.monotonic() < self._until

    async def until_deciding(self) -> bool:
        """Wait until our lease is known to hold (the next renewal); False once it is lost."""
        while self.epoch is not None:
            if time.monotonic() < self._until:
                return True
            self._news.clear()
            await self._news.wait()
        return False

    async def timer_may_fire(self) -> bool:
        """A hub timer's work runs only while our lease surely holds (or on an edge)."""
        if self.lost:
            return False
        return self.epoch is None or await self.until_deciding()
