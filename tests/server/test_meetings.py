"""Meetings (protocol v1.1) on a real server: invitations, joins, mesh signaling, leaving,
the end, busy rules with calls, connection loss, history and restarts."""

from __future__ import annotations

import asyncio

from tests.server.test_calls import AV, OFFER
from tests.wire import Json, WireClient, befriend, new_call_id

AUDIO = {"audio": True, "video": False}
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


async def create(host: WireClient, *invitees: WireClient, **extra) -> tuple[str, Json]:
    """``host`` opens a meeting inviting ``invitees``; each of them is told. Returns id, Meeting."""
    meeting_id = new_call_id()
    names = [c.user["username"] for c in invitees]
    reply = await host.request(
        "meeting.create", meeting_id=meeting_id, media=AV, invite=names, **extra
    )
    for invitee in invitees:
        invited = await invitee.next_event("meeting.invited")
        assert invited["meeting_id"] == meeting_id and invited["from"] == host.user
    return meeting_id, reply["meeting"]


async def join(client: WireClient, meeting_id: str, *present: WireClient, media=AV) -> Json:
    """``client`` joins; everyone in ``present`` sees ``meeting.joined``. Returns the Meeting."""
    reply = await client.request("meeting.join", meeting_id=meeting_id, media=media)
    for other in present:
        joined = await other.next_event("meeting.joined")
        assert joined["meeting_id"] == meeting_id
        assert joined["participant"]["username"] == client.user["username"]
    return reply["meeting"]


def names(meeting: Json) -> list[str]:
    return [p["username"] for p in meeting["participants"]]


async def settle(*clients: WireClient) -> list[Json]:
    """Everything ``clients`` were sent so far (a round trip orders it before the reply)."""
    received = []
    for client in clients:
        await client.request("contacts.list")
        received += client.drain()
    return received


async def test_login_and_register_announce_meetings(connect) -> None:
    client = await connect()
    assert "meetings" in (await client.register("alice"))["features"]
    again = await connect()
    assert "meetings" in (await again.request("login", token=client.token))["features"]


async def test_create_invites_every_connection_of_each_invitee(friends, connect) -> None:
    alice, bob, carol = await friends("alice", "bob", "carol")
    bob_phone = await connect()
    await bob_phone.login("bob")
    meeting_id = new_call_id()
    reply = await alice.request(
        "meeting.create",
        meeting_id=meeting_id.upper(),
        media=AUDIO,
        invite=["bob", "Carol"],
        title="Weekly sync",
    )
    meeting = reply["meeting"]
    assert meeting["meeting_id"] == meeting_id and meeting["title"] == "Weekly sync"
    assert meeting["host"] == "alice" and meeting["topology"] == "mesh"
    assert meeting["capacity"] == 4
    (me,) = meeting["participants"]
    assert me["username"] == "alice" and me["display_name"] == "alice"
    assert (me["audio"], me["video"], me["screen"]) == (True, False, False)
    assert me["joined_at"] == meeting["started_at"] and me["joined_at"].endswith("Z")
    assert [u["username"] for u in meeting["invited"]] == ["bob", "carol"]
    expected = {
        "type": "meeting.invited",
        "meeting_id": meeting_id,
        "from": {"username": "alice", "display_name": "alice"},
        "title": "Weekly sync",
        "participants": [{"username": "alice", "display_name": "alice"}],
        "media": AUDIO,
    }
    for client in (bob, bob_phone, carol):
        assert await client.next_event("meeting.invited") == expected
    # The creator is in_call for contacts, as in a call.
    presence = await bob.next_event("presence")
    assert presence["username"] == "alice" and presence["presence"] == "in_call"


async def test_join_signal_media_leave_end(friends) -> None:
    alice, bob, carol = await friends("alice", "bob", "carol")
    meeting_id, _ = await create(alice, bob, carol)
    meeting = await join(bob, meeting_id, alice, media=AUDIO)
    assert names(meeting) == ["alice", "bob"]
    assert [u["username"] for u in meeting["invited"]] == ["carol"]
    meeting = await join(carol, meeting_id, alice, bob)
    assert names(meeting) == ["alice", "bob", "carol"] and meeting["invited"] == []

    # The newcomer offers to each one present; each signal reaches its addressee only.
    for to, client in (("alice", alice), ("bob", bob)):
        await carol.request("rtc.signal", meeting_id=meeting_id, to=to, description=OFFER)
        relayed = await client.next_event("rtc.signal")
        assert relayed == {
            "type": "rtc.signal",
            "meeting_id": meeting_id,
            "from": "carol",
            "description": OFFER,
        }
    await bob.request("rtc.signal", meeting_id=meeting_id, to="carol", candidate=CANDIDATE)
    assert (await carol.next_event("rtc.signal"))["candidate"] == CANDIDATE
    assert not [m for m in await settle(alice, bob) if m["type"] == "rtc.signal"]

    await bob.request("meeting.media", meeting_id=meeting_id, audio=False, video=True, screen=True)
    for client in (alice, carol):
        assert await client.next_event("meeting.media") == {
            "type": "meeting.media",
            "meeting_id": meeting_id,
            "username": "bob",
            "audio": False,
            "video": True,
            "screen": True,
        }
    # Saying the same again tells no one.
    await bob.request("meeting.media", meeting_id=meeting_id, audio=False, video=True, screen=True)
    assert not [m for m in await settle(alice, bob, carol) if m["type"] == "meeting.media"]

    # The host leaves: the longest present (bob) is host now.
    await alice.request("meeting.leave", meeting_id=meeting_id)
    for client in (bob, carol):
        assert await client.next_event("meeting.left") == {
            "type": "meeting.left",
            "meeting_id": meeting_id,
            "username": "alice",
            "reason": "left",
            "host": "bob",
        }
    reply = await carol.call("meeting.end", meeting_id=meeting_id)
    assert reply["code"] == "forbidden"
    reply = await alice.call("meeting.end", meeting_id=meeting_id)
    assert reply["code"] == "forbidden"  # not a participant any more
    await bob.request("meeting.end", meeting_id=meeting_id)
    for client in (bob, carol):
        ended = await client.next_event("meeting.ended")
        assert ended == {"type": "meeting.ended", "meeting_id": meeting_id, "reason": "ended"}
    assert not [m for m in await settle(alice) if m["type"].startswith("meeting.")]
    reply = await bob.call("meeting.join", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "not_found"


async def test_the_last_one_out_ends_it_empty_for_the_invitees(friends) -> None:
    alice, bob, carol = await friends("alice", "bob", "carol")
    meeting_id, _ = await create(alice, bob, carol)
    await join(bob, meeting_id, alice)
    await alice.request("meeting.leave", meeting_id=meeting_id)
    left = await bob.next_event("meeting.left")
    assert left["host"] == "bob"
    await bob.request("meeting.leave", meeting_id=meeting_id)
    ended = await carol.next_event("meeting.ended")
    assert ended == {"type": "meeting.ended", "meeting_id": meeting_id, "reason": "empty"}
    assert not [m for m in await settle(alice, bob) if m["type"] == "meeting.ended"]
    reply = await carol.call("meeting.join", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "not_found"
    presence = [m for m in await settle(carol) if m["type"] == "presence"]
    assert presence and presence[-1] == {
        "type": "presence",
        "username": "bob",
        "presence": "online",
        "display_name": "bob",
    }


async def test_a_fifth_participant_finds_the_meeting_full(friends) -> None:
    alice, bob, carol, dave, erin = await friends("alice", "bob", "carol", "dave", "erin")
    meeting_id, _ = await create(alice, bob, carol, dave, erin)  # more invitations than places
    await join(bob, meeting_id, alice)
    await join(carol, meeting_id, alice, bob)
    await join(dave, meeting_id, alice, bob, carol)
    reply = await erin.call("meeting.join", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "meeting_full"
    # A place frees up: the invitation still holds.
    await dave.request("meeting.leave", meeting_id=meeting_id)
    meeting = await join(erin, meeting_id, alice, bob, carol)
    assert names(meeting) == ["alice", "bob", "carol", "erin"]


async def test_capacity_is_the_servers_option(make_server) -> None:
    server = await make_server(meeting_capacity=2)
    alice, bob, carol = await befriend(server.url, "alice", "bob", "carol")
    meeting_id, meeting = await create(alice, bob, carol)
    assert meeting["capacity"] == 2
    await join(bob, meeting_id, alice)
    assert (await carol.call("meeting.join", meeting_id=meeting_id, media=AV))[
        "code"
    ] == "meeting_full"
    for client in (alice, bob, carol):
        await client.close()


async def test_strangers_are_kept_out(friends, user) -> None:
    alice, bob = await friends("alice", "bob")
    mallory = await user("mallory")
    await mallory.request("contacts.request", username="alice")  # pending, not accepted
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    for kind, fields in (
        ("meeting.join", {"media": AV}),
        ("meeting.decline", {}),
        ("meeting.leave", {}),
        ("meeting.end", {}),
        ("meeting.media", {"audio": True, "video": True, "screen": False}),
        ("meeting.invite", {"usernames": ["alice"]}),
        ("rtc.signal", {"to": "alice", "description": OFFER}),
    ):
        reply = await mallory.call(kind, meeting_id=meeting_id, **fields)
        assert reply["code"] == "forbidden", (kind, reply)
    # Nor may anyone invite her, or name her as a signal's recipient.
    reply = await alice.call("meeting.invite", meeting_id=meeting_id, usernames=["mallory"])
    assert reply["code"] == "forbidden"
    reply = await alice.call("rtc.signal", meeting_id=meeting_id, to="mallory", description=OFFER)
    assert reply["code"] == "forbidden"
    reply = await alice.call(
        "meeting.create", meeting_id=new_call_id(), media=AV, invite=["mallory"]
    )
    assert reply["code"] == "busy"  # alice is in a meeting already
    assert [m for m in await settle(mallory) if m["type"] != "contact"] == []
    assert not [m for m in await settle(alice, bob) if m["type"].startswith("meeting.")]


async def test_inviting_a_non_contact_invites_nobody(friends, user) -> None:
    alice, bob, carol = await friends("alice", "bob", "carol")
    mallory = await user("mallory")
    meeting_id = new_call_id()
    reply = await alice.call(
        "meeting.create", meeting_id=meeting_id, media=AV, invite=["bob", "mallory"]
    )
    assert reply["code"] == "forbidden"
    reply = await alice.call("meeting.create", meeting_id=meeting_id, media=AV, invite=["nobody"])
    assert reply["code"] == "not_found"
    for bad in (["alice"], ["echo"]):
        reply = await alice.call("meeting.create", meeting_id=meeting_id, media=AV, invite=bad)
        assert reply["code"] == "bad_message"
    assert not [m for m in await settle(bob, mallory) if m["type"].startswith("meeting.")]
    # Nothing was created: the id is still free, and alice is not busy.
    meeting_id2, _ = await create(alice, bob)
    reply = await alice.call(
        "meeting.invite", meeting_id=meeting_id2, usernames=["carol", "mallory"]
    )
    assert reply["code"] == "forbidden"
    assert not [m for m in await settle(carol) if m["type"].startswith("meeting.")]
    reply = await alice.request("meeting.invite", meeting_id=meeting_id2, usernames=["carol"])
    assert [u["username"] for u in reply["meeting"]["invited"]] == ["bob", "carol"]
    await carol.next_event("meeting.invited")
    # Inviting again changes nothing for those invited or present.
    await alice.request("meeting.invite", meeting_id=meeting_id2, usernames=["carol", "bob"])
    assert not [m for m in await settle(bob, carol) if m["type"] == "meeting.invited"]


async def test_decline_tells_the_inviter(friends, connect) -> None:
    alice, bob, carol = await friends("alice", "bob", "carol")
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    await bob.request("meeting.invite", meeting_id=meeting_id, usernames=["carol"])
    invited = await carol.next_event("meeting.invited")
    assert invited["from"]["username"] == "bob"
    assert [u["username"] for u in invited["participants"]] == ["alice", "bob"]
    await carol.request("meeting.decline", meeting_id=meeting_id)
    assert await bob.next_event("meeting.declined") == {
        "type": "meeting.declined",
        "meeting_id": meeting_id,
        "username": "carol",
    }
    assert not [m for m in await settle(alice) if m["type"] == "meeting.declined"]
    assert (await carol.call("meeting.decline", meeting_id=meeting_id))["code"] == "forbidden"
    reply = await carol.call("meeting.join", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "forbidden"


async def test_a_pending_invitation_is_shown_on_login(friends, connect) -> None:
    alice, bob = await friends("alice", "bob")
    await bob.close()
    meeting_id, _ = await create(alice)
    await alice.request("meeting.invite", meeting_id=meeting_id, usernames=["bob"])
    back = await connect()
    await back.login("bob")
    invited = await back.next_event("meeting.invited")
    assert invited["meeting_id"] == meeting_id and invited["from"]["username"] == "alice"
    await join(back, meeting_id, alice)


async def test_busy_between_calls_and_meetings(friends) -> None:
    alice, bob, carol, dave = await friends("alice", "bob", "carol", "dave")
    call_id = new_call_id()
    await carol.request("call.invite", to="dave", call_id=call_id, media=AV)
    await dave.next_event("call.incoming")
    meeting_id, _ = await create(alice, bob, carol)
    # In a call (even ringing): no meeting.
    for client in (carol, dave):
        reply = await client.call("meeting.create", meeting_id=new_call_id(), media=AV)
        assert reply["code"] == "busy"
    assert (await carol.call("meeting.join", meeting_id=meeting_id, media=AV))["code"] == "busy"
    await carol.request("call.cancel", call_id=call_id)
    assert (await dave.next_event("call.ended"))["reason"] == "cancelled"
    await join(carol, meeting_id, alice)
    # In a meeting: no call out, and a call in ends at once with busy.
    reply = await alice.call("call.invite", to="dave", call_id=new_call_id(), media=AV)
    assert reply["code"] == "busy"
    call_id = new_call_id()
    await dave.request("call.invite", to="carol", call_id=call_id, media=AV)
    ended = await dave.next_event("call.ended")
    assert ended == {"type": "call.ended", "call_id": call_id, "reason": "busy"}
    assert not [m for m in await settle(carol) if m["type"] == "call.incoming"]
    # Nor a second meeting.
    reply = await carol.call("meeting.create", meeting_id=new_call_id(), media=AV)
    assert reply["code"] == "busy"
    other_id, _ = await create(dave, bob)
    assert (await bob.call("meeting.join", meeting_id=meeting_id, media=AV))["type"] == "ok"
    assert (await bob.call("meeting.join", meeting_id=other_id, media=AV))["code"] == "busy"
    history = (await dave.request("history.list"))["calls"]
    assert [c["reason"] for c in history][:1] == ["busy"]


async def test_a_lost_participant_leaves_after_the_grace(make_server) -> None:
    server = await make_server(reconnect_grace_s=0.3)
    alice, bob, carol = await befriend(server.url, "alice", "bob", "carol")
    meeting_id, _ = await create(alice, bob, carol)
    await join(bob, meeting_id, alice)
    await join(carol, meeting_id, alice, bob)
    await alice.close()  # the host's connection drops
    for client in (bob, carol):
        left = await client.next_event("meeting.left", timeout=5)
        assert left == {
            "type": "meeting.left",
            "meeting_id": meeting_id,
            "username": "alice",
            "reason": "lost",
            "host": "bob",
        }
    await bob.close()
    await carol.close()


async def test_a_rejoin_within_the_grace_keeps_the_place(make_server) -> None:
    server = await make_server(reconnect_grace_s=1.0)
    alice, bob = await befriend(server.url, "alice", "bob")
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    await bob.request("meeting.media", meeting_id=meeting_id, audio=True, video=True, screen=True)
    await alice.next_event("meeting.media")
    token = bob.token
    await bob.close()
    back = await WireClient.open(server.url)
    await back.request("login", token=token)
    # A signal to bob while he has no bound connection is dropped, not queued.
    await alice.request("rtc.signal", meeting_id=meeting_id, to="bob", description=OFFER)
    meeting = await join(back, meeting_id)
    assert names(meeting) == ["alice", "bob"] and meeting["host"] == "alice"
    # The screen share did not survive the connection: alice hears that, and nothing else.
    media = await alice.next_event("meeting.media")
    assert media["username"] == "bob" and media["screen"] is False
    await asyncio.sleep(1.3)  # past the grace: nothing happens now
    assert not [m for m in await settle(alice) if m["type"] in ("meeting.left", "meeting.joined")]
    await back.request("rtc.signal", meeting_id=meeting_id, to="alice", description=OFFER)
    assert (await alice.next_event("rtc.signal"))["from"] == "bob"
    await alice.request("rtc.signal", meeting_id=meeting_id, to="bob", candidate=CANDIDATE)
    assert (await back.next_event("rtc.signal"))["candidate"] == CANDIDATE
    # A third connection of bob's cannot take the place from the bound one.
    third = await WireClient.open(server.url)
    await third.request("login", token=token)
    assert (await third.call("meeting.join", meeting_id=meeting_id, media=AV))["code"] == "busy"
    for client in (alice, back, third):
        await client.close()


async def test_history_lists_the_meeting_for_each_participant(friends) -> None:
    alice, bob, carol, dave = await friends("alice", "bob", "carol", "dave")
    meeting_id, _ = await create(alice, bob, carol, dave, title="Retro")
    await join(bob, meeting_id, alice)
    await dave.request("meeting.decline", meeting_id=meeting_id)
    await bob.request("meeting.leave", meeting_id=meeting_id)
    await alice.next_event("meeting.left")
    await join(bob, meeting_id, alice)  # a former participant comes back
    await alice.request("meeting.end", meeting_id=meeting_id)
    await carol.next_event("meeting.ended")
    records = {}
    for client in (alice, bob, carol, dave):
        reply = await client.request("history.list")
        assert reply["calls"] == []
        (records[client.user["username"]],) = reply["meetings"]
    mine = records["bob"]
    assert mine["meeting_id"] == meeting_id and mine["title"] == "Retro"
    assert mine["host"] == "alice" and mine["participants"] == ["alice", "bob"]
    assert mine["started_at"] < mine["joined_at"] < mine["left_at"] == mine["ended_at"]
    assert records["alice"]["joined_at"] == records["alice"]["started_at"]
    for invited in ("carol", "dave"):  # invited, never joined
        assert "joined_at" not in records[invited] and "left_at" not in records[invited]
        assert records[invited]["participants"] == ["alice", "bob"]
    # Newest first, and the limit counts meetings as it counts calls.
    second_id, _ = await create(alice)
    await alice.request("meeting.leave", meeting_id=second_id)
    listed = (await alice.request("history.list"))["meetings"]
    assert [m["meeting_id"] for m in listed] == [second_id, meeting_id]
    limited = (await alice.request("history.list", limit=1))["meetings"]
    assert [m["meeting_id"] for m in limited] == [second_id]
    assert (await bob.request("history.list"))["meetings"] == [mine]


async def test_a_used_meeting_id_is_refused(friends) -> None:
    alice, bob = await friends("alice", "bob")
    meeting_id, _ = await create(alice)
    reply = await bob.call("meeting.create", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "bad_message"
    await alice.request("meeting.leave", meeting_id=meeting_id)
    reply = await alice.call("meeting.create", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "bad_message"  # ended, but never reused
    assert (await alice.call("meeting.leave", meeting_id=new_call_id()))["code"] == "not_found"
    signal = {"to": "bob", "description": OFFER}
    reply = await alice.call("rtc.signal", meeting_id=new_call_id(), **signal)
    assert reply["code"] == "not_found"


async def test_a_restart_ends_open_meetings(make_server) -> None:
    server = await make_server()
    alice, bob = await befriend(server.url, "alice", "bob")
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    await server.stop()
    await asyncio.gather(alice.close(), bob.close())
    again = await make_server()
    client = await WireClient.open(again.url)
    await client.login("bob")
    (record,) = (await client.request("history.list"))["meetings"]
    assert record["meeting_id"] == meeting_id and record["participants"] == ["alice", "bob"]
    assert record["left_at"] == record["ended_at"]
    reply = await client.call("meeting.join", meeting_id=meeting_id, media=AV)
    assert reply["code"] == "not_found"
    await client.close()


async def test_racing_requests_see_each_other(friends) -> None:
    """The hub decides before it waits for the store: one of two racers gets the last place."""
    alice, bob, carol, dave, erin = await friends("alice", "bob", "carol", "dave", "erin")
    meeting_id, _ = await create(alice, bob, carol, dave, erin)
    await join(bob, meeting_id, alice)
    await join(carol, meeting_id, alice, bob)
    both = await asyncio.gather(
        *(c.call("meeting.join", meeting_id=meeting_id, media=AV) for c in (dave, erin))
    )
    assert sorted(r.get("code", "ok") for r in both) == ["meeting_full", "ok"]
    # Two creators choosing the same id: one meeting.
    await alice.request("meeting.end", meeting_id=meeting_id)
    same = new_call_id()
    replies = await asyncio.gather(
        *(c.call("meeting.create", meeting_id=same, media=AV) for c in (bob, carol))
    )
    assert sorted(r.get("code", "ok") for r in replies) == ["bad_message", "ok"]


async def test_logging_out_starts_the_grace_like_a_lost_connection(make_server) -> None:
    server = await make_server(reconnect_grace_s=0.3)
    alice, bob = await befriend(server.url, "alice", "bob")
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    await bob.request("logout")
    left = await alice.next_event("meeting.left", timeout=5)
    assert left["username"] == "bob" and left["reason"] == "lost"
    # The meeting goes on with alice; bob, now a former participant, may come back.
    await bob.login("bob")
    meeting = await join(bob, meeting_id, alice)
    assert names(meeting) == ["alice", "bob"]
    await alice.close()
    await bob.close()


async def test_metrics_count_meetings(friends, server) -> None:
    from tests.server.test_fuzz import get_metrics

    alice, bob = await friends("alice", "bob")
    meeting_id, _ = await create(alice, bob)
    assert "parley_meetings_active 1" in await get_metrics(server)
    await bob.request("meeting.decline", meeting_id=meeting_id)
    await alice.request("meeting.end", meeting_id=meeting_id)
    metrics = await get_metrics(server)
    assert "parley_meetings_active 0" in metrics
    assert 'parley_meetings_total{reason="ended"} 1' in metrics
    assert 'parley_messages_in_total{type="meeting.create"} 1' in metrics
    assert 'parley_messages_out_total{type="meeting.invited"} 1' in metrics
