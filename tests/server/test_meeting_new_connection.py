"""A participant joining a meeting again from a new connection while another of theirs is still
bound: busy if that one is alive (another device), taken over if it does not answer a ping
(the client moved to a new address; the keepalive would notice only after a minute)."""

from __future__ import annotations

import time

from tests.server.test_calls import AV
from tests.server.test_meetings import CANDIDATE, create, join, settle
from tests.wire import WireClient


async def test_a_live_bound_connection_keeps_the_place(friends, connect) -> None:
    alice, bob = await friends("alice", "bob")
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    second: WireClient = await connect()
    await second.request("login", token=bob.token)
    reply = await second.call("meeting.join", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "busy", reply
    # The first connection still carries bob's signals.
    await alice.request("rtc.signal", meeting_id=meeting_id, to="bob", candidate=CANDIDATE)
    assert (await bob.next_event("rtc.signal"))["from"] == "alice"


async def test_a_silent_bound_connection_is_let_go_and_the_new_one_joins(friends, connect) -> None:
    alice, bob = await friends("alice", "bob")
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    await settle(alice)
    bob.ws.transport.pause_reading()  # bob's old socket: no more pongs (a dead address)
    second: WireClient = await connect()
    await second.request("login", token=bob.token)
    started = time.monotonic()
    reply = await second.request("meeting.join", meeting_id=meeting_id, media=AV)
    assert time.monotonic() - started < 10
    assert [p["username"] for p in reply["meeting"]["participants"]] == ["alice", "bob"]
    # bob kept his place: alice saw nobody leave or join, and signals reach the new connection.
    seen = [m["type"] for m in await settle(alice)]
    assert "meeting.left" not in seen and "meeting.joined" not in seen, seen
    await alice.request("rtc.signal", meeting_id=meeting_id, to="bob", candidate=CANDIDATE)
    assert (await second.next_event("rtc.signal"))["from"] == "alice"
