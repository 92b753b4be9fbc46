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

Two coordinators for a moment (issue 12): the lease is fenced (``lease.py``), and a
coordinator decides only while the lease it last renewed surely holds: past that it handles no
frame, runs no timer's work (``WatchedTimers.gate``), writes nothing it decided (mirror, sends
to edges) and puts what it popped from ``parley:to-coordinator`` back at the head, in order,
until a renewal says the lease is still its own. One that lost it drops what it queued, closes
its own clients' sockets with 1012 (the new coordinator counted them gone when its heartbeat
lapsed; they log in again, anywhere), says nothing more, and the server starts again as a new
instance, an edge (``Bus.restart``, ``cli.run``): its hub's state is stale and must not decide
again. So the service always settles on one coordinator, and what a newcomer decided is never
undone by the old one.

Not carried over to a new coordinator: requests in flight at the moment of the switch (the
client's request times out).

This module is the instance: its Redis clients, the edge's forwarding and inbox, the sender, the
heartbeat and the take-over's order of steps. Its parts: ``keys.py`` (the names in Redis and
the pace), ``lease.py`` (the coordinator's lease and its fencing), ``remote.py`` (other
instances' connections on the coordinator), ``mirror.py`` (what is mirrored, and how) and
``resume.py`` (what a new coordinator restores from the mirror).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, override

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.protocol.constants import (
    ECHO_USERNAME,
    ErrorCode,
    Presence,
    RequestType,
)
from signaling.protocol.errors import ProtocolError
from signaling.protocol.messages import (
    Json,
    Login,
    decode_object,
    encode,
    error_message,
    parse_fields,
    read_id,
)
from signaling.server.bus.base import Bus, BusUnavailable
from signaling.server.bus.keys import (
    ANNOUNCE,
    ANNOUNCE_WAIT_S,
    BATCH,
    BEAT_MS,
    CALLS,
    DEAD_AFTER_S,
    EXPIRE_EVERY_S,
    FREE_TICKS,
    LEASE,
    LIST_TTL_S,
    MAX_QUEUED,
    MEETINGS,
    PREFIX,
    PRESENCE,
    STARTED,
    TICK_S,
    TO_COORDINATOR,
    Client,
    beat,
    inbox,
)
from signaling.server.bus.lease import Lease, Renewal
from signaling.server.bus.mirror import (
    WatchedTimers,
    call_from_json,
    call_json,
    install,
    meeting_from_json,
    meeting_json,
    restore_session,
)
from signaling.server.bus.remote import RemoteConnections
from signaling.server.bus.resume import end_guests_gone, resume_calls, resume_meetings
from signaling.server.hub import Hub, Peer, Session, store_error
from signaling.server.logs import log_event
from signaling.server.meetings import MeetingTable
from signaling.server.metrics import Metrics
from signaling.server.routing import Background
from signaling.server.store import StoreUnavailable


@dataclass(eq=False, slots=True)
class LocalConn:
    """A WebSocket on this instance."""

    peer: Peer
    #: Its hub session while this instance is the coordinator.
    session: Session | None = None
    #: Who is logged in on it, as the coordinator last said (``mirror.session_state``).
    state: Json | None = None


class RedisBus(Bus):
    """One instance of a service of several, over Redis (see the module's text)."""

    def __init__(self, url: str, hub: Hub) -> None:
        super().__init__()
        self.url = url
        self.hub = hub
        self.instance = secrets.randbelow(1 << 30) + 1
        self._ids = itertools.count(1)
        self.coordinator = False
        self.local: dict[int, LocalConn] = {}
        self.remote = RemoteConnections(hub, self.post)
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
        self.lease = Lease(self.instance)
        #: Whether Redis answered lately: an edge refuses frames (``unavailable``) while not.
        self.reachable = True
        self._unreachable_logged = 0.0
        self._timers: WatchedTimers = install(
            hub, self._call_changed, self._presence_changed, self._meeting_changed
        )
        self._timers.gate = self.lease.timer_may_fire

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
            if await self.lease.take(self._redis):
                await self._take_over()
        except (RedisError, OSError) as exc:
            await self.stop()
            where = _masked(self.url)
            raise BusUnavailable(f"cannot use Redis at {where}: {_reason(exc)}") from None

    @override
    async def stop(self) -> None:
        self.remote.stopping = True
        tasks = [*self._background.tasks, *self._tasks, *self.remote.tasks()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert self._redis is not None
        with contextlib.suppress(RedisError, OSError):
            await self._flush_once()
            await self.lease.release(self._redis)
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
            if await self.lease.until_deciding():
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
        if self.lease.lost:  # a hub that lost the lease says nothing more (it restarts)
            return
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
            if self.lease.held and not await self.lease.until_deciding():
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
                if self.lease.held:  # taking over included
                    held = await self.lease.renew(self._redis)
                    if held is Renewal.LOST:
                        self._lost_lease()
                        return
                    if held is Renewal.LAPSED:
                        log_event("bus.lease_lapsed", 30, instance=self.instance)
                    if not self.coordinator:  # still taking over
                        continue
                    self._meetings_due = True  # meetings are compared once a tick
                    self._out_ready.set()
                    if held is Renewal.REDIS_RESTARTED:  # its lists and the mirror are gone too
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
                if free_seen >= FREE_TICKS and await self.lease.take(self._redis):
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

    def _lost_lease(self) -> None:
        """Another instance took the lease after ours lapsed (we stalled): two hubs must never
        decide. Ours stops at once: nothing it decided is written any more (mirror, sends to
        edges), what it read and did not handle went back to the list, its own clients are told
        to log in again (1012; the new coordinator counted them gone when our heartbeat
        lapsed), the remote connections it served are dropped without a word, and the server
        starts again as a new instance (an edge) rather than run a hub whose state is stale."""
        log_event("bus.coordinator_lost", 40, instance=self.instance, epoch=self.lease.epoch)
        self.coordinator = False
        self.lease.lose()
        self._out.clear()
        self._dirty_calls.clear()
        self._dirty_presence.clear()
        self._dirty_meetings.clear()
        self._meetings_due = False
        self.remote.abandon()
        for local in list(self.local.values()):
            local.session = None  # its close is nobody's business now: the hub is stale
            end = getattr(local.peer, "end", None)
            if end is not None:
                end(1012, "service restarting; connect again")
        self.restart.set()

    async def _check_instances(self) -> None:
        """Close the connections of instances whose heartbeat is gone."""
        assert self._redis is not None
        instances = sorted(self.remote.per_instance)
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
                gone = self.remote.of_instance(instance)
                log_event("bus.instance_gone", 30, instance=instance, connections=len(gone))
                for conn in gone:
                    self.remote.close(conn)
                # Only stalled, perhaps: then its clients must log in again, wherever.
                self.post(inbox(instance), {"k": "gone"})

    # The coordinator -------------------------------------------------------------

    async def _promote(self) -> None:
        """Take the hub's role; an instance that fails half-way starts again as a new one (its
        lease lapses meanwhile, so another takes it)."""
        try:
            await self._take_over()
        except Exception as exc:
            log_event("bus.takeover_failed", 40, instance=self.instance, error=repr(exc))
            self.restart.set()

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
        resume_calls(hub, timers, self._spawn)
        resume_meetings(hub, meetings, self._spawn)
        end_guests_gone(hub, self._spawn)
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
            await self.hub.load_contacts(username)

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
            self.remote.announced(instance, message["conns"])

    async def _resync(self) -> None:
        """After Redis lost everything: every instance says again which connections it has."""
        await asyncio.sleep(TICK_S * 2)  # let the edges' heartbeats come back first
        await self._gather_announcements(await self._live_instances())

    async def _probe_local(self, conn_id: int, nonce: str, wait_s: float) -> None:
        conn = self.local.get(conn_id)
        probe = getattr(conn.peer, "probe", None) if conn is not None else None
        alive = conn is not None and (probe is None or await probe(wait_s))
        self.post(
            TO_COORDINATOR,
            {"k": "probed", "c": conn_id, "i": self.instance, "n": nonce, "ok": alive},
        )

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
        while await self.lease.until_deciding():
            try:
                items = await _pop_batch(client, TO_COORDINATOR)
                if items and not self.lease.deciding():
                    await client.lpush(TO_COORDINATOR, *reversed(items))
                    continue
            except (RedisError, OSError) as exc:
                self._reachable(False, exc)
                await asyncio.sleep(TICK_S)
                continue
            _handle_each(items, self._coordinate)

    def _coordinate(self, item: Json) -> None:
        kind = item["k"]
        if kind == "probed":
            self.remote.probed(str(item["n"]), bool(item["ok"]))
            return
        frame = _frame(item) if kind == "frame" else None
        if int(item["i"]) == self.instance:  # forwarded by this instance before it took over
            local = self.local.get(int(item["c"]))
            if frame is not None and local is not None and local.session is not None:
                self._spawn(self.hub.receive(local.session, frame))
            return
        self.remote.forwarded(item, frame)

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
