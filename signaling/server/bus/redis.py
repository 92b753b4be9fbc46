"""Several ``parley-server`` instances, one service: the hub's state on one of them at a time.

Every instance terminates WebSockets (TLS, frames). One instance holds a Redis lease, the
*coordinator* (``parley:coordinator``, ``SET NX PX``, renewed every half second): its hub
decides everything, exactly as a single server does, for its own connections and for everyone
else's. The other instances (*edges*) forward their connections' opens, frames and closes to the
list ``parley:to-coordinator``; the coordinator's hub sees each as a :class:`RemotePeer`, whose
``send`` appends to the edge's list ``parley:to:<instance>``, which the edge writes to the socket.

What must outlive the coordinator is mirrored to Redis as it changes (``mirror.py``): calls with
their phases, bound connections and timers' deadlines (``parley:calls``), the presence users
chose (``parley:presence``), and on each edge who is logged in on each of its connections. When
the lease lapses (the coordinator died), an edge that sees it free twice in a row takes it,
loads the mirror, asks every live instance to announce its connections, restores their logins,
resumes the calls' timers from their deadlines, starts the grace of parties whose connection is
gone, and tells contacts of users no longer connected that they went offline.

Instances prove they live by a key each (``parley:instance:<id>``, renewed every half second,
expiring after three seconds); the coordinator counts the connections of an instance whose key is
gone for longer than :data:`DEAD_AFTER_S` as closed (a call's 30 s grace starts then).

After Redis itself restarts (lease, lists and mirror gone), the coordinator takes its lease back
first (edges wait two ticks), writes its whole state again, and asks every instance to announce
its connections: connections it knew and that are gone are closed, so presence is right again.

Meetings are mirrored too (``parley:meetings``: participants, invitations, chat, graces) and
go on. A meeting through a media server gets a new room from the new coordinator, as when its
Janus dies (``sfu/relay.py``): the old room and every handle in it lived in the dead
coordinator's Janus session, which Janus closes with its WebSocket; participants connected are
told ``sfu.reconnect`` and publish again, the others do when they join again, and the sweep
(``sfu/sweep.py``) destroys the old room when the new coordinator connects to the Janus.

A guest's connection is carried over as a user's is, with what its link admitted it to (the
mirror of its login); a guest whose connection died with the coordinator cannot come back (its
page does not log in again), so its part in the call or meeting ends at once.

The Echo Test's calls go on too: the bot runs on every instance, and the new coordinator's
takes over each call the dead one answered (``bots.take_over_call``): the caller's media path
died with that process, so the two ends negotiate a new one inside the call, as after a
network drop (``restart`` on ``rtc.signal``, docs/protocol.md). An instance started with
``--no-echo`` that becomes coordinator ends them ``failed``.

Two coordinators for a moment (issue 12): a coordinator that stalls (not scheduled, SIGSTOP,
Redis slow) longer than its lease may find, when it runs again, that an edge took over. Each
take of the lease increments ``parley:epoch`` (:data:`TAKE`), and the holder renews with its
epoch (:data:`RENEW`): a lease found free is taken back only when no one took it since (the
epoch unchanged: we only stalled) or when Redis lost everything (no epoch: it restarted);
otherwise the lease is lost. An instance renews from the moment it takes the lease, not only
once its take-over is done. A coordinator decides only while the lease it last renewed surely
holds (sent time + 4 s - :data:`LEASE_MARGIN_S`): past that it handles no frame, runs no
timer's work (``WatchedTimers.gate``), writes
nothing it decided (mirror, sends to edges) and puts what it popped from
``parley:to-coordinator`` back at the head, in order, until a renewal says the lease is still
its own. One that lost it drops what it queued, closes its own clients' sockets with 1012 (the
new coordinator counted them gone when its heartbeat lapsed; they log in again, anywhere) and
stops (SIGTERM): its hub's state is stale and must not decide again. So the service always
settles on one coordinator, and what a newcomer decided is never undone by the old one.

Not carried over to a new coordinator: requests in flight at the moment of the switch (the
client's request times out).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, override

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.protocol.constants import (
    ECHO_USERNAME,
    CallReason,
    ErrorCode,
    MeetingReason,
    Presence,
    RequestType,
    Topology,
)
from signaling.protocol.errors import ProtocolError
from signaling.protocol.guests import is_guest_username
from signaling.protocol.messages import (
    Json,
    Login,
    decode_object,
    encode,
    error_message,
    parse_fields,
    read_id,
)
from signaling.server.bots import take_over_call
from signaling.server.bus.base import Bus, BusUnavailable
from signaling.server.bus.mirror import (
    WatchedTimers,
    call_from_json,
    call_json,
    install,
    meeting_from_json,
    meeting_json,
    restore_session,
    session_state,
    timer_reason,
)
from signaling.server.calls import CallPhase
from signaling.server.hub import Hub, Peer, Session, store_error
from signaling.server.logs import log_event
from signaling.server.meetings import Meeting, MeetingTable
from signaling.server.metrics import Metrics
from signaling.server.routing import Background
from signaling.server.store import StoreUnavailable, UserRecord

#: redis-py's asyncio client (its annotations are the sync client's, unions mypy cannot await).
Client = Any

PREFIX = "parley:"
LEASE = PREFIX + "coordinator"
TO_COORDINATOR = PREFIX + "to-coordinator"
ANNOUNCE = PREFIX + "announce"
CALLS = PREFIX + "calls"
PRESENCE = PREFIX + "presence"
MEETINGS = PREFIX + "meetings"
#: Set by the first coordinator of a Redis database: history left open before it is closed.
STARTED = PREFIX + "started"
#: The fencing token: incremented by every instance that takes the lease.
EPOCH = PREFIX + "epoch"

#: How often leases and heartbeats are renewed, and how long each lasts.
TICK_S = 0.5
LEASE_MS = 4000
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


def inbox(instance: int) -> str:
    """The list the coordinator sends an edge's connections' messages to."""
    return f"{PREFIX}to:{instance}"


def beat(instance: int) -> str:
    """An instance's heartbeat key."""
    return f"{PREFIX}instance:{instance}"


@dataclass(eq=False, slots=True)
class LocalConn:
    """A WebSocket on this instance."""

    peer: Peer
    #: Its hub session while this instance is the coordinator.
    session: Session | None = None
    #: Who is logged in on it, as the coordinator last said (``mirror.session_state``).
    state: Json | None = None


class RemotePeer:
    """A connection on another instance, as the coordinator's hub sees it."""

    def __init__(self, conn_id: int, address: str, instance: int, bus: RedisBus) -> None:
        self.id = conn_id
        self.address = address
        self.instance = instance
        self._bus = bus

    def send(self, message: Json) -> None:
        """Queue ``message`` for the connection's instance."""
        self._bus.post(inbox(self.instance), {"k": "send", "c": self.id, "m": message})

    async def probe(self, wait_s: float) -> bool:
        """Whether the client answers a ping within ``wait_s`` (its instance pings it)."""
        return await self._bus.probe_remote(self, wait_s)

    def end(self, code: int, reason: str) -> None:
        """Close the connection once what was sent before is written (a guest's, at the end)."""
        self._bus.post(inbox(self.instance), {"k": "end", "c": self.id, "code": code, "r": reason})


@dataclass(eq=False, slots=True)
class RemoteConn:
    """A connection on another instance, on the coordinator: frames are handled in order."""

    peer: RemotePeer
    session: Session
    #: Frames; a login checked on its edge comes with what it checked (``_check_login``).
    queue: asyncio.Queue[str | bytes | tuple[str, Json] | None] = field(
        default_factory=asyncio.Queue
    )
    task: asyncio.Task[None] | None = None
    state: Json | None = None
    closing: bool = False


class RedisBus(Bus):
    """One instance of a service of several, over Redis (see the module's text)."""

    def __init__(self, url: str, hub: Hub) -> None:
        self.url = url
        self.hub = hub
        self.instance = secrets.randbelow(1 << 30) + 1
        self._ids = itertools.count(1)
        self.coordinator = False
        self.local: dict[int, LocalConn] = {}
        self.remote: dict[int, RemoteConn] = {}
        #: How many of ``remote`` each instance has (its heartbeat is checked every tick).
        self._remote_per_instance: Counter[int] = Counter()
        self._redis: Client | None = None
        self._blocking: Client | None = None
        self._announcer: Client | None = None
        self._out: dict[str, list[str]] = {}
        self._out_ready = asyncio.Event()
        #: When each list's time to live was last renewed (``time.monotonic()``).
        self._expired: dict[str, float] = {}
        self._dirty_calls: set[str] = set()
        self._dirty_presence: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._background = Background("bus")
        self._spawn = self._background.spawn
        self._missing_since: dict[int, float] = {}
        self._meetings_written: dict[str, str] = {}
        self._dirty_meetings: set[str] = set()
        self._meetings_due = False
        self._stopping = False
        #: The epoch in which we took the lease, while we hold it (taking over included).
        self._epoch: int | None = None
        #: Set for good when another instance took the lease we held.
        self._lost = False
        #: Until when (``time.monotonic()``) the lease we last renewed surely still holds.
        self._lease_until = 0.0
        #: Set at each renewal and when the lease is lost: wakes work waiting for the lease.
        self._lease_news = asyncio.Event()
        #: Probes of remote connections waiting for their instance's answer, by nonce.
        self._probes: dict[str, asyncio.Future[bool]] = {}
        #: Whether Redis answered lately: an edge refuses frames (``unavailable``) while not.
        self.reachable = True
        self._unreachable_logged = 0.0
        self._timers: WatchedTimers = install(
            hub, self._call_changed, self._presence_changed, self._meeting_changed
        )
        self._timers.gate = self._timer_may_fire

    # Life cycle -------------------------------------------------------------

    @override
    def next_id(self) -> int:
        # Unique in the service: the instance's random id in the high bits.
        return (self.instance << 32) | next(self._ids)

    def _client(self) -> Client:
        # A Redis that hangs is an error after 5 s (longer than any blocking pop here waits).
        return aioredis.from_url(
            self.url,
            socket_connect_timeout=3,
            socket_timeout=5,
            health_check_interval=5,
            decode_responses=False,
        )

    @override
    async def start(self) -> None:
        try:
            self._redis = self._client()
            self._blocking = self._client()
            self._announcer = self._client()
            await self._redis.ping()
            await self._redis.set(beat(self.instance), b"1", px=BEAT_MS)
        except (RedisError, OSError, ValueError) as exc:
            await self._close_clients()
            where = _masked(self.url)
            raise BusUnavailable(f"cannot reach Redis at {where}: {_reason(exc)}") from None
        log_event("bus.joined", instance=self.instance)
        for work in (self._sender(), self._keep_alive(), self._read_inbox()):
            self._tasks.append(asyncio.get_running_loop().create_task(work))
        # The first instance of a service takes the lease at once.
        try:
            if await self._take_lease():
                await self._take_over()
        except (RedisError, OSError) as exc:
            await self.stop()
            where = _masked(self.url)
            raise BusUnavailable(f"cannot use Redis at {where}: {_reason(exc)}") from None

    @override
    async def stop(self) -> None:
        self._stopping = True
        serving = [c.task for c in self.remote.values() if c.task is not None]
        tasks = [*self._background.tasks, *self._tasks, *serving]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert self._redis is not None
        with contextlib.suppress(RedisError, OSError):
            await self._flush_once()
            if self._epoch is not None:
                # Hand over at once: the next instance need not wait for the lease to lapse.
                await self._redis.eval(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                    1,
                    LEASE,
                    str(self.instance),
                )
            await self._redis.delete(beat(self.instance), inbox(self.instance))
        await self._close_clients()

    @override
    def add_gauges(self, metrics: Metrics) -> None:
        metrics.gauge(
            "parley_bus_coordinator",
            "1 while this instance holds the service's state (the others forward to it).",
            lambda: float(self.coordinator),
        )
        metrics.gauge(
            "parley_bus_local_connections",
            "WebSocket connections on this instance (parley_connections counts the service's, "
            "on the coordinator only).",
            lambda: float(len(self.local)),
        )

    async def _close_clients(self) -> None:
        for client in (self._redis, self._blocking, self._announcer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    # Connections of this instance ----------------------------------------------

    @override
    def open(self, peer: Peer) -> LocalConn:
        conn = LocalConn(peer)
        self.local[peer.id] = conn
        if self.coordinator:
            conn.session = self.hub.connect(peer)
        else:
            self.post(
                TO_COORDINATOR, {"k": "open", "c": peer.id, "i": self.instance, "a": peer.address}
            )
        return conn

    @override
    async def receive(self, conn: Any, data: str | bytes) -> None:
        assert isinstance(conn, LocalConn)
        if conn.session is not None:
            # Our hub decides only while our lease surely holds (lost: the socket closes, 1012).
            if await self._until_deciding():
                await self.hub.receive(conn.session, data)
            return
        if not self.reachable:
            _refuse(conn.peer, data)
            return
        frame: Json = {"k": "frame", "c": conn.peer.id, "i": self.instance}
        if isinstance(data, bytes):
            frame["b"] = data.decode("latin-1")
        else:
            frame["d"] = data
            if conn.state is None and '"login"' in data:
                verified = await self._check_login(conn, data)
                if verified is False:
                    return
                if verified is not None:
                    frame["v"] = verified
        self.post(TO_COORDINATOR, frame)

    async def _check_login(self, conn: LocalConn, data: str) -> Json | bool | None:
        """A login on this edge: its credentials are checked here (the store's reads, Argon2:
        no hub state needed), so the coordinator only binds the session. Returns what goes to
        the coordinator with the frame, ``None`` for a frame that is not a well-formed login
        (the coordinator answers it, as a hub does), ``False`` when it was refused here."""
        try:
            message = decode_object(data)
            if message.get("type") != RequestType.LOGIN.value:
                return None
            request_id = read_id(message)
            request = parse_fields(RequestType.LOGIN, message, request_id)
        except ProtocolError:
            return None
        assert isinstance(request, Login)
        peer = conn.peer
        try:
            user, token = await self.hub.authenticate(peer.id, peer.address, request)
        except StoreUnavailable as exc:
            refusal = store_error(exc)
        except ProtocolError as exc:
            refusal = exc
        else:
            return {"u": user.username, "n": user.display_name, "t": token}
        log_event("request.error", conn=peer.id, type="login", code=refusal.code.value)
        peer.send(error_message(request_id, refusal.code, refusal.message, refusal.retry_after))
        return False

    @override
    async def close(self, conn: Any) -> None:
        assert isinstance(conn, LocalConn)
        self.local.pop(conn.peer.id, None)
        if conn.session is not None:
            await self.hub.disconnect(conn.session)
        else:
            self.post(TO_COORDINATOR, {"k": "close", "c": conn.peer.id, "i": self.instance})

    # Sending ------------------------------------------------------------------

    def post(self, key: str, item: Json) -> None:
        """Append ``item`` to the list ``key``, soon, in order (the sender task writes)."""
        queued = self._out.setdefault(key, [])
        if len(queued) >= MAX_QUEUED:  # Redis away a long time: the oldest go first
            del queued[: MAX_QUEUED // 10]
            log_event("bus.dropped", 30, list=key, count=MAX_QUEUED // 10)
        queued.append(encode(item))
        self._out_ready.set()

    async def _sender(self) -> None:
        while True:
            await self._out_ready.wait()
            # One more turn of the loop: what the handlers woken with this one post goes in
            # the same pipeline (one write to Redis per turn, not one per message).
            await asyncio.sleep(0)
            # A coordinator whose lease is in doubt writes nothing it decided (mirror, sends)
            # until renewed; lost, ``_lost_lease`` dropped it all.
            if self._epoch is not None and not await self._until_deciding():
                continue
            try:
                await self._flush_once()
            except (RedisError, OSError) as exc:
                self._reachable(False, exc)
                await asyncio.sleep(TICK_S)
            except Exception as exc:  # a bug must not stop the forwarding for good
                log_event("internal", 40, where="bus.sender", error=repr(exc))
                await asyncio.sleep(TICK_S)

    async def _flush_once(self) -> None:
        assert self._redis is not None
        self._out_ready.clear()
        out, self._out = self._out, {}
        mirror: list[tuple[str, str, str | None]] = []
        if self.coordinator:
            try:
                mirror = self._mirror_writes()
            except Exception as exc:
                log_event("internal", 40, where="bus.mirror", error=repr(exc))
        if not out and not mirror:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                now = time.monotonic()
                for key, items in out.items():
                    pipe.rpush(key, *items)
                    # An instance that died leaves no list behind (renewed now and then only).
                    if key != TO_COORDINATOR and self._expired.get(key, 0.0) < now - EXPIRE_EVERY_S:
                        self._expired[key] = now
                        pipe.expire(key, LIST_TTL_S)
                for name, key, value in mirror:
                    if value is None:
                        pipe.hdel(name, key)
                    else:
                        pipe.hset(name, key, value)
                await pipe.execute()
            self._reachable(True)
        except BaseException:
            for key, items in out.items():  # keep them, in order, for the next try
                self._out[key] = items + self._out.get(key, [])
            self._out_ready.set()
            raise

    # The mirror -----------------------------------------------------------------

    def _call_changed(self, call_id: str) -> None:
        self._dirty_calls.add(call_id)
        self._out_ready.set()

    def _meeting_changed(self, meeting_id: str) -> None:
        self._dirty_meetings.add(meeting_id)
        self._out_ready.set()

    def _presence_changed(self, username: str) -> None:
        self._dirty_presence.add(username)
        self._out_ready.set()

    def _mirror_writes(self) -> list[tuple[str, str, str | None]]:
        """(hash, field, value) to write; ``None`` deletes the field."""
        writes: list[tuple[str, str, str | None]] = []
        calls, self._dirty_calls = self._dirty_calls, set()
        for call_id in calls:
            call = self.hub.calls.get(call_id)
            text = None if call is None else call_json(call, self._timers.of("call", call_id))
            writes.append((CALLS, call_id, text))
        users, self._dirty_presence = self._dirty_presence, set()
        for user in users:
            chosen = self.hub.chosen_presence.get(user)
            writes.append((PRESENCE, user, None if chosen is None else chosen.value))
        meetings, self._dirty_meetings = self._dirty_meetings, set()
        if self._meetings_due:
            # Once a tick, every meeting: a change made after an await, not after a look-up.
            self._meetings_due = False
            meetings.update(self._meetings_written)
            meetings.update(m.meeting_id for m in self.hub.meetings.table.all())
        table = self.hub.meetings.table
        for meeting_id in meetings:
            meeting = MeetingTable.get(table, meeting_id)  # not ``table.get``: that reports
            text = None
            if meeting is not None:
                text = meeting_json(meeting, self._timers.of("meeting", meeting_id))
            if self._meetings_written.get(meeting_id) == text:
                continue
            writes.append((MEETINGS, meeting_id, text))
            if text is None:
                self._meetings_written.pop(meeting_id, None)
            else:
                self._meetings_written[meeting_id] = text
        return writes

    def _mirror_everything(self) -> None:
        self._meetings_written = {}
        self._meetings_due = True
        self._dirty_calls.update(c.call_id for c in self.hub.calls.all())
        self._dirty_presence.update(self.hub.chosen_presence)
        self._out_ready.set()

    # Liveness and the lease ----------------------------------------------------

    async def _keep_alive(self) -> None:
        assert self._redis is not None
        free_seen = 0
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self._redis.set(beat(self.instance), b"1", px=BEAT_MS)
                self._reachable(True)
                if self._epoch is not None:  # held, taking over included
                    sent = time.monotonic()
                    held = await self._redis.eval(
                        RENEW, 2, LEASE, EPOCH, str(self.instance), LEASE_MS, str(self._epoch)
                    )
                    if held == 0:
                        self._lost_lease()
                        return
                    self._lease_until = sent + LEASE_MS / 1000 - LEASE_MARGIN_S
                    self._lease_news.set()
                    if held == 3:
                        log_event("bus.lease_lapsed", 30, instance=self.instance)
                    if not self.coordinator:  # still taking over
                        continue
                    self._meetings_due = True  # meetings are compared once a tick
                    self._out_ready.set()
                    if held == 2:  # Redis restarted: its lists and the mirror are gone too
                        log_event("bus.lease_retaken", 30, instance=self.instance)
                        await self._redis.set(STARTED, b"1")
                        self._mirror_everything()
                        self._spawn(self._resync())
                    await self._check_instances()
                    continue
                if await self._redis.exists(LEASE):
                    free_seen = 0
                    continue
                free_seen += 1
                # Thrice: a coordinator whose lease a Redis restart lost takes it back first.
                if free_seen >= FREE_TICKS and await self._take_lease():
                    free_seen = 0
                    self._spawn(self._promote())
            except (RedisError, OSError) as exc:
                free_seen = 0
                self._reachable(False, exc)
            except Exception as exc:  # a bug must not let the lease lapse
                log_event("internal", 40, where="bus.keep_alive", error=repr(exc))

    def _reachable(self, now: bool, exc: BaseException | None = None) -> None:
        """Redis answered (or not); said in the log when it changes, and every 30 s while away."""
        if now != self.reachable:
            self.reachable = now
            if now:
                log_event("bus.reachable", instance=self.instance)
                return
            self._unreachable_logged = 0.0
        if exc is not None and time.monotonic() - self._unreachable_logged >= 30:
            self._unreachable_logged = time.monotonic()
            log_event("bus.unreachable", 30, error=_reason(exc))

    async def _take_lease(self) -> bool:
        """Take the lease if it is free; from then on it is renewed every tick."""
        assert self._redis is not None
        sent = time.monotonic()
        epoch = int(await self._redis.eval(TAKE, 2, LEASE, EPOCH, str(self.instance), LEASE_MS))
        if epoch == 0:
            return False
        self._epoch = epoch
        self._lease_until = sent + LEASE_MS / 1000 - LEASE_MARGIN_S
        return True

    def _deciding(self) -> bool:
        """Whether the lease we hold surely has not run out (we may have stalled meanwhile)."""
        return self._epoch is not None and time.monotonic() < self._lease_until

    async def _until_deciding(self) -> bool:
        """Wait until our lease is known to hold (the next renewal); False once it is lost."""
        while self._epoch is not None:
            if time.monotonic() < self._lease_until:
                return True
            self._lease_news.clear()
            await self._lease_news.wait()
        return False

    async def _timer_may_fire(self) -> bool:
        """A hub timer's work runs only while our lease surely holds (or on an edge)."""
        if self._lost:
            return False
        return self._epoch is None or await self._until_deciding()

    def _lost_lease(self) -> None:
        """Another instance took the lease after ours lapsed (we stalled): two hubs must never
        decide. Ours stops at once: nothing it decided is written any more (mirror, sends to
        edges), what it read and did not handle went back to the list, its own clients are told
        to log in again (1012; the new coordinator counted them gone when our heartbeat
        lapsed), and the instance stops (SIGTERM) rather than run a hub whose state is stale."""
        log_event("bus.coordinator_lost", 40, instance=self.instance, epoch=self._epoch)
        self.coordinator = False
        self._lost = True
        self._epoch = None
        self._lease_news.set()
        self._out.clear()
        self._dirty_calls.clear()
        self._dirty_presence.clear()
        self._dirty_meetings.clear()
        self._meetings_due = False
        for local in list(self.local.values()):
            end = getattr(local.peer, "end", None)
            if end is not None:
                end(1012, "service restarting; connect again")
        signal.raise_signal(signal.SIGTERM)

    async def _check_instances(self) -> None:
        """Close the connections of instances whose heartbeat is gone."""
        assert self._redis is not None
        instances = sorted(self._remote_per_instance)
        if not instances:
            self._missing_since.clear()
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for instance in instances:
                pipe.exists(beat(instance))
            alive = await pipe.execute()
        now = time.monotonic()
        for instance, live in zip(instances, alive, strict=True):
            if live:
                self._missing_since.pop(instance, None)
                continue
            since = self._missing_since.setdefault(instance, now)
            if now - since >= DEAD_AFTER_S:
                self._missing_since.pop(instance, None)
                gone = [c for c in self.remote.values() if c.peer.instance == instance]
                log_event("bus.instance_gone", 30, instance=instance, connections=len(gone))
                for conn in gone:
                    self._close_remote(conn)
                # Only stalled, perhaps: then its clients must log in again, wherever.
                self.post(inbox(instance), {"k": "gone"})

    # The coordinator -------------------------------------------------------------

    async def _promote(self) -> None:
        """Take the hub's role; an instance that fails half-way stops, so another takes it."""
        try:
            await self._take_over()
        except Exception as exc:
            log_event("bus.takeover_failed", 40, instance=self.instance, error=repr(exc))
            signal.raise_signal(signal.SIGTERM)

    async def _take_over(self) -> None:
        """Load the mirror, gather the connections, resume timers."""
        assert self._redis is not None
        log_event("bus.coordinator", instance=self.instance)
        hub = self.hub
        calls_raw = await self._redis.hgetall(CALLS)
        presence_raw = await self._redis.hgetall(PRESENCE)
        meetings_raw = await self._redis.hgetall(MEETINGS)
        if await self._redis.set(STARTED, b"1", nx=True):
            from signaling.server.app import close_unfinished

            await close_unfinished(hub.store)
        self.coordinator = True
        for raw in presence_raw.items():
            hub.chosen_presence[raw[0].decode()] = Presence(raw[1].decode())
        before = set(hub.chosen_presence)
        timers: dict[str, dict[str, float]] = {}
        for raw in calls_raw.values():
            call, deadlines = call_from_json(raw)
            if hub.calls.get(call.call_id) is None:
                hub.calls.add(call)
                timers[call.call_id] = deadlines
        meetings: dict[str, dict[str, float]] = {}
        for raw in meetings_raw.values():
            meeting, deadlines = meeting_from_json(raw)
            if hub.meetings.table.get(meeting.meeting_id) is None:
                hub.meetings.table.add(meeting)
                meetings[meeting.meeting_id] = deadlines
        for conn in self.local.values():
            conn.session = hub.connect(conn.peer)
            if conn.state is not None:
                restore_session(hub, conn.session, conn.state)
        await self._gather_announcements(await self._live_instances())
        self._resume_calls(timers)
        self._resume_meetings(meetings)
        self._end_guests_gone()
        # Frames forwarded meanwhile wait in the list: their connections are known now.
        self._spawn(self._read_coordinator_list())
        if hub.meetings.sfu is not None:  # the coordinator runs the rooms on the media servers
            await hub.meetings.sfu.start()
        for username in before - set(hub.by_user):
            hub.chosen_presence.pop(username, None)
            self._spawn(hub.presence_changed(username, Presence.ONLINE))
        for username in list(hub.by_user):
            self._spawn(self._load_contacts(username))
        self._mirror_everything()

    async def _load_contacts(self, username: str) -> None:
        if username not in self.hub._contacts and username != ECHO_USERNAME:
            await self.hub._load_contacts(username)

    async def _live_instances(self) -> list[int]:
        assert self._redis is not None
        found: list[int] = []
        async for key in self._redis.scan_iter(match=PREFIX + "instance:*", count=1000):
            instance = int(key.decode().rsplit(":", 1)[1])
            if instance != self.instance:
                found.append(instance)
        return found

    async def _gather_announcements(self, instances: Iterable[int]) -> None:
        """Ask ``instances`` for their connections and restore each as it answers."""
        assert self._announcer is not None
        waiting = set(instances)
        if not waiting:
            return
        nonce = secrets.token_hex(8)
        for instance in waiting:
            self.post(inbox(instance), {"k": "resync", "n": nonce})
        deadline = time.monotonic() + ANNOUNCE_WAIT_S
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                log_event("bus.announce_missing", 30, instances=sorted(waiting))
                return
            try:
                popped = await self._announcer.blpop([ANNOUNCE + ":" + nonce], timeout=left)
            except (RedisError, OSError) as exc:
                self._reachable(False, exc)
                await asyncio.sleep(TICK_S)
                continue
            if popped is None:
                continue
            message = json.loads(popped[1])
            instance = int(message["i"])
            waiting.discard(instance)
            self._apply_announcement(instance, message["conns"])

    def _apply_announcement(self, instance: int, conns: list[Json]) -> None:
        """An instance's connections as it sees them: open the unknown, close the vanished."""
        announced = {int(c["c"]) for c in conns}
        for conn in [c for c in self.remote.values() if c.peer.instance == instance]:
            if conn.peer.id not in announced:
                self._close_remote(conn)
        for item in conns:
            conn_id = int(item["c"])
            known = self.remote.get(conn_id)
            if known is None:
                known = self._open_remote(conn_id, instance, str(item["a"]))
            state = item.get("s")
            if state is not None and known.session.user is None:
                restore_session(self.hub, known.session, state)
                known.state = state

    def _resume_calls(self, timers: dict[str, dict[str, float]]) -> None:
        """Mirrored calls go on: timers from their deadlines, graces for parties gone."""
        hub = self.hub
        now = time.time()
        for call_id, deadlines in timers.items():
            call = hub.calls.get(call_id)
            if call is None:
                continue
            if ECHO_USERNAME in (call.caller, call.callee) and not take_over_call(hub, call):
                # No Echo Test here (--no-echo): its media was in the dead process.
                self._spawn(hub._end_by_server(call, CallReason.FAILED))
                continue
            for name, deadline in deadlines.items():
                hub._start_timer(call, name, max(0.0, deadline - now), timer_reason(name))
            for party in (call.caller, call.callee):
                if party in deadlines:
                    continue
                conn = call.bound_conn(party)
                session = hub.sessions.get(conn) if conn is not None else None
                ringing_callee = call.phase is CallPhase.RINGING and party == call.callee
                if ringing_callee:
                    if party not in hub.by_user:
                        hub._start_grace(call, party)
                elif session is None or session.user is None:
                    call.bind(party, None)
                    hub._start_grace(call, party)

    def _resume_meetings(self, timers: dict[str, dict[str, float]]) -> None:
        """Mirrored meetings go on, graces from their deadlines or for participants gone. One
        through a media server gets a new room, as when its Janus dies: the old one went with
        the dead coordinator's Janus session (the sweep takes it once the pool connects; the
        new one is placed after that). Without media servers here, such a meeting ends."""
        router = self.hub.meetings
        now = time.time()
        for meeting_id, deadlines in timers.items():
            meeting = router.table.get(meeting_id)
            if meeting is None:
                continue
            if meeting.topology is Topology.SFU and router.sfu is None:
                self._spawn(self._end_meeting(meeting))
                continue
            for participant in list(meeting.participants.values()):
                username = participant.username
                conn = participant.conn
                session = self.hub.sessions.get(conn) if conn is not None else None
                deadline = deadlines.get(username)
                if deadline is None and session is not None and session.user is not None:
                    continue
                participant.conn = None
                delay = self.hub.config.reconnect_grace_s if deadline is None else deadline - now
                router.start_grace(meeting, username, max(0.0, delay))
            if meeting.topology is Topology.SFU and router.sfu is not None:
                router.sfu.meeting_resumed(meeting)

    def _end_guests_gone(self) -> None:
        """Guests of a mirrored call or meeting whose connection died with the old coordinator:
        a guest's page cannot log in again, so their part ends now, as when its socket closes
        (a guest on a live instance was restored with its pass and goes on)."""
        hub = self.hub
        names = {party for call in hub.calls.all() for party in (call.caller, call.callee)}
        names.update(name for meeting in hub.meetings.table.all() for name in meeting.participants)
        for username in sorted(names):
            if is_guest_username(username) and username not in hub.by_user:
                self._spawn(hub.guests.gone(username))

    async def _end_meeting(self, meeting: Meeting) -> None:
        router = self.hub.meetings
        await self.hub.follow_up(await router._finish(meeting, MeetingReason.ENDED))

    async def _resync(self) -> None:
        """After Redis lost everything: every instance says again which connections it has."""
        await asyncio.sleep(TICK_S * 2)  # let the edges' heartbeats come back first
        await self._gather_announcements(await self._live_instances())

    def _open_remote(self, conn_id: int, instance: int, address: str) -> RemoteConn:
        peer = RemotePeer(conn_id, address, instance, self)
        conn = RemoteConn(peer, self.hub.connect(peer))
        conn.task = asyncio.get_running_loop().create_task(self._serve_remote(conn))
        if conn_id not in self.remote:
            self._remote_per_instance[instance] += 1
        self.remote[conn_id] = conn
        return conn

    def _close_remote(self, conn: RemoteConn) -> None:
        if not conn.closing:
            conn.closing = True
            conn.queue.put_nowait(None)

    async def probe_remote(self, peer: RemotePeer, wait_s: float) -> bool:
        """Ask ``peer``'s instance to ping it; no answer in time counts as no pong."""
        nonce = secrets.token_hex(8)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._probes[nonce] = answer
        self.post(inbox(peer.instance), {"k": "probe", "c": peer.id, "n": nonce, "w": wait_s})
        try:
            return await asyncio.wait_for(answer, wait_s + PROBE_SLACK_S)
        except TimeoutError:
            return False
        finally:
            self._probes.pop(nonce, None)

    async def _probe_local(self, conn_id: int, nonce: str, wait_s: float) -> None:
        conn = self.local.get(conn_id)
        probe = getattr(conn.peer, "probe", None) if conn is not None else None
        alive = conn is not None and (probe is None or await probe(wait_s))
        self.post(
            TO_COORDINATOR,
            {"k": "probed", "c": conn_id, "i": self.instance, "n": nonce, "ok": alive},
        )

    async def _serve_remote(self, conn: RemoteConn) -> None:
        """Handle one remote connection's frames in order, then its close."""
        hub = self.hub
        try:
            while True:
                data = await conn.queue.get()
                if data is None:
                    break
                if isinstance(data, tuple):  # a login its edge checked: bind it, no more
                    data, verified = data
                    user = UserRecord(str(verified["u"]), str(verified["n"]))
                    conn.session.verified = (user, str(verified["t"]))
                await hub.receive(conn.session, data)
                conn.session.verified = None
                state = session_state(conn.session)
                if state != conn.state:
                    conn.state = state
                    self.post(
                        inbox(conn.peer.instance), {"k": "state", "c": conn.peer.id, "s": state}
                    )
        finally:
            if self.remote.get(conn.peer.id) is conn:
                del self.remote[conn.peer.id]
                count = self._remote_per_instance
                count[conn.peer.instance] -= 1
                if count[conn.peer.instance] <= 0:
                    del count[conn.peer.instance]
            # Stopping, the connection lives on on its instance: the next coordinator has it.
            if not self._stopping:
                await self._disconnect_remote(conn)

    async def _disconnect_remote(self, conn: RemoteConn) -> None:
        user, token = conn.session.user, conn.session.token_hash
        try:
            await self.hub.disconnect(conn.session)
        except Exception as exc:
            log_event("internal", 40, where="bus.disconnect", conn=conn.peer.id, error=repr(exc))
        if user is not None:
            self._hand_over(user.username, token)

    def _hand_over(self, username: str, token: str | None) -> None:
        """A connection closed after its device logged in again elsewhere (its instance died and
        the client reconnected before that was noticed): the call goes to the new connection."""
        hub = self.hub
        call = hub.calls.of_user(username)
        if call is None or call.bound_conn(username) is not None:
            return
        if call.phase is CallPhase.RINGING and username == call.callee:
            return
        for session in hub.by_user.get(username, ()):
            if session.token_hash == token:
                hub._replay_call(session)
                return

    async def _drain(self, client: Client, key: str, handle: Callable[[Json], None]) -> None:
        """Hand each item of the list ``key`` to ``handle``, in order, for as long as it runs
        (Redis away: tried again every tick; an item that fails is logged and skipped)."""
        while True:
            try:
                items = await _pop_batch(client, key)
            except (RedisError, OSError) as exc:
                self._reachable(False, exc)
                await asyncio.sleep(TICK_S)
                continue
            # Redis answered: forward again now, not at the heartbeat's next tick (what we
            # just delivered may prompt a request at once).
            self._reachable(True)
            _handle_each(items, handle)

    async def _read_coordinator_list(self) -> None:
        """Open, feed and close remote connections from what the edges forward, only while our
        lease surely holds: what was popped when it was in doubt goes back to the list's head,
        in order, for whoever holds the lease (us again after a renewal, or the next one)."""
        client = self._blocking
        assert client is not None
        while await self._until_deciding():
            try:
                items = await _pop_batch(client, TO_COORDINATOR)
                if items and not self._deciding():
                    await client.lpush(TO_COORDINATOR, *reversed(items))
                    continue
            except (RedisError, OSError) as exc:
                self._reachable(False, exc)
                await asyncio.sleep(TICK_S)
                continue
            _handle_each(items, self._coordinate)

    def _coordinate(self, item: Json) -> None:
        kind = item["k"]
        conn_id = int(item["c"])
        if kind == "probed":
            answer = self._probes.get(str(item["n"]))
            if answer is not None and not answer.done():
                answer.set_result(bool(item["ok"]))
            return
        if int(item["i"]) == self.instance:  # forwarded by this instance before it took over
            local = self.local.get(conn_id)
            if kind == "frame" and local is not None and local.session is not None:
                self._spawn(self.hub.receive(local.session, _frame(item)))
            return
        conn = self.remote.get(conn_id)
        if kind == "open":
            if conn is None:
                self._open_remote(conn_id, int(item["i"]), str(item["a"]))
        elif kind == "frame":
            if conn is None:  # opened before this coordinator, never announced: serve it
                conn = self._open_remote(conn_id, int(item["i"]), "unknown")
            if not conn.closing:
                verified = item.get("v")
                data = _frame(item)
                conn.queue.put_nowait(data if verified is None else (str(data), verified))
        elif kind == "close" and conn is not None:
            self._close_remote(conn)

    # Edges --------------------------------------------------------------------------

    async def _read_inbox(self) -> None:
        """What the coordinator sends this instance's connections, and its requests."""
        reader = self._client()
        try:
            await self._drain(reader, inbox(self.instance), self._deliver)
        finally:
            with contextlib.suppress(Exception):
                await reader.aclose()

    def _deliver(self, item: Json) -> None:
        kind = item["k"]
        if kind == "gone":  # counted dead while stalled: the coordinator closed our sessions
            log_event("bus.counted_gone", 30, instance=self.instance, connections=len(self.local))
            for local in list(self.local.values()):
                end = getattr(local.peer, "end", None)
                if local.session is None and end is not None:
                    end(1012, "service restarting; connect again")
            return
        if kind == "resync":
            conns = [
                {"c": conn_id, "a": conn.peer.address, "s": conn.state}
                for conn_id, conn in self.local.items()
                if conn.session is None
            ]
            self.post(ANNOUNCE + ":" + str(item["n"]), {"i": self.instance, "conns": conns})
            return
        if kind == "probe":
            self._spawn(self._probe_local(int(item["c"]), str(item["n"]), float(item["w"])))
            return
        conn = self.local.get(int(item["c"]))
        if conn is None:
            return
        if kind == "send":
            conn.peer.send(item["m"])
        elif kind == "end":
            end = getattr(conn.peer, "end", None)
            if end is not None:
                end(int(item["code"]), str(item["r"]))
        elif kind == "state":
            conn.state = item["s"]


def _handle_each(items: Iterable[Any], handle: Callable[[Json], None]) -> None:
    """Hand each popped list item, decoded, to ``handle`` in order; one that fails (bad JSON,
    a missing field, a handler's error) is logged and skipped, never the rest."""
    for raw in items:
        try:
            handle(json.loads(raw))
        except Exception as exc:
            log_event("bus.bad_item", 40, error=repr(exc))


async def _pop_batch(client: Client, key: str) -> list[bytes]:
    """Wait up to a second for items of ``key``; all that are there, up to :data:`BATCH`, in
    one round trip (``BLMPOP``, Redis 7)."""
    popped = await client.blmpop(1, 1, key, direction="LEFT", count=BATCH)
    return [] if popped is None else list(popped[1])


def _frame(item: Json) -> str | bytes:
    """A forwarded frame as its client sent it (a binary one travels as latin-1 text)."""
    data = item.get("d")
    return data if data is not None else item["b"].encode("latin-1")


def _refuse(peer: Peer, data: str | bytes) -> None:
    """Answer a frame ``unavailable`` on the spot (Redis cannot take it to the coordinator)."""
    try:
        request_id = read_id(decode_object(data))
    except ProtocolError:
        request_id = None
    peer.send(
        error_message(
            request_id,
            ErrorCode.UNAVAILABLE,
            "the service is reconnecting its instances; try again in a moment",
        )
    )


def _masked(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
