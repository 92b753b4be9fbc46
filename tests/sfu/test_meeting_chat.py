"""Chat relayed by the server in a meeting through Janus (``meeting.chat``, protocol v1.1).

Over the wire: participants and a guest get each message with its sender, a stranger and
someone only invited are refused, bad text is refused. In process: two meeting sessions
through the session's real Janus chat with the same events as over a mesh's data channels.
"""

from __future__ import annotations

import asyncio

import pytest

from signaling.server import SignalingServer
from tests.conftest import ServerFactory
from tests.core.test_meeting_session import Meeting, befriend, invitation, until
from tests.sfu.conftest import SfuSetup
from tests.sfu.test_relay import AV, apps, refused, settings
from tests.wire import WireClient, new_call_id

pytestmark = pytest.mark.slow


async def test_chat_reaches_every_other_participant_and_guest_and_no_stranger(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server: SignalingServer = await make_server(echo_bot=False, sfu=settings(sfu))
    ada, bob, cyd, zed = await apps(server.url, "ada", "bob", "cyd", "zed")
    meeting_id = new_call_id()
    reply = await ada.request("meeting.create", meeting_id=meeting_id, media=AV, invite=["bob"])
    assert reply["meeting"]["topology"] == "sfu"
    await bob.next_event("meeting.invited")
    link = (await ada.request("guest_link.create", meeting_id=meeting_id))["link"]
    guest = await WireClient.open(server.url)
    try:
        await guest.request("guest.join", code=link["code"], display_name="Ann", media=AV)
        chat = {"meeting_id": meeting_id, "chat_id": "m1", "text": "hello\nall ✓"}
        for outsider in (bob, zed):  # only invited, and a stranger
            assert await refused(outsider, "meeting.chat", **chat) == "forbidden"
        await bob.request("meeting.join", meeting_id=meeting_id, media=AV)
        for client in (ada, bob, guest):
            client.drain()

        got = await ada.request("meeting.chat", **chat)
        assert got["chat_id"] == "m1" and got["sent_at"]
        for client in (bob, guest):
            event = await client.next_event("meeting.chat")
            assert event["from"]["username"] == "ada" and event["text"] == "hello\nall ✓"
            assert event["chat_id"] == "m1" and event["meeting_id"] == meeting_id
        await ada.no_event("meeting.chat")  # not back to the sender
        await zed.no_event("meeting.chat")
        await cyd.no_event("meeting.chat")

        await guest.request("meeting.chat", meeting_id=meeting_id, chat_id="g1", text="hi from Ann")
        for client in (ada, bob):
            event = await client.next_event("meeting.chat")
            assert event["from"]["display_name"] == "Guest: Ann" and event["text"] == "hi from Ann"

        for text in ("", "   ", "x" * 4001, "evil\u202etxt", "zero\u200bwidth", "bell\x07"):
            bad = {"meeting_id": meeting_id, "chat_id": "m2", "text": text}
            assert await refused(bob, "meeting.chat", **bad) == "bad_message", repr(text)
        assert await refused(
            bob, "meeting.chat", meeting_id=meeting_id, chat_id="a b", text="x"
        ) == ("bad_message")
        assert await refused(
            bob, "meeting.chat", meeting_id=new_call_id(), chat_id="m", text="x"
        ) == ("not_found")
        await ada.request("meeting.chat", meeting_id=meeting_id, chat_id="m3", text="x" * 4000)
        assert len((await bob.next_event("meeting.chat"))["text"]) == 4000
    finally:
        await guest.close()
        await ada.request("meeting.end", meeting_id=meeting_id)


async def test_two_meeting_sessions_through_janus_chat(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server = await make_server(echo_bot=False, sfu=settings(sfu))
    meeting = Meeting(server)
    try:
        ada, bob = await meeting.client("ada"), await meeting.client("bob")
        await befriend(ada, bob)
        invited = invitation(bob)
        host = meeting.create(["bob"])
        await until(lambda: host.machine.topology == "sfu", 30)
        other = await meeting.accept("bob", invited)
        await until(lambda: "bob" in host.machine.participants, 30)
        heard: dict[str, list[tuple[str, str, bool]]] = {"ada": [], "bob": []}
        delivered: list[str] = []
        for name, session in (("ada", host), ("bob", other)):
            session.on(
                "chat",
                lambda username, m, name=name: heard[name].append((username, m.text, m.outgoing)),
            )
        host.on("delivered", delivered.append)

        sent = host.send_chat("hello bob")
        assert sent.outgoing and sent.text == "hello bob"
        await until(lambda: heard["bob"] == [("ada", "hello bob", False)], 20)
        await until(lambda: delivered == [sent.id], 20)
        other.send_chat("hi ada")
        await until(lambda: heard["ada"] == [("bob", "hi ada", False)], 20)
        with pytest.raises(ValueError):
            host.send_chat("x" * 4001)

        host.end()
        for session in (host, other):
            await asyncio.wait_for(session.wait_ended(), 20)
    finally:
        await meeting.close()
