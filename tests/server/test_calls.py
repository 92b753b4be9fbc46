"""Call routing: ringing, answering, ending, relaying, reconnecting and history."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.wire import WireClient, befriend, new_call_id

AV = {"audio": True, "video": True}
OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}


async def ring(caller, callee, media=AV) -> str:
    call_id = new_call_id()
    await caller.request("call.invite", to=callee.user["username"], call_id=call_id, media=media)
    incoming = await callee.next_event("call.incoming")
    assert incoming == {
        "type": "call.incoming",
        "call_id": call_id,
        "from": caller.user,
        "media": media,
    }
    assert (await caller.next_event("call.ringing"))["call_id"] == call_id
    return call_id


async def connected(caller, callee) -> str:
    call_id = await ring(caller, callee)
    await callee.request("call.accept", call_id=call_id)
    assert (await caller.next_event("call.accepted"))["call_id"] == call_id
    return call_id


async def ended(client, call_id: str) -> str:
    event = await client.next_event("call.ended")
    assert event["call_id"] == call_id
    return event["reason"]


async def test_accept_signal_hangup_and_history(friends) -> None:
    alice, bob = await friends("alice", "bob")
    call_id = await connected(alice, bob)
    for who, other in ((alice, "bob"), (bob, "alice")):
        event = await who.next_event("presence")
        assert event["username"] == other and event["presence"] == "in_call"

    await alice.request("rtc.signal", call_id=call_id, description=OFFER)
    relayed = await bob.next_event("rtc.signal")
    assert relayed == {
        "type": "rtc.signal",
        "call_id": call_id,
        "from": "alice",
        "description": OFFER,
    }
    cand = {
        "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    await bob.request("rtc.signal", call_id=call_id, candidate=cand)
    assert (await alice.next_event("rtc.signal"))["candidate"] == cand

    await bob.request("call.hangup", call_id=call_id)
    assert await ended(alice, call_id) == "hangup"
    assert await ended(bob, call_id) == "hangup"
    assert (await alice.next_event("presence"))["presence"] == "online"

    (record,) = (await alice.request("history.list"))["calls"]
    assert record["call_id"] == call_id and record["peer"] == "bob"
    assert record["direction"] == "out" and record["reason"] == "hangup"
    assert record["media"] == AV
    assert record["started_at"] <= record["answered_at"] <= record["ended_at"]
    assert record["ended_at"].endswith("Z")
    (mirror,) = (await bob.request("history.list", limit=1))["calls"]
    assert mirror["direction"] == "in" and mirror["peer"] == "alice"


async def test_decline_and_cancel(friends) -> None:
    alice, bob = await friends("alice", "bob")
    call_id = await ring(alice, bob)
    await bob.request("call.decline", call_id=call_id)
    assert await ended(alice, call_id) == "declined"
    assert await ended(bob, call_id) == "declined"
    call_id = await ring(alice, bob)
    await alice.request("call.cancel", call_id=call_id)
    assert await ended(bob, call_id) == "cancelled"
    reasons = [c["reason"] for c in (await bob.request("history.list"))["calls"]]
    assert reasons == ["cancelled", "declined"]


async def test_busy_for_the_caller_only(friends) -> None:
    alice, bob, carol = await friends("alice", "bob", "carol")
    await connected(alice, bob)
    call_id = new_call_id()
    await carol.request("call.invite", to="bob", call_id=call_id, media=AV)
    assert await ended(carol, call_id) == "busy"
    await bob.no_event("call.incoming")
    # A caller already in a call cannot place another.
    reply = await alice.call("call.invite", to="carol", call_id=new_call_id(), media=AV)
    assert reply["code"] == "busy"


async def test_an_invite_is_logged_once_with_its_outcome(
    friends, caplog: pytest.LogCaptureFixture
) -> None:
    """One ``call.invite`` line per invite, saying how it went (ringing, busy, offline)."""
    alice, bob, carol = await friends("alice", "bob", "carol")
    with caplog.at_level(logging.INFO, logger="parley.server"):
        ringing = await ring(alice, bob)
        busy = new_call_id()
        await carol.request("call.invite", to="bob", call_id=busy, media=AV)
        assert await ended(carol, busy) == "busy"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=call.")]
    assert lines == [
        f"event=call.invite call={ringing} caller=alice callee=bob outcome=ringing",
        f"event=call.invite call={busy} caller=carol callee=bob outcome=busy",
    ]


async def test_callee_offline(friends) -> None:
    alice, bob = await friends("alice", "bob")
    await bob.close()
    call_id = new_call_id()
    await alice.request("call.invite", to="bob", call_id=call_id, media=AV)
    assert await ended(alice, call_id) == "offline"


async def test_no_answer_times_out(make_server) -> None:
    server = await make_server(ring_timeout_s=0.3)
    alice, bob = await befriend(server.url, "alice", "bob")
    call_id = await ring(alice, bob)
    assert await ended(alice, call_id) == "timeout"
    assert await ended(bob, call_id) == "timeout"
    await alice.close()
    await bob.close()


async def test_every_callee_connection_rings_and_one_answers(friends, connect) -> None:
    alice, bob = await friends("alice", "bob")
    bob_phone = await connect()
    await bob_phone.login("bob")
    call_id = new_call_id()
    await alice.request("call.invite", to="bob", call_id=call_id, media=AV)
    await bob.next_event("call.incoming")
    await bob_phone.next_event("call.incoming")
    await bob_phone.request("call.accept", call_id=call_id)
    assert await ended(bob, call_id) == "answered_elsewhere"
    await alice.next_event("call.accepted")
    await alice.request("rtc.signal", call_id=call_id, description=OFFER)
    assert (await bob_phone.next_event("rtc.signal"))["description"] == OFFER
    await bob.no_event("rtc.signal")


async def test_reused_call_id_is_refused(friends) -> None:
    alice, bob = await friends("alice", "bob")
    call_id = await ring(alice, bob)
    await alice.request("call.cancel", call_id=call_id)
    assert await ended(bob, call_id) == "cancelled"
    reply = await alice.call("call.invite", to="bob", call_id=call_id, media=AV)
    assert reply["code"] == "bad_message"
    # The callee was told before the store refused the id (call.incoming does not wait for
    # the history row's commit); it then hears that the call failed, and nobody stays busy.
    assert (await bob.next_event("call.incoming"))["call_id"] == call_id
    assert await ended(bob, call_id) == "failed"
    await ring(alice, bob)


async def test_echo_answers_at_once(user) -> None:
    alice = await user("alice")
    call_id = new_call_id()
    await alice.request("call.invite", to="echo", call_id=call_id, media=AV)
    assert (await alice.next_event("call.ringing"))["call_id"] == call_id
    assert (await alice.next_event("call.accepted"))["call_id"] == call_id
    await alice.request("call.hangup", call_id=call_id)
    assert await ended(alice, call_id) == "hangup"


async def test_without_the_echo_bot_a_call_to_echo_is_offline(make_server) -> None:
    server = await make_server(echo_bot=False)
    (alice,) = await befriend(server.url, "alice")
    call_id = new_call_id()
    await alice.request("call.invite", to="echo", call_id=call_id, media=AV)
    assert await ended(alice, call_id) == "offline"
    await alice.close()


async def test_call_survives_a_reconnect_within_grace(friends, connect) -> None:
    alice, bob = await friends("alice", "bob")
    call_id = await connected(alice, bob)
    token = alice.token
    await alice.close()
    back = await connect()
    await back.request("login", token=token)
    replay = await back.next_event("call.accepted")
    assert replay["call_id"] == call_id and replay["peer"] == "bob"
    await bob.request("rtc.signal", call_id=call_id, description=OFFER)
    assert (await back.next_event("rtc.signal"))["description"] == OFFER
    await back.request("call.hangup", call_id=call_id)
    assert await ended(bob, call_id) == "hangup"


async def test_ringing_is_replayed_to_a_callee_who_comes_back(friends, connect) -> None:
    alice, bob = await friends("alice", "bob")
    call_id = await ring(alice, bob)
    await bob.close()
    back = await connect()
    await back.login("bob")
    replay = await back.next_event("call.incoming")
    assert replay["call_id"] == call_id and replay["from"]["username"] == "alice"
    await back.request("call.accept", call_id=call_id)
    assert (await alice.next_event("call.accepted"))["call_id"] == call_id


async def test_a_party_gone_past_the_grace_period_ends_the_call_lost(make_server) -> None:
    server = await make_server(reconnect_grace_s=0.3)
    alice, bob = await befriend(server.url, "alice", "bob")
    call_id = await connected(alice, bob)
    await bob.close()
    assert await ended(alice, call_id) == "lost"
    # The caller can place a new call right after.
    (carol,) = await befriend(server.url, "carol")
    await alice.request("contacts.request", username="carol")
    await carol.request("contacts.accept", username="alice")
    await ring(alice, carol)
    await alice.close()
    await carol.close()


async def test_unfinished_calls_are_closed_when_the_server_restarts(make_server, tmp_path) -> None:
    server = await make_server()
    alice, bob = await befriend(server.url, "alice", "bob")
    call_id = await connected(alice, bob)
    await server.stop()
    await asyncio.gather(alice.close(), bob.close())
    again = await make_server()
    client = await WireClient.open(again.url)
    await client.login("alice")
    (record,) = (await client.request("history.list"))["calls"]
    assert record["call_id"] == call_id and record["reason"] == "lost"
    await client.close()


async def test_a_hangup_for_failure_ends_the_call_failed_for_both(friends) -> None:
    """``call.hangup`` may say the call failed (reason ``failed``, nothing else): both sides and
    the history say so."""
    alice, bob = await friends("alice", "bob")
    call_id = await connected(alice, bob)
    for reason in ("hangup", "FAILED", "", 1, True, ["failed"]):
        reply = await bob.call("call.hangup", call_id=call_id, reason=reason)
        assert reply["code"] == "bad_message" and "reason" in reply["message"], reason
    await bob.request("call.hangup", call_id=call_id, reason="failed")
    assert await ended(alice, call_id) == "failed"
    assert await ended(bob, call_id) == "failed"
    (record,) = (await alice.request("history.list"))["calls"]
    assert record["reason"] == "failed" and record["answered_at"] is not None
