"""A late joiner of a meeting through a real Janus sees the chat so far, replayed by the
server; after a drop the server replays it again and the session shows nothing twice."""

from __future__ import annotations

import asyncio

import pytest

from gui.core.peer_channel import ChatMessage
from tests.conftest import ServerFactory
from tests.core.test_meeting_session import Meeting, befriend, invitation, until
from tests.sfu.conftest import SfuSetup
from tests.sfu.test_relay import settings
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


async def test_a_late_joiner_through_janus_gets_the_chat_once_even_after_a_drop(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server = await make_server(echo_bot=False, sfu=settings(sfu))
    meeting = Meeting(server)
    proxy = TcpProxy(server.port)
    await proxy.start()
    meeting.proxies.append(proxy)  # stopped once the sessions have left (Meeting.close)
    try:
        ada, bob = await meeting.client("ada"), await meeting.client("bob")
        cyd = await meeting.client("cyd", proxy.url())
        await befriend(ada, bob, cyd)
        invited = {"bob": invitation(bob), "cyd": invitation(cyd)}
        host = meeting.create(["bob", "cyd"])
        await until(lambda: host.machine.topology == "sfu", 30)
        other = await meeting.accept("bob", invited["bob"])
        await until(lambda: "bob" in host.machine.participants, 30)
        host.send_chat("Agenda: <b>budget</b>")
        await until(lambda: len(other.chat_log) == 1, 20)
        other.send_chat("notes by me")
        await until(lambda: len(host.chat_log) == 2, 20)

        replayed: list[str] = []
        cyd.on_event(
            lambda m: (
                m.get("type") == "meeting.chat"
                and m.get("history") is True
                and replayed.append(m["chat_id"])
            )
        )
        late = await meeting.accept("cyd", invited["cyd"])
        seen: list[tuple[str, str, str]] = []
        for event in ("chat", "chat_history"):

            def listener(who: str, message: ChatMessage, event: str = event) -> None:
                seen.append((event, who, message.text))

            late.on(event, listener)
        await until(lambda: len(seen) == 2, 30)
        assert seen == [
            ("chat_history", "ada", "Agenda: <b>budget</b>"),
            ("chat_history", "bob", "notes by me"),
        ]

        # Cyd's way to the server drops; her client comes back and joins again: the server
        # replays the chat (and what was said meanwhile); she sees only what is new.
        delivered: list[str] = []
        host.on("delivered", delivered.append)
        proxy.accepting = False
        proxy.cut()
        away = host.send_chat("while cyd was away")
        await until(lambda: away.id in delivered, 20)
        proxy.accepting = True
        await until(lambda: len(replayed) >= 5, 40)
        await asyncio.sleep(0.5)
        assert seen[2:] == [("chat_history", "ada", "while cyd was away")]
        other.send_chat("welcome back")
        await until(lambda: len(seen) == 4, 20)
        assert seen[3] == ("chat", "bob", "welcome back")
    finally:
        await meeting.close()
