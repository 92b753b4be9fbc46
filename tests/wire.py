"""A minimal raw-protocol client for the tests: sends frames as given, sorts replies from events.

It is deliberately not the app's signaling client: the tests need to send
malformed frames and see every byte the server answers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from signaling.protocol.constants import SUBPROTOCOL

Json = dict[str, Any]
#: How long a reply or an event may take: a hang, not a pace. A loaded machine keeps a
#: server or a test's loop from running for a second or more, and a request may hash a
#: password (argon2) or wait on PostgreSQL or Redis, each in a process short of a core.
TIMEOUT = 15.0


class ServerError(Exception):
    """An ``error`` reply, raised by :meth:`WireClient.request`."""

    def __init__(self, reply: Json) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.reply = reply
        self.code = reply.get("code")


class WireClient:
    """One WebSocket connection to a signaling server."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: asyncio.Queue[Json] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[Json]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.user: Json | None = None
        self.token: str | None = None

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> WireClient:
        ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None, **kwargs)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                message = json.loads(data)
                future = self._pending.pop(message.get("re"), None) if "re" in message else None
                if future is not None and not future.done():
                    future.set_result(message)
                else:
                    self.events.put_nowait(message)
        except ConnectionClosed:  # ended abnormally (a killed server): the next send raises it
            pass

    async def send(self, frame: str | bytes | Json) -> None:
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.ws.send(frame)

    async def call(self, kind: str, **fields: Any) -> Json:
        """Send a request and return its reply, ``ok`` or ``error``."""
        request_id = f"r{next(self._ids)}"
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self.send({"type": kind, "id": request_id, **fields})
        return await asyncio.wait_for(future, TIMEOUT)

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request; return the ``ok`` reply or raise :class:`ServerError`."""
        reply = await self.call(kind, **fields)
        if reply["type"] == "error":
            raise ServerError(reply)
        assert reply["type"] == "ok", reply
        return reply

    async def next_event(self, kind: str | None = None, timeout: float = TIMEOUT) -> Json:
        """The next message that is not a reply (optionally: of this type, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.events.get()
                if kind is None or message["type"] == kind:
                    return message

    async def no_event(self, kind: str, wait: float = 0.3) -> None:
        """Assert nothing of type ``kind`` arrives within ``wait`` seconds."""
        try:
            message = await self.next_event(kind, timeout=wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {kind}: {message}")

    def drain(self) -> list[Json]:
        """Everything received and not yet read."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    async def register(self, username: str, password: str = "correct horse", **extra: Any) -> Json:
        reply = await self.request("register", username=username, password=password, **extra)
        self.user, self.token = reply["user"], reply["token"]
        return reply

    async def login(self, username: str, password: str = "correct horse") -> Json:
        reply = await self.request("login", username=username, password=password)
        self.user, self.token = reply["user"], reply["token"]
        return reply

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def until_served(
    client: WireClient, kind: str, timeout: float = 30.0, **fields: object
) -> Json:
    """Ask again while the answer is ``unavailable`` (a store or bus away); the first other
    answer, or the ``unavailable`` error once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.request(kind, **fields)
        except ServerError as exc:
            if exc.code != "unavailable" or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def befriend(url: str, *names: str) -> list[WireClient]:
    """Register ``names`` on new connections and make every pair accepted contacts."""
    clients = []
    for name in names:
        client = await WireClient.open(url)
        await client.register(name)
        clients.append(client)
    await make_contacts(clients)
    return clients


async def make_contacts(clients: Sequence[WireClient]) -> None:
    """Make every pair of the logged-in ``clients`` accepted contacts; the notices that
    brings are drained."""
    for i, a in enumerate(clients):
        for b in clients[i + 1 :]:
            await a.request("contacts.request", username=b.user["username"])
            await b.request("contacts.accept", username=a.user["username"])
    for client in clients:
        client.drain()


def new_call_id() -> str:
    return str(uuid.uuid4())
