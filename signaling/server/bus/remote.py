"""Other instances' connections, as the coordinator's hub serves them.

An edge forwards each of its connections' ``open``, frames and ``close`` to the coordinator
(``redis.py``). Here each becomes a hub :class:`Session` whose peer is a :class:`RemotePeer`:
what the hub sends it goes to the edge's list (``parley:to:<instance>``), which the edge writes
to the socket. Each remote connection's frames are handled in order by a task of its own, as a
local connection's are, and who is logged in on it travels back to its edge after each request
that changed it (``mirror.session_state``), for the next coordinator to restore.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from signaling.protocol.messages import Json
from signaling.server.bus.keys import PROBE_SLACK_S, inbox
from signaling.server.bus.mirror import restore_session, session_state
from signaling.server.calls import CallPhase
from signaling.server.hub import Hub, Session
from signaling.server.logs import log_event
from signaling.server.store import UserRecord

#: Appends an item to a Redis list, soon, in order (``RedisBus.post``).
Post = Callable[[str, Json], None]


class RemotePeer:
    """A connection on another instance, as the coordinator's hub sees it."""

    def __init__(self, conn_id: int, address: str, instance: int, conns: RemoteConnections) -> None:
        self.id = conn_id
        self.address = address
        self.instance = instance
        self._conns = conns

    def send(self, message: Json) -> None:
        """Queue ``message`` for the connection's instance."""
        self._conns.post(inbox(self.instance), {"k": "send", "c": self.id, "m": message})

    async def probe(self, wait_s: float) -> bool:
        """Whether the client answers a ping within ``wait_s`` (its instance pings it)."""
        return await self._conns.probe(self, wait_s)

    def end(self, code: int, reason: str) -> None:
        """Close the connection once what was sent before is written (a guest's, at the end)."""
        self._conns.post(
            inbox(self.instance), {"k": "end", "c": self.id, "code": code, "r": reason}
        )


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


class RemoteConnections:
    """The remote connections the coordinator's hub serves, by connection id."""

    def __init__(self, hub: Hub, post: Post) -> None:
        self.hub = hub
        self.post = post
        self.by_id: dict[int, RemoteConn] = {}
        #: How many of ``by_id`` each instance has (its heartbeat is checked every tick).
        self.per_instance: Counter[int] = Counter()
        #: Set while the instance stops: its remote connections live on with the next
        #: coordinator, so closing their tasks is not their close.
        self.stopping = False
        #: Probes waiting for their instance's answer, by nonce.
        self._probes: dict[str, asyncio.Future[bool]] = {}

    def abandon(self) -> None:
        """Stop serving every connection at once, without their close (the lease was lost:
        they are the next coordinator's)."""
        self.stopping = True
        for task in self.tasks():
            task.cancel()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks serving the connections (cancelled when the instance stops)."""
        return [c.task for c in self.by_id.values() if c.task is not None]

    def of_instance(self, instance: int) -> list[RemoteConn]:
        """The connections on ``instance``."""
        return [c for c in self.by_id.values() if c.peer.instance == instance]

    # What the edges forward --------------------------------------------------------

    def open(self, conn_id: int, instance: int, address: str) -> RemoteConn:
        """Serve the connection ``conn_id`` of ``instance`` (a fresh hub session)."""
        peer = RemotePeer(conn_id, address, instance, self)
        conn = RemoteConn(peer, self.hub.connect(peer))
        conn.task = asyncio.get_running_loop().create_task(self._serve(conn))
        if conn_id not in self.by_id:
            self.per_instance[instance] += 1
        self.by_id[conn_id] = conn
        return conn

    def forwarded(self, item: Json, frame: str | bytes | None) -> None:
        """An edge's ``open``, ``frame`` (``frame`` its data) or ``close`` of a connection."""
        kind = item["k"]
        conn = self.by_id.get(int(item["c"]))
        if kind == "open":
            if conn is None:
                self.open(int(item["c"]), int(item["i"]), str(item["a"]))
        elif kind == "frame" and frame is not None:
            if conn is None:  # opened before this coordinator, never announced: serve it
                conn = self.open(int(item["c"]), int(item["i"]), "unknown")
            if not conn.closing:
                verified = item.get("v")
                conn.queue.put_nowait(frame if verified is None else (str(frame), verified))
        elif kind == "close" and conn is not None:
            self.close(conn)

    def close(self, conn: RemoteConn) -> None:
        """The connection closed: its task ends after the frames queued before."""
        if not conn.closing:
            conn.closing = True
            conn.queue.put_nowait(None)

    def announced(self, instance: int, conns: list[Json]) -> None:
        """An instance's connections as it sees them: open the unknown, close the vanished."""
        listed = {int(c["c"]) for c in conns}
        for conn in self.of_instance(instance):
            if conn.peer.id not in listed:
                self.close(conn)
        for item in conns:
            conn_id = int(item["c"])
            known = self.by_id.get(conn_id)
            if known is None:
                known = self.open(conn_id, instance, str(item["a"]))
            state = item.get("s")
            if state is not None and known.session.user is None:
                restore_session(self.hub, known.session, state)
                known.state = state

    # Probes ---------------------------------------------------------------------------

    async def probe(self, peer: RemotePeer, wait_s: float) -> bool:
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

    def probed(self, nonce: str, alive: bool) -> None:
        """An instance's answer to :meth:`probe`."""
        answer = self._probes.get(nonce)
        if answer is not None and not answer.done():
            answer.set_result(alive)

    # Serving one connection ---------------------------------------------------------

    async def _serve(self, conn: RemoteConn) -> None:
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
            if self.by_id.get(conn.peer.id) is conn:
                del self.by_id[conn.peer.id]
                count = self.per_instance
                count[conn.peer.instance] -= 1
                if count[conn.peer.instance] <= 0:
                    del count[conn.peer.instance]
            # Stopping, the connection lives on on its instance: the next coordinator has it.
            if not self.stopping:
                await self._disconnect(conn)

    async def _disconnect(self, conn: RemoteConn) -> None:
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
                hub.call_router.replay(session)
                return
