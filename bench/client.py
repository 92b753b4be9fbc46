"""A lean protocol client for load generation: requests by id, events to a callback.

Unlike the desktop app's client it does no reconnecting and keeps no state: one
:class:`BenchClient` is one WebSocket connection, cheap enough to open
thousands of in one process. Each received message is stamped with
``time.perf_counter()`` the moment it is read, before it is parsed, so
latencies measured from a send include the server and the wire, and as little
of the load generator as possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from signaling.protocol.constants import SUBPROTOCOL

Message = dict[str, Any]
EventHandler = Callable[["BenchClient", Message, float], None]


class RequestFailed(Exception):
    """The server answered a request with an ``error`` reply."""

    def __init__(self, reply: Message) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.reply = reply


class BenchClient:
    """One connection: ``request()`` awaits the reply to its id; events go to ``on_event``."""

    def __init__(self, ws: ClientConnection, on_event: EventHandler | None = None) -> None:
        self.ws = ws
        self.on_event = on_event
        #: The logged-in username, once :meth:`login_token` or :meth:`login_password` succeeded.
        self.username: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, on_event: EventHandler | None = None, timeout: float = 30.0
    ) -> BenchClient:
        """Connect to ``url`` with the ``parley.v1`` subprotocol, no compression, no pings."""
        ws = await connect(
            url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            open_timeout=timeout,
            ping_interval=None,
            close_timeout=2,
        )
        return cls(ws, on_event)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                received = time.perf_counter()
                message: Message = json.loads(raw)
                kind = message.get("type")
                if kind in ("ok", "error") and "re" in message:
                    future = self._pending.pop(str(message["re"]), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif self.on_event is not None:
                    self.on_event(self, message, received)
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            self._pending.clear()

    async def request(self, kind: str, timeout: float = 10.0, **fields: Any) -> Message:
        """Send one request and return its ``ok`` reply; :class:`RequestFailed` on ``error``."""
        request_id = str(next(self._ids))
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.ws.send(json.dumps({"type": kind, "id": request_id, **fields}))
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
        if reply["type"] == "error":
            raise RequestFailed(reply)
        return reply

    async def login_token(self, token: str, timeout: float = 30.0) -> Message:
        """Log in with a session token."""
        reply = await self.request("login", timeout, token=token)
        self.username = reply["user"]["username"]
        return reply

    async def login_password(self, username: str, password: str, timeout: float = 30.0) -> Message:
        """Log in with a username and password."""
        reply = await self.request("login", timeout, username=username, password=password)
        self.username = reply["user"]["username"]
        return reply

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        self._reader.cancel()
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        """Close with a closing handshake (bounded by the connection's close timeout)."""
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
