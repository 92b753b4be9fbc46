"""The names a service of several instances shares in Redis, and the pace it keeps.

One place for them, so that the parts of the Redis bus (``redis.py``, ``lease.py``,
``remote.py``) agree on every key without importing one another.
"""

from __future__ import annotations

from typing import Any

#: redis-py's asyncio client (its annotations are the sync client's, unions mypy cannot await).
Client = Any

PREFIX = "parley:"
#: The coordinator's lease (``lease.py``) and its fencing token, incremented by every take.
LEASE = PREFIX + "coordinator"
EPOCH = PREFIX + "epoch"
TO_COORDINATOR = PREFIX + "to-coordinator"
ANNOUNCE = PREFIX + "announce"
CALLS = PREFIX + "calls"
PRESENCE = PREFIX + "presence"
MEETINGS = PREFIX + "meetings"
#: Set by the first coordinator of a Redis database: history left open before it is closed.
STARTED = PREFIX + "started"

#: How often leases and heartbeats are renewed, and how long a heartbeat lasts.
TICK_S = 0.5
BEAT_MS = 3000
#: Ticks an edge must see the lease free before it takes it.
FREE_TICKS = 3
#: An instance whose heartbeat has been gone this long has lost its connections.
DEAD_AFTER_S = 2.0
#: How long a new coordinator waits for the live instances to announce their connections.
ANNOUNCE_WAIT_S = 3.0
#: What a probe of a remote connection allows beyond its own wait, for the hops through Redis.
PROBE_SLACK_S = 2.0
#: How long an instance's list outlives the last item pushed to it (nobody may read it again).
LIST_TTL_S = 120
#: How often a list's time to live is renewed while items are pushed to it.
EXPIRE_EVERY_S = 10.0
#: Items kept for one list while Redis is away.
MAX_QUEUED = 100_000
#: Items read from a list at once.
BATCH = 500


def inbox(instance: int) -> str:
    """The list the coordinator sends an edge's connections' messages to."""
    return f"{PREFIX}to:{instance}"


def beat(instance: int) -> str:
    """An instance's heartbeat key."""
    return f"{PREFIX}instance:{instance}"
