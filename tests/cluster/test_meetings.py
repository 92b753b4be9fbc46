"""A meeting whose participants sit on three instances, and the Echo Test (which lives on the
coordinator) called from another instance."""

from __future__ import annotations

import asyncio
import time

from tests.cluster.conftest import Service
from tests.cluster.test_calls import AV, patient, patient_login, users_on
from tests.wire import WireClient, new_call_id


async def test_a_meeting_across_three_instances(service: Service) -> None:
    first, second, third = await service(3)
    ana, bea, cat = await users_on(("ana", first), ("bea", second), ("cat", third))
    meeting_id = new_call_id()
    await ana.request("meeting.create", meeting_id=meeting_id, media=AV, invite=["bea", "cat"])
    for invitee in (bea, cat):
        assert (await invitee.next_event("meeting.invited"))["meeting_id"] == meeting_id
    await bea.request("meeting.join", meeting_id=meeting_id, media=AV)
    assert (await ana.next_event("meeting.joined"))["participant"]["username"] == "bea"
    reply = await cat.request("meeting.join", meeting_id=meeting_id, media=AV)
    assert sorted(p["username"] for p in reply["meeting"]["participants"]) == ["ana", "bea", "cat"]
    for client in (ana, bea):
        assert (await client.next_event("meeting.joined"))["participant"]["username"] == "cat"
    offer = {"type": "offer", "sdp": "v=0"}
    for to, client in (("ana", ana), ("bea", bea)):
        await cat.request("rtc.signal", meeting_id=meeting_id, to=to, description=offer)
        relayed = await client.next_event("rtc.signal")
        assert (relayed["from"], relayed["description"]) == ("cat", offer)
    await bea.request("meeting.leave", meeting_id=meeting_id)
    for client in (ana, cat):
        left = await client.next_event("meeting.left")
        assert left["username"] == "bea"
    await asyncio.gather(ana.close(), bea.close(), cat.close())


async def test_the_echo_test_answers_a_caller_on_another_instance(service: Service) -> None:
    _, second = await service(2)
    (ana,) = await users_on(("ana", second))
    call_id = new_call_id()
    await ana.request("call.invite", to="echo", call_id=call_id, media=AV)
    accepted = await ana.next_event("call.accepted", timeout=15)
    assert accepted["call_id"] == call_id
    await ana.request("call.hangup", call_id=call_id)
    await ana.close()


async def test_a_meeting_outlives_the_coordinator(service: Service) -> None:
    """The coordinator dies in a mesh meeting with two participants on it: the next one has the
    meeting from the mirror. One of the two comes back by token and joins again; the other does
    not, and leaves ``lost`` when the grace runs out. The others never noticed a thing."""
    first, second, third = await service(3, "--reconnect-grace", "6")
    ana, dan, bea, cat = await users_on(
        ("ana", first), ("dan", first), ("bea", second), ("cat", third)
    )
    meeting_id = new_call_id()
    await ana.request(
        "meeting.create", meeting_id=meeting_id, media=AV, invite=["bea", "cat", "dan"]
    )
    for client in (dan, bea, cat):
        await client.request("meeting.join", meeting_id=meeting_id, media=AV)
    assert ana.token is not None
    await asyncio.to_thread(first.kill)
    died = time.monotonic()
    ana_again = await patient_login(second, ana.token)
    reply = await patient(ana_again, "meeting.join", meeting_id=meeting_id, media=AV)
    present = sorted(p["username"] for p in reply["meeting"]["participants"])
    assert present == ["ana", "bea", "cat", "dan"]
    offer = {"type": "offer", "sdp": "v=0"}
    await cat.request("rtc.signal", meeting_id=meeting_id, to="ana", description=offer)
    assert (await ana_again.next_event("rtc.signal", timeout=10))["from"] == "cat"
    await bea.request("rtc.signal", meeting_id=meeting_id, to="cat", description=offer)
    assert (await cat.next_event("rtc.signal", timeout=10))["from"] == "bea"
    for client in (ana_again, bea, cat):
        left = await client.next_event("meeting.left", timeout=20)
        assert (left["username"], left["reason"]) == ("dan", "lost")
    assert time.monotonic() - died > 5  # the grace, not at once
    for client in (bea, cat, ana_again):
        await client.request("meeting.leave", meeting_id=meeting_id)
    history = await cat.request("history.list")
    assert [m["meeting_id"] for m in history["meetings"]] == [meeting_id]
    await asyncio.gather(ana_again.close(), bea.close(), cat.close())


async def test_a_silent_connection_on_another_instance_is_let_go(service: Service) -> None:
    """bob's bound connection (on the third instance) stops answering; he joins again from the
    second: the third instance pings the old one for the coordinator, and the new one is bound
    at once, bob keeping his place (``tests/server/test_meeting_new_connection.py``, across)."""
    first, second, third = await service(3)
    alice, bob = await users_on(("alice", first), ("bob", third))
    meeting_id = new_call_id()
    await alice.request("meeting.create", meeting_id=meeting_id, media=AV, invite=["bob"])
    await bob.next_event("meeting.invited")
    await bob.request("meeting.join", meeting_id=meeting_id, media=AV)
    await alice.next_event("meeting.joined")
    bob.ws.transport.pause_reading()  # no more pongs: a dead address
    assert bob.token is not None
    again = await WireClient.open(second.url)
    await again.request("login", token=bob.token)
    started = time.monotonic()
    reply = await again.request("meeting.join", meeting_id=meeting_id, media=AV)
    assert time.monotonic() - started < 10
    assert sorted(p["username"] for p in reply["meeting"]["participants"]) == ["alice", "bob"]
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}
    await alice.request("rtc.signal", meeting_id=meeting_id, to="bob", candidate=candidate)
    assert (await again.next_event("rtc.signal"))["from"] == "alice"
    await asyncio.gather(alice.close(), again.close())
