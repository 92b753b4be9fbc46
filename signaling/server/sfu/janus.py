"""An asyncio client of one Janus instance: its WebSocket API (sessions, handles, VideoRoom
messages) and its admin API (the token parley-server uses, health).

One WebSocket carries every Janus session of this server on that instance; replies are
matched to requests by ``transaction``. A plugin request that Janus answers at once
(``create``, ``destroy``, ``allowed``) completes with its ``success``; one that it
answers later (``join``, ``publish``, ``start``) completes with the ``event`` of the same
transaction (the ``ack`` in between is skipped). Events without a transaction (a handle
hung up, a publisher left) go to the handle's listener.

When the socket closes (Janus stopped or died) every pending request fails with
:class:`JanusGone` and :attr:`JanusInstance.closed` is set: the pool notices and moves the
meetings. Janus answers only holders of a token (``token_auth``): :meth:`JanusInstance.open`
adds this server's random token through the admin API first, with the admin secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

log = logging.getLogger("parley.sfu")

Json = dict[str, Any]
VIDEOROOM = "janus.plugin.videoroom"
#: Janus drops a session that says nothing for 60 s (``session_timeout``).
KEEPALIVE_S = 20.0
REQUEST_TIMEOUT_S = 10.0


class JanusError(Exception):
    """Janus (or the VideoRoom plugin) refused a request; ``code`` is Janus's number."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusGone(JanusError):
    """The instance cannot be reached, or its connection closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(-1, reason)


def admin_url(url: str, admin_port: int | None) -> str:
    """The admin API beside ``url``: the same host, ``admin_port`` (default: its port - 1000)."""
    parts = urlsplit(url)
    port = admin_port if admin_port is not None else (parts.port or 8188) - 1000
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{port}", "", "", ""))


class _Socket:
    """One WebSocket to Janus (API or admin), requests matched to replies by transaction."""

    def __init__(self, ws: ClientConnection, label: str) -> None:
        self.ws = ws
        self.label = label
        self.pending: dict[str, asyncio.Future[Json]] = {}
        #: Transactions whose ``ack`` is skipped: their answer is a later ``event``.
        self.asynchronous: set[str] = set()
        self.listeners: dict[int, Callable[[Json], None]] = {}
        self.closed = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def request(self, message: Json, *, waits_event: bool = False) -> Json:
        transaction = secrets.token_hex(8)
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self.pending[transaction] = future
        if waits_event:
            self.asynchronous.add(transaction)
        try:
            if self.closed.is_set():
                raise JanusGone(f"{self.label}: the connection is closed")
            await self.ws.send(json.dumps({**message, "transaction": transaction}))
            reply = await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except ConnectionClosed:
            raise JanusGone(f"{self.label}: the connection closed") from None
        except TimeoutError:
            raise JanusGone(f"{self.label}: no answer in {REQUEST_TIMEOUT_S:g} s") from None
        finally:
            self.pending.pop(transaction, None)
            self.asynchronous.discard(transaction)
        if reply.get("janus") == "error":
            error = reply.get("error") or {}
            raise JanusError(int(error.get("code", 0)), str(error.get("reason", "")))
        plugin = (reply.get("plugindata") or {}).get("data") or {}
        if "error_code" in plugin or "error" in plugin:
            raise JanusError(int(plugin.get("error_code", 0)), str(plugin.get("error", "")))
        return reply

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                try:
                    message = json.loads(data)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(JanusGone(f"{self.label}: the connection closed"))

    def _dispatch(self, message: Json) -> None:
        transaction = message.get("transaction")
        kind = message.get("janus")
        future = self.pending.get(transaction) if isinstance(transaction, str) else None
        if future is not None and not future.done():
            if kind == "ack" and transaction in self.asynchronous:
                return
            future.set_result(message)
            return
        sender = message.get("sender")
        listener = self.listeners.get(sender) if isinstance(sender, int) else None
        if listener is not None:
            listener(message)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader


async def _open_socket(url: str, protocol: str, label: str) -> _Socket:
    try:
        ws = await asyncio.wait_for(
            connect(
                url,
                subprotocols=[Subprotocol(protocol)],
                open_timeout=REQUEST_TIMEOUT_S,
                ping_interval=10,
                ping_timeout=10,
                max_size=2**22,
                proxy=None,
            ),
            REQUEST_TIMEOUT_S,
        )
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise JanusGone(f"{label}: cannot connect to {url}: {exc}") from None
    return _Socket(ws, label)


class JanusInstance:
    """One Janus instance: an API socket, an admin socket, and this server's token."""

    def __init__(self, url: str, admin_secret: str, admin_port: int | None = None) -> None:
        self.url = url
        self.admin = admin_url(url, admin_port)
        self._secret = admin_secret
        self.token = secrets.token_urlsafe(24)
        self._api: _Socket | None = None
        self._admin: _Socket | None = None

    @property
    def alive(self) -> bool:
        """Whether the API socket is open."""
        return self._api is not None and not self._api.closed.is_set()

    async def open(self) -> None:
        """Connect both sockets and register this server's token (raises :class:`JanusError`)."""
        await self.close()
        admin = await _open_socket(self.admin, "janus-admin-protocol", f"{self.url} admin")
        try:
            await admin.request(
                {
                    "janus": "add_token",
                    "token": self.token,
                    "plugins": [VIDEOROOM],
                    "admin_secret": self._secret,
                }
            )
            api = await _open_socket(self.url, "janus-protocol", self.url)
        except BaseException:
            await admin.close()
            raise
        self._admin, self._api = admin, api

    async def wait_closed(self) -> None:
        """Until the API socket closes."""
        if self._api is not None:
            await self._api.closed.wait()

    async def ping(self) -> None:
        """A round trip on both APIs (raises :class:`JanusGone`)."""
        if self._api is None or self._admin is None:
            raise JanusGone(f"{self.url}: not connected")
        await self._admin.request({"janus": "ping", "admin_secret": self._secret})
        await self._api.request({"janus": "ping", "token": self.token})

    def _socket(self) -> _Socket:
        if self._api is None or self._api.closed.is_set():
            raise JanusGone(f"{self.url}: not connected")
        return self._api

    async def request(self, message: Json, *, waits_event: bool = False) -> Json:
        """A Janus API request with this server's token."""
        return await self._socket().request(
            {**message, "token": self.token}, waits_event=waits_event
        )

    def listen(self, handle_id: int, listener: Callable[[Json], None] | None) -> None:
        """Hear the events of ``handle_id`` that answer no request (``None``: stop)."""
        if self._api is None:
            return
        if listener is None:
            self._api.listeners.pop(handle_id, None)
        else:
            self._api.listeners[handle_id] = listener

    async def session(self) -> JanusSession:
        """A new Janus session, kept alive until :meth:`JanusSession.destroy`."""
        reply = await self.request({"janus": "create"})
        return JanusSession(self, int(reply["data"]["id"]))

    async def close(self) -> None:
        """Withdraw this server's token, close both sockets (Janus drops our sessions after its
        timeout)."""
        if self._admin is not None and not self._admin.closed.is_set():
            with contextlib.suppress(JanusError):
                await self._admin.request(
                    {"janus": "remove_token", "token": self.token, "admin_secret": self._secret}
                )
        for sock in (self._api, self._admin):
            if sock is not None:
                await sock.close()
        self._api = self._admin = None


class JanusSession:
    """A Janus session with its handles; a keepalive every 20 s while it lasts."""

    def __init__(self, instance: JanusInstance, session_id: int) -> None:
        self.instance = instance
        self.id = session_id
        self.handles: set[int] = set()
        self._keepalive = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        with contextlib.suppress(JanusError):
            while True:
                await asyncio.sleep(KEEPALIVE_S)
                await self.instance.request({"janus": "keepalive", "session_id": self.id})

    async def attach(self, listener: Callable[[Json], None] | None = None) -> VideoRoomHandle:
        """A new handle on the VideoRoom plugin."""
        reply = await self.instance.request(
            {"janus": "attach", "session_id": self.id, "plugin": VIDEOROOM}
        )
        handle = VideoRoomHandle(self, int(reply["data"]["id"]))
        self.handles.add(handle.id)
        if listener is not None:
            self.instance.listen(handle.id, listener)
        return handle

    async def destroy(self) -> None:
        """Destroy the session (and its handles); quiet if the instance is gone."""
        self._keepalive.cancel()
        for handle_id in self.handles:
            self.instance.listen(handle_id, None)
        with contextlib.suppress(JanusError):
            await self.instance.request({"janus": "destroy", "session_id": self.id})


class VideoRoomHandle:
    """One handle on the VideoRoom plugin."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id

    async def message(
        self, body: Json, jsep: Json | None = None, *, waits_event: bool = False
    ) -> tuple[Json, Json | None]:
        """A plugin request; returns the plugin's data and the JSEP Janus sent with it."""
        request: Json = {
            "janus": "message",
            "session_id": self.session.id,
            "handle_id": self.id,
            "body": body,
        }
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self.session.instance.request(request, waits_event=waits_event)
        data = (reply.get("plugindata") or {}).get("data") or {}
        jsep_out = reply.get("jsep")
        return data, jsep_out if isinstance(jsep_out, dict) else None

    async def trickle(self, candidate: Json) -> None:
        """Hand Janus a client's ICE candidate (an empty ``candidate``: the end of them)."""
        payload: Json = {"completed": True} if not candidate.get("candidate") else dict(candidate)
        await self.session.instance.request(
            {
                "janus": "trickle",
                "session_id": self.session.id,
                "handle_id": self.id,
                "candidate": payload,
            }
        )

    async def detach(self) -> None:
        """Detach the handle (its peer connection with it); quiet if the instance is gone."""
        self.session.instance.listen(self.id, None)
        self.session.handles.discard(self.id)
        with contextlib.suppress(JanusError):
            await self.session.instance.request(
                {"janus": "detach", "session_id": self.session.id, "handle_id": self.id}
            )


__all__ = [
    "JanusError",
    "JanusGone",
    "JanusInstance",
    "JanusSession",
    "VideoRoomHandle",
    "admin_url",
]
