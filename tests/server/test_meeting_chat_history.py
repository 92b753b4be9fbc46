"""The chat a meeting keeps for whoever joins later (protocol v1.1, ``meeting.chat`` history).

On a real server, over the wire: a participant who joins, or comes back after a drop, gets
the messages the server relayed before, oldest first, marked ``history``; only participants
get them (an invitee who has not joined, a stranger refused, a guest once removed: nothing),
only this meeting's, and only the newest ``CHAT_HISTORY``.
"""

from __future__ import annotations

import pytest

from signaling.server import meetings
from tests.server.test_calls import AV
from tests.server.test_meetings import create, join, settle
from tests.wire import Json, WireClient, new_call_id


def chat_of(events: list[Json]) -> list[tuple[str, str, bool]]:
    """(sender, text, history) of the ``meeting.chat`` events among ``events``."""
    return [
        (e["from"]["username"], e["text"], bool(e.get("history")))
        for e in events
        if e["type"] == "meeting.chat"
    ]


async def say(client: WireClient, meeting_id: str, chat_id: str, text: str) -> None:
    await client.request("meeting.chat", meeting_id=meeting_id, chat_id=chat_id, text=text)


async def test_late_joiners_get_the_chat_so_far_and_no_one_else_does(
    friends, user, connect
) -> None:
    ada, bob, cyd, dan = await friends("ada", "bob", "cyd", "dan")
    zed = await user("zed")
    meeting_id, _ = await create(ada, bob, cyd, dan)
    await join(bob, meeting_id, ada)
    await say(ada, meeting_id, "a1", "Hello <b>bob</b>")
    await say(bob, meeting_id, "b1", "hi ada\nhow are you")
    await settle(ada, bob)

    # Cyd joins: the two messages, oldest first, marked history, right after the reply.
    await join(cyd, meeting_id, ada, bob)
    assert chat_of(await settle(cyd)) == [
        ("ada", "Hello <b>bob</b>", True),
        ("bob", "hi ada\nhow are you", True),
    ]
    # Invited, not joined: nothing. A stranger is refused and gets nothing either.
    assert chat_of(await settle(dan)) == []
    assert (await zed.call("meeting.join", meeting_id=meeting_id, media=AV))["code"] == "forbidden"
    assert chat_of(await settle(zed)) == []

    # Bob's connection drops; he logs in again and rejoins within the grace: he gets the
    # whole chat again (his client keeps one of each chat_id), including what he missed.
    await bob.close()
    await say(cyd, meeting_id, "c1", "bob dropped?")
    bob2 = await connect()
    await bob2.login("bob")
    await bob2.request("meeting.join", meeting_id=meeting_id, media=AV)
    events = [e for e in await settle(bob2) if e["type"] == "meeting.chat"]
    assert [e["chat_id"] for e in events] == ["a1", "b1", "c1"]
    assert all(e["meeting_id"] == meeting_id and e["sent_at"] for e in events)
    # Live messages are not marked.
    await say(ada, meeting_id, "a2", "welcome back")
    assert chat_of(await settle(bob2)) == [("ada", "welcome back", False)]

    # Another meeting starts with no chat of this one.
    await ada.request("meeting.end", meeting_id=meeting_id)
    await settle(ada, bob2, cyd, dan)
    other, _ = await create(ada, dan)
    await join(dan, other, ada)
    assert chat_of(await settle(dan)) == []
    await ada.request("meeting.end", meeting_id=other)


async def test_only_the_newest_messages_are_kept(friends, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meetings, "CHAT_HISTORY", 3)
    ada, bob = await friends("ada", "bob")
    meeting_id, _ = await create(ada, bob)
    for n in range(5):
        await say(ada, meeting_id, f"m{n}", f"message {n}")
    await join(bob, meeting_id, ada)
    assert [t for _, t, _ in chat_of(await settle(bob))] == [
        "message 2",
        "message 3",
        "message 4",
    ]
    await ada.request("meeting.end", meeting_id=meeting_id)


async def test_a_removed_guest_gets_nothing_more(friends, server) -> None:
    (ada,) = await friends("ada")
    meeting_id = new_call_id()
    await ada.request("meeting.create", meeting_id=meeting_id, media=AV, invite=[])
    await say(ada, meeting_id, "a1", "before the guest")
    link = (await ada.request("guest_link.create", meeting_id=meeting_id))["link"]
    guest = await WireClient.open(server.url)
    try:
        reply = await guest.request("guest.join", code=link["code"], display_name="Ann", media=AV)
        username = reply["user"]["username"]
        event = await guest.next_event("meeting.chat")
        assert (event["text"], event["history"]) == ("before the guest", True)
        await ada.request("guest.remove", username=username)
        await say(ada, meeting_id, "a2", "after the guest")
        await guest.no_event("meeting.chat", 0.5)
        assert chat_of(guest.drain()) == []
    finally:
        await guest.close()
        await ada.request("meeting.end", meeting_id=meeting_id)
