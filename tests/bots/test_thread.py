"""BotThread: a bot on its own thread and loop, its link crossing to a real server's loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from gui.bots import BotThread, echo_test
from gui.core.call_machine import CallState
from gui.core.call_session import CallSession, SignalingLink
from signaling.protocol.errors import RequestError
from signaling.server import SignalingServer
from tests.conftest import make_config
from tests.core.test_call_session import client_for, media, until
from tests.wire import WireClient, new_call_id

AV = {"audio": True, "video": True}


class DecliningBot:
    """Answers as ``echo`` by declining every call, noting which thread did what."""

    username = "echo"

    def __init__(self, fail_start: bool = False) -> None:
        self.fail_start = fail_start
        self.link: SignalingLink | None = None
        self.threads: dict[str, int] = {}
        self.refused: str | None = None
        self.declined = asyncio.Event()

    async def start(self, link: SignalingLink) -> None:
        self.threads["start"] = threading.get_ident()
        if self.fail_start:
            raise RuntimeError("no codecs")
        self.link = link
        link.on_event(self._on_event)
        try:
            await link.request("call.accept", call_id=new_call_id())
        except RequestError as exc:
            self.refused = exc.code

    def _on_event(self, message: dict[str, Any]) -> None:
        if message["type"] == "call.incoming":
            self.threads["event"] = threading.get_ident()
            asyncio.get_running_loop().create_task(self._decline(message["call_id"]))

    async def _decline(self, call_id: str) -> None:
        assert self.link is not None
        await self.link.request("call.decline", call_id=call_id)
        self.threads["declined"] = threading.get_ident()
        self.declined.set()

    async def close(self) -> None:
        self.threads["close"] = threading.get_ident()


def bot_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bot-")]


async def test_the_bot_runs_on_its_thread_and_signals_through_the_hub(tmp_path: Path) -> None:
    bot = DecliningBot()
    server = SignalingServer(make_config(tmp_path), bots=[BotThread(bot)])
    await server.start()
    try:
        alice = await WireClient.open(server.url)
        await alice.register("alice")
        call_id = new_call_id()
        await alice.request("call.invite", to="echo", call_id=call_id, media=AV)
        ended = await alice.next_event("call.ended")
        assert (ended["call_id"], ended["reason"]) == (call_id, "declined")
        await alice.close()
    finally:
        await server.stop()
    here = threading.get_ident()
    assert len(set(bot.threads.values())) == 1 and here not in bot.threads.values()
    assert set(bot.threads) == {"start", "event", "declined", "close"}
    assert bot.refused == "not_found"  # a request's error comes back to the bot's thread
    assert bot_threads() == []


async def test_a_bot_that_fails_to_start_fails_the_server_and_leaves_no_thread(
    tmp_path: Path,
) -> None:
    server = SignalingServer(make_config(tmp_path), bots=[BotThread(DecliningBot(True))])
    with pytest.raises(RuntimeError, match="no codecs"):
        await server.start()
    assert bot_threads() == []


class SlowStartingBot:
    """A bot whose start takes a while (the echo's codecs on a loaded machine)."""

    username = "echo"

    def __init__(self) -> None:
        self.starting = threading.Event()
        self.closed_on: int | None = None

    async def start(self, link: SignalingLink) -> None:
        self.starting.set()
        await asyncio.sleep(1.0)

    async def close(self) -> None:
        self.closed_on = threading.get_ident()


async def test_a_server_start_cancelled_while_its_bot_starts_ends_the_bot_thread(
    tmp_path: Path,
) -> None:
    """The app quit while its built-in server was starting: the start is cancelled while the
    bot's thread is in the bot's start. The bot is told to stop as soon as it has started
    and its thread ends: before, the cancelled start waited for that thread for ever (the
    app hung on SIGTERM 0.3 s after its window appeared, 1 run in about 20)."""
    bot = SlowStartingBot()
    server = SignalingServer(make_config(tmp_path), bots=[BotThread(bot)])
    starting = asyncio.get_running_loop().create_task(server.start())
    assert await asyncio.to_thread(bot.starting.wait, 30)
    starting.cancel()
    async with asyncio.timeout(15):
        with pytest.raises(asyncio.CancelledError):
            await starting
    assert bot.closed_on is not None and bot.closed_on != threading.get_ident()
    assert bot_threads() == []


async def test_stopping_the_server_mid_echo_call_ends_the_thread_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = SignalingServer(make_config(tmp_path), bots=[echo_test()])
    await server.start()
    client = await client_for(server, "erin")
    session = CallSession.outgoing(client, "echo", media(440))
    await until(lambda: session.state is CallState.CONNECTED and "camera" in session.receivers)
    await until(lambda: session.receivers["camera"].numbered > 5)
    async with asyncio.timeout(10):
        await server.stop()  # the echo hangs up on its thread, then the thread ends
        await session.wait_ended()
    assert session.machine.reason == "hangup"
    await client.close()
    gc.collect()
    assert bot_threads() == []
    problems = [r.getMessage() for r in caplog.records if r.name in ("asyncio", "parley.echo")]
    assert problems == []
