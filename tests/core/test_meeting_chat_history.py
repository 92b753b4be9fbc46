"""A late joiner of a mesh meeting sees the chat so far, sent end to end by the others over
the new links' data channels (the server never sees it): real sessions, a real server, real
aiortc links on loopback."""

from __future__ import annotations

import asyncio

import pytest

from gui.core.meeting_session import MeetingSession
from gui.core.peer_channel import ChatMessage, PastChat
from tests.core.test_meeting_session import (
    LINKED_S,
    Meeting,
    befriend,
    invitation,
    meeting,
    until,
)

pytestmark = pytest.mark.slow
__all__ = ["meeting"]  # the fixture


def record(session: MeetingSession) -> list[tuple[str, str, str, bool]]:
    """(event, sender, text, outgoing) of every chat event ``session`` emits from now on."""
    seen: list[tuple[str, str, str, bool]] = []
    for event in ("chat", "chat_history"):

        def listener(who: str, message: ChatMessage, event: str = event) -> None:
            seen.append((event, who, message.text, message.outgoing))

        session.on(event, listener)
    return seen


def channel_open(session: MeetingSession, *others: str) -> bool:
    return all(o in session.links and session.links[o].channel.is_open for o in others)


async def test_a_late_joiner_gets_the_chat_once_and_only_first_hand_for_those_present(
    meeting: Meeting,
) -> None:
    ada, bob, cyd = [await meeting.client(n) for n in ("ada", "bob", "cyd")]
    await befriend(ada, bob, cyd)
    invited = {"bob": invitation(bob), "cyd": invitation(cyd)}
    host = meeting.create(["bob", "cyd"])
    first = await meeting.accept("bob", invited["bob"])
    await until(lambda: channel_open(host, "bob") and channel_open(first, "ada"), LINKED_S)
    host.send_chat("Hello <b>bob</b>")
    await until(lambda: len(first.chat_log) == 1)
    first.send_chat("hi ada")
    await until(lambda: len(host.chat_log) == 2)

    # Bob leaves; Cyd joins late: Ada tells her both messages (Bob's too, as he is gone).
    first.leave()
    await asyncio.wait_for(first.wait_ended(), 10)
    await until(lambda: "bob" not in host.machine.participants)
    late = await meeting.accept("cyd", invited["cyd"])
    cyd_saw = record(late)
    await until(lambda: len(late.chat_log) == 2, LINKED_S)  # over cyd's new links
    assert cyd_saw == [
        ("chat_history", "ada", "Hello <b>bob</b>", False),
        ("chat_history", "bob", "hi ada", False),
    ]
    host.send_chat("welcome cyd")
    await until(lambda: len(late.chat_log) == 3)
    assert cyd_saw[-1] == ("chat", "ada", "welcome cyd", False)

    # Bob comes back (a fresh session, as after a restart): Ada and Cyd each send him the
    # whole chat; he sees each message once, his own as his own, in order of sending.
    again = meeting.join("bob", host.meeting_id)
    bob_saw = record(again)
    await until(lambda: channel_open(again, "ada", "cyd"), LINKED_S)
    await until(lambda: len(again.chat_log) == 3)
    await asyncio.sleep(1.0)  # the second copy arrives and is dropped
    # Each once; in the order the two links' channels happened to open (Cyd's may come first,
    # with Bob's own message only: Ada's are taken from Ada), the log keeps the order of sending.
    assert sorted(bob_saw) == sorted(
        [
            ("chat_history", "ada", "Hello <b>bob</b>", False),
            ("chat_history", "bob", "hi ada", True),
            ("chat_history", "ada", "welcome cyd", False),
        ]
    )
    assert [e.message.text for e in again.chat_log.past()] == [
        "Hello <b>bob</b>",
        "hi ada",
        "welcome cyd",
    ]

    # A participant cannot put words in the mouth of someone present: Ada's link to Cyd
    # carries a "past" message said to be Bob's; Cyd drops it (Bob would have sent it).
    forged = ChatMessage("forged-1", "I resign", 1.0, outgoing=False)
    host.links["cyd"].channel.send_past([PastChat("bob", forged)])
    host.send_chat("after the forgery")
    await until(lambda: cyd_saw[-1][2] == "after the forgery")
    assert "forged-1" not in late.chat_log
    assert all(text != "I resign" for _, _, text, _ in cyd_saw)


async def test_a_message_sent_while_a_link_is_made_again_arrives_once_live_and_is_delivered(
    meeting: Meeting,
) -> None:
    """A participant's link breaks (its far end closed, as when consent expires there) and
    is offered again: what Ada sent into the dying link, and what she sent while there was
    no link to Bob, reaches Bob over the new link, live (he was there), once, and Ada is told
    both were delivered."""
    ada, bob = [await meeting.client(n) for n in ("ada", "bob")]
    await befriend(ada, bob)
    invited = invitation(bob)
    host = meeting.create(["bob"])
    first = await meeting.accept("bob", invited)
    await until(lambda: channel_open(host, "bob") and channel_open(first, "ada"), LINKED_S)
    bob_saw = record(first)
    delivered: list[str] = []
    host.on("delivered", delivered.append)

    # Bob offered on this pair: when his end breaks, he offers a new link a second later.
    assert first.machine.link_offerer("ada") is True
    old = host.links["bob"]
    in_flight = host.send_chat("sent as the link breaks")
    await first.links["ada"].pc.close()
    await until(lambda: old.closed, LINKED_S)  # Ada's end is gone too (closed, or replaced)
    waiting = host.send_chat("sent while the link is made again")  # nobody linked: not refused

    await until(lambda: len(delivered) == 2, LINKED_S)
    assert sorted(delivered) == sorted([in_flight.id, waiting.id])
    assert sorted(bob_saw) == sorted(
        [
            ("chat", "ada", "sent as the link breaks", False),
            ("chat", "ada", "sent while the link is made again", False),
        ]
    )
    assert [e.message.text for e in first.chat_log.past()] == [
        "sent as the link breaks",
        "sent while the link is made again",
    ]
