"""Run a bot on its own thread and asyncio loop, its signaling link crossing to the server's loop.

A bot's calls are aiortc work (RTP, DTLS, decoding and re-encoding), a share of a core
per call. On the server's loop they would delay every other connection's messages, and
in the app, whose built-in server shares the Qt event loop, they would run on the UI
thread. :class:`BotThread` is itself a server ``Bot``: the server hands it a link on its
loop, and it starts the real bot on a new thread with a plain asyncio loop and a
:class:`ThreadLink`, through which requests run on the server's loop
(``run_coroutine_threadsafe``) and the server's events come back to the bot's loop
(``call_soon_threadsafe``). :meth:`BotThread.close` closes the bot on its own loop, lets
``asyncio.run`` cancel what is left and shut the loop's executor down, and waits for the
thread to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from signaling.protocol.bots import Bot, Link

log = logging.getLogger("parley.bots")

Json = dict[str, Any]


class ThreadLink:
    """The bot's side of a link whose other end (the hub's) lives on another thread's loop.

    Build it on the hub's loop; :meth:`bind` it to the bot's loop from there.
    """

    def __init__(self, link: Link, hub_loop: asyncio.AbstractEventLoop) -> None:
        self._link = link
        self._hub_loop = hub_loop
        self._bot_loop: asyncio.AbstractEventLoop | None = None
        self._callbacks: list[Callable[[Json], None]] = []
        self._unsubscribe: Callable[[], None] | None = link.on_event(self._from_hub)

    def bind(self, bot_loop: asyncio.AbstractEventLoop) -> None:
        """Deliver events on ``bot_loop`` from now on (events before are dropped: no bot yet)."""
        self._bot_loop = bot_loop

    def detach(self) -> None:
        """Stop forwarding events (call on the hub's loop, once the bot is closed)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._bot_loop = None

    def _from_hub(self, message: Json) -> None:
        loop = self._bot_loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the bot's loop has just closed
            loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: Json) -> None:
        for callback in list(self._callbacks):
            callback(message)

    def on_event(self, callback: Callable[[Json], None]) -> Callable[[], None]:
        """Subscribe to events, delivered on the bot's loop."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    async def request(self, kind: str, **fields: Any) -> Json:
        """Run the request on the hub's loop; the reply (or its error) comes back here."""
        future = asyncio.run_coroutine_threadsafe(
            self._link.request(kind, **fields), self._hub_loop
        )
        return await asyncio.wrap_future(future)


class BotThread:
    """A server ``Bot`` that runs ``bot`` on a thread of its own, with its own asyncio loop."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._link: ThreadLink | None = None
        self._stopping: asyncio.Event | None = None
        #: Set by :meth:`close`, seen by the thread even before its loop exists.
        self._stop_requested = threading.Event()
        self._ended: asyncio.Future[None] | None = None

    @property
    def username(self) -> str:
        """The wrapped bot's user."""
        return self.bot.username

    async def start(self, link: Link) -> None:
        """Start the thread and the bot on it; raises what the bot's ``start`` raised."""
        hub_loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = hub_loop.create_future()
        self._ended = hub_loop.create_future()
        self._stop_requested = threading.Event()
        self._link = ThreadLink(link, hub_loop)
        self.thread = threading.Thread(
            target=self._run,
            args=(hub_loop, started, self._ended),
            name=f"bot-{self.bot.username}",
            daemon=True,  # a bot never closed must not hold the process at exit
        )
        self.thread.start()
        try:
            await started
        except BaseException:
            # Failed, or cancelled (the app quit during its start-up): a bot that started
            # meanwhile is told to stop, or its thread is waited for forever.
            await self.close()
            raise

    def _run(
        self,
        hub_loop: asyncio.AbstractEventLoop,
        started: asyncio.Future[None],
        ended: asyncio.Future[None],
    ) -> None:
        """The thread: the bot's whole life in one ``asyncio.run``, then tell the hub's loop."""
        error: BaseException | None = None
        try:
            asyncio.run(self._serve(hub_loop, started))
        except BaseException as exc:
            error = exc
        hub_loop.call_soon_threadsafe(_settle, ended, error)

    async def _serve(
        self, hub_loop: asyncio.AbstractEventLoop, started: asyncio.Future[None]
    ) -> None:
        assert self._link is not None
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._link.bind(self.loop)
        try:
            await self.bot.start(self._link)
        except BaseException as exc:
            hub_loop.call_soon_threadsafe(_settle, started, exc)
            return
        hub_loop.call_soon_threadsafe(_settle, started, None)
        if not self._stop_requested.is_set():
            await self._stopping.wait()
        await self.bot.close()

    async def close(self) -> None:
        """Close the bot on its loop and wait for its thread to end (on the hub's loop)."""
        self._stop_requested.set()
        if self.loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop ended already
                self.loop.call_soon_threadsafe(self._stopping.set)
        await self._join()

    async def _join(self) -> None:
        if self.thread is None or self._ended is None:
            return
        try:
            await self._ended
        finally:
            if self._link is not None:
                self._link.detach()
            self.thread.join()  # it has returned from asyncio.run: no wait to speak of
            self.thread = self.loop = self._link = self._stopping = self._ended = None


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
