"""The signaling server as an object: WebSocket transport, HTTP probes, life cycle.

``SignalingServer`` owns the store, the password vault and the :class:`Hub`,
and runs on whatever asyncio loop is current, so the CLI, the tests and the
desktop app (which embeds it) all start it the same way::

    server = SignalingServer(ServerConfig(port=0, db_path=path), bots=[...])
    await server.start()
    print(server.url)
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from signaling import __version__
from signaling.protocol.bots import Bot
from signaling.protocol.constants import (
    MAX_FRAME_BYTES,
    PING_INTERVAL_S,
    SILENCE_TIMEOUT_S,
    SUBPROTOCOL,
    WS_PATH,
    CallReason,
    LeaveReason,
)
from signaling.protocol.guests import LINK_PATH_PREFIX
from signaling.protocol.messages import Json, encode
from signaling.server.bots import HubLink
from signaling.server.bus import Bus, BusUnavailable, bus_for
from signaling.server.config import ServerConfig
from signaling.server.credentials import PasswordVault
from signaling.server.hub import Hub
from signaling.server.logs import log_event
from signaling.server.metrics import Metrics
from signaling.server.store import Store, StoreError, StoreUnavailable, store_for
from signaling.server.web import guest_page

#: How each client connection is served, whatever else the server does (the benchmarks' bare
#: relay serves with the same, to be the floor of this library with these settings).
CONNECTION_OPTIONS: dict[str, Any] = {
    "subprotocols": [Subprotocol(SUBPROTOCOL)],
    "compression": None,
    "max_size": MAX_FRAME_BYTES,
    "max_queue": 16,
    "ping_interval": PING_INTERVAL_S,
    "ping_timeout": SILENCE_TIMEOUT_S - PING_INTERVAL_S,
}


class StartupError(Exception):
    """The server cannot start; the message is one line meant for a person.

    ``status`` is what ``parley-server`` exits with: 2 for a database it cannot reach.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class WebSocketPeer:
    """A hub :class:`Peer` on a WebSocket: sends are written in order, never awaited.

    A message goes straight to the socket's transport when nothing waits before it: the
    connection's writer task is idle, the transport takes more (websockets' flow control has
    not paused it) and the connection is open. That is what ``ws.send`` does less its
    checks and its wait, without a wake-up of the writer task, an async context manager
    and a drain per message: a call sends six messages, and this was about a tenth of the
    server's work per call (docs/performance.md). The frames of one turn of the loop are
    written together at its end (a reply and the event that follows it, say ``ok`` and
    ``call.ringing``): one system call instead of one each. Otherwise the message joins the
    queue that the writer task writes with ``ws.send``, waiting on the client as needed;
    until the queue is empty again every message goes through it, so none overtakes another
    (``ws.send`` writes whatever frames wait before its own).

    A connection that does not read what it is sent (its queue passes
    ``max_queue``) is closed with 1008 rather than allowed to hold memory.
    """

    def __init__(self, conn_id: int, ws: ServerConnection, max_queue: int) -> None:
        self.id = conn_id
        self.ws = ws
        remote = ws.remote_address
        self.address = str(remote[0]) if remote else "unknown"
        self._max_queue = max_queue
        #: ``None`` in the queue: close with ``_ending`` once what came before is written.
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._ending: tuple[int, str] | None = None
        #: The writer task waits on an empty queue: a message may skip it.
        self._idle = False
        #: Frames wait in the protocol object for :meth:`_flush`, due at the turn's end.
        self._flushing = False
        #: The connection's loop. ``send`` may be called with none running: in the app, Qt
        #: steps the embedded server's pending callbacks outside it while the app shuts down.
        self._loop = asyncio.get_running_loop()
        self._writer = self._loop.create_task(self._write())

    def send(self, message: Json) -> None:
        """Queue ``message``; never blocks."""
        if self._queue.qsize() >= self._max_queue:
            log_event("conn.stuck", conn=self.id, queued=self._queue.qsize())
            self._writer.cancel()
            asyncio.get_running_loop().create_task(self.ws.close(1008, "not reading"))
            return
        text = encode(message)
        ws = self.ws
        if self._idle and not ws.paused and ws.protocol.state is State.OPEN:
            ws.protocol.send_text(text.encode())
            if not self._flushing:
                self._flushing = True
                self._loop.call_soon(self._flush)
            return
        self._idle = False  # the writer has this one to write first
        self._queue.put_nowait(text)

    def _flush(self) -> None:
        """Write the frames of this turn of the loop to the transport, in one write
        (websockets' ``send_data`` writes each frame on its own)."""
        self._flushing = False
        transport = self.ws.transport
        if transport.is_closing():
            return
        frames = self.ws.protocol.data_to_send()
        transport.write(b"".join(frames))
        if not all(frames):  # the end of the stream, as ``send_data`` does (never seen here:
            if transport.can_write_eof():  # websockets writes its closing frames at once)
                transport.write_eof()
            else:
                transport.close()

    async def _write(self) -> None:
        try:
            while True:
                self._idle = self._queue.empty()
                text = await self._queue.get()
                self._idle = False
                if text is None:
                    assert self._ending is not None
                    await self.ws.close(*self._ending)
                    return
                await self.ws.send(text)
        except ConnectionClosed:
            pass

    async def probe(self, wait_s: float) -> bool:
        """Whether the client answers a ping within ``wait_s``. One that does not is dropped at
        once (its handler then ends as for any lost connection): a client whose address changed
        leaves its old socket silent, which the keepalive would notice only after a minute."""
        try:
            pong = await self.ws.ping()
            await asyncio.wait_for(pong, wait_s)
            return True
        except (TimeoutError, ConnectionClosed):
            self.ws.transport.abort()
            return False

    def end(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` after the messages queued so far are written."""
        if self._ending is None:
            self._ending = (code, reason)
            self._idle = False
            self._queue.put_nowait(None)

    def close(self) -> None:
        """Stop the writer (the connection is closed; nothing more can be sent)."""
        self._writer.cancel()


class SignalingServer:
    """One signaling server: start it on a running loop, stop it the same way.

    ``bots`` are the built-in users (the Echo Test) the composition root plugs in: the
    server starts each on a :class:`HubLink` before it listens and closes it when it stops.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        store: Store | None = None,
        bots: Sequence[Bot] = (),
    ) -> None:
        self.config = config or ServerConfig()
        self.store = store or store_for(self.config.db_path)
        self.metrics = Metrics()
        self.vault: PasswordVault | None = None
        self.hub: Hub | None = None
        self._server: Server | None = None
        self.bus: Bus | None = None
        self._peers: dict[int, WebSocketPeer] = {}
        self.port: int | None = None
        self.bots = list(bots)
        self._links: list[HubLink] = []

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to."""
        scheme = "wss" if self.config.tls_cert else "ws"
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}{WS_PATH}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        cert, key = self.config.tls_cert, self.config.tls_key
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise StartupError("TLS needs both --tls-cert and --tls-key")
        for path in (cert, key):
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise StartupError(f"cannot read TLS file {path}: {exc.strerror}") from None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise StartupError(
                f"cannot use TLS certificate {cert} with key {key}: {exc.strerror or exc}"
            ) from None
        return context

    async def start(self) -> None:
        """Open the store, then listen. Raises :class:`StartupError` with a one-line reason."""
        context = self._ssl_context()
        try:
            await self.store.open()
        except StoreError as exc:
            status = 2 if isinstance(exc, StoreUnavailable) else 1
            raise StartupError(str(exc), status) from None
        if self.config.bus_url is None:  # several instances: the first coordinator does it
            await close_unfinished(self.store)
        self.vault = PasswordVault(self.config.hash_parameters)
        self.hub = Hub(self.store, self.vault, self.config, self.metrics)
        hub = self.hub
        try:
            self.bus = bus_for(self.config.bus_url, hub)
            await self.bus.start()
            self.bus.add_gauges(self.metrics)
        except (ValueError, BusUnavailable) as exc:
            self.bus = None
            await self._release()
            raise StartupError(str(exc), 2) from None
        self.metrics.gauge(
            "parley_connections", "Open WebSocket connections.", lambda: hub.connection_count
        )
        self.metrics.gauge(
            "parley_logged_in_users",
            "Users with at least one logged-in connection.",
            lambda: hub.user_count,
        )
        self.metrics.gauge(
            "parley_calls_active", "Calls ringing or in progress.", lambda: len(hub.calls)
        )
        self.metrics.gauge(
            "parley_meetings_active", "Meetings in progress.", lambda: len(hub.meetings.table)
        )
        try:
            await self._start_bots(hub)
        except BaseException:
            await self._stop_bots()
            await self._stop_bus()
            await self._release()
            raise
        try:
            self._server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                ssl=context,
                process_request=self._process_request,
                select_subprotocol=_select_subprotocol,
                server_header=f"parley-server/{__version__}",
                **CONNECTION_OPTIONS,
            )
        except OSError as exc:
            await self._stop_bots()
            await self._stop_bus()
            await self._release()
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {self.config.port} on {self.config.host} is already in use"
                ) from None
            raise StartupError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log_event("server.started", url=self.url)

    async def _start_bots(self, hub: Hub) -> None:
        """Log each bot in and start it; one that fails to start is not closed, its link is."""
        for bot in self.bots:
            link = HubLink.for_bot(hub, bot)
            try:
                await bot.start(link)
            except BaseException:
                await link.close()
                raise
            self._links.append(link)

    async def _stop_bots(self) -> None:
        """Close the bots that started (in reverse), then their links."""
        started = list(zip(self.bots, self._links, strict=False))
        self._links = []
        for bot, link in reversed(started):
            await bot.close()
            await link.close()

    async def stop(self) -> None:
        """Close every connection with 1001 (going away), then release the store."""
        await self._stop_bots()
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        await self._stop_bus()
        if self.hub is not None:
            await self.hub.shutdown()
        await self._release()
        log_event("server.stopped")

    async def _stop_bus(self) -> None:
        if self.bus is not None:
            await self.bus.stop()
            self.bus = None

    async def _release(self) -> None:
        if self.hub is not None and self.hub.meetings.sfu is not None:
            await self.hub.meetings.sfu.stop()
        await self.store.close()
        if self.vault is not None:
            self.vault.close()
            self.vault = None

    def restart_wanted(self) -> asyncio.Event:
        """Set when this server must stop and start again (``Bus.restart``)."""
        assert self.bus is not None, "started"
        return self.bus.restart

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        assert self._server is not None
        await self._server.wait_closed()

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return None
        if path.startswith(LINK_PATH_PREFIX) and self.hub is not None:
            remote = connection.remote_address
            return await guest_page(self.hub.guests, path, str(remote[0]) if remote else "")
        if path == "/healthz":
            return _text_response(HTTPStatus.OK, "ok\n")
        if path == "/metrics":
            return _text_response(
                HTTPStatus.OK, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"
            )
        return _text_response(HTTPStatus.NOT_FOUND, "not found\n")

    async def _handle(self, ws: ServerConnection) -> None:
        assert self.bus is not None
        bus = self.bus
        peer = WebSocketPeer(bus.next_id(), ws, self.config.max_send_queue)
        self._peers[peer.id] = peer
        conn = bus.open(peer)
        log_event("conn.open", conn=peer.id, addr=peer.address)
        try:
            async for data in ws:
                await bus.receive(conn, data)
        except ConnectionClosed:
            pass
        finally:
            await bus.close(conn)
            peer.close()
            self._peers.pop(peer.id, None)
            code = ws.close_code
            log_event("conn.close", conn=peer.id, code=code)


async def close_unfinished(store: Store) -> None:
    """End, in the history, the calls and meetings a previous run left open (they are lost)."""
    lost = await store.end_unfinished_calls(time.time(), CallReason.LOST.value)
    if lost:
        log_event("calls.closed_at_start", count=lost)
    lost = await store.end_unfinished_meetings(time.time(), LeaveReason.LOST.value)
    if lost:
        log_event("meetings.closed_at_start", count=lost)


def _select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Pick ``parley.v1``.

    A client that asks for no subprotocol is served anyway; one that asks only
    for others is refused (HTTP 400).
    """
    if SUBPROTOCOL in subprotocols:
        return Subprotocol(SUBPROTOCOL)
    if not subprotocols:
        return None
    raise NegotiationError(f"unsupported subprotocol; this server speaks {SUBPROTOCOL}")


def _text_response(status: HTTPStatus, body: str, content_type: str = "text/plain") -> Response:
    data = body.encode("utf-8")
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, data)
