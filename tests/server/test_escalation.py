"""A 1:1 call becomes a meeting (``meeting.create`` with ``from_call``, protocol v1.1) on a real
server: both parties are in it at once, the call ends ``moved_to_meeting`` in the history, the
newcomer is invited; and every refusal leaves the call as it was."""

from __future__ import annotations

from tests.server.test_calls import AV, OFFER, connected
from tests.server.test_meetings import names, settle
from tests.wire import Json, WireClient, new_call_id

MEETINGS = ["meetings"]


async def meeting_app(client: WireClient, connect) -> WireClient:
    """``client``'s user again, on an app that says it understands meetings."""
    app = await connect()
    username = client.user["username"]
    reply = await app.request(
        "login", username=username, password="correct horse", features=MEETINGS
    )
    app.user, app.token = reply["user"], reply["token"]
    return app


async def move(client: WireClient, call_id: str, invite: list[str], **extra) -> Json:
    """``meeting.create`` from the call; the reply, ``ok`` or ``error``."""
    return await client.call(
        "meeting.create",
        meeting_id=new_call_id(),
        media=AV,
        invite=invite,
        from_call=call_id,
        **extra,
    )


async def test_a_call_moves_into_a_meeting_and_a_third_joins(friends, connect) -> None:
    ada0, bob0, cyd = await friends("ada", "bob", "cyd")
    ada, bob = await meeting_app(ada0, connect), await meeting_app(bob0, connect)
    call_id = await connected(ada, bob)
    settle_before = await settle(ada, bob)
    assert not [m for m in settle_before if m["type"] == "call.ended"]

    reply = await move(ada, call_id, ["cyd"], title="Grew")
    meeting = reply["meeting"]
    meeting_id = reply["meeting_id"]
    assert meeting["meeting_id"] == meeting_id and meeting["host"] == "ada"
    assert names(meeting) == ["ada", "bob"] and meeting["title"] == "Grew"
    assert [u["username"] for u in meeting["invited"]] == ["cyd"]
    # Both parties learn it from the call's end; the other party gets the whole meeting.
    for client in (ada, bob):
        ended = await client.next_event("call.ended")
        assert ended["call_id"] == call_id and ended["reason"] == "moved_to_meeting"
        assert ended["meeting_id"] == meeting_id and names(ended["meeting"]) == ["ada", "bob"]
    invited = await cyd.next_event("meeting.invited")
    assert [u["username"] for u in invited["participants"]] == ["ada", "bob"]
    # Their call's connection is the meeting's: signals between them now name the meeting.
    await bob.request("rtc.signal", meeting_id=meeting_id, to="ada", description=OFFER)
    assert (await ada.next_event("rtc.signal"))["from"] == "bob"
    # The call is over for the server (its signals are refused); nobody changed presence.
    refused = await ada.call("rtc.signal", call_id=call_id, description=OFFER)
    assert refused["code"] == "not_found"

    joined = await cyd.request("meeting.join", meeting_id=meeting_id, media=AV)
    assert names(joined["meeting"]) == ["ada", "bob", "cyd"]
    for client in (ada, bob):
        assert (await client.next_event("meeting.joined"))["participant"]["username"] == "cyd"
    await cyd.request("rtc.signal", meeting_id=meeting_id, to="bob", description=OFFER)
    assert (await bob.next_event("rtc.signal"))["from"] == "cyd"

    # Busy rules hold across the move: bob is in a meeting now.
    busy = await bob.call("call.invite", to="ada", call_id=new_call_id(), media=AV)
    assert busy["code"] == "busy"
    await ada.request("meeting.end", meeting_id=meeting_id)
    history = await bob.request("history.list")
    (call,) = [c for c in history["calls"] if c["call_id"] == call_id]
    assert call["reason"] == "moved_to_meeting" and "answered_at" in call
    (record,) = [m for m in history["meetings"] if m["meeting_id"] == meeting_id]
    assert record["participants"] == ["ada", "bob", "cyd"] and record["host"] == "ada"
    assert record["joined_at"] == record["started_at"]


async def test_the_callee_may_move_it_too_and_invite_nobody(friends, connect) -> None:
    ann0, ben0, dee = await friends("ann", "ben", "dee")
    ann, ben = await meeting_app(ann0, connect), await meeting_app(ben0, connect)
    call_id = await connected(ann, ben)
    # A stranger among the invitees: refused as a whole, and the call goes on.
    await dee.request("contacts.remove", username="ben")
    assert (await move(ben, call_id, ["dee"]))["code"] == "forbidden"
    assert not [m for m in await settle(ann, ben) if m["type"] == "call.ended"]
    reply = await move(ben, call_id, [])
    assert reply["meeting"]["host"] == "ben" and names(reply["meeting"]) == ["ben", "ann"]
    for client in (ann, ben):
        assert (await client.next_event("call.ended"))["reason"] == "moved_to_meeting"
    # ann came along uninvited; leaving and coming back works as for any participant.
    await ann.request("meeting.leave", meeting_id=reply["meeting_id"])
    left = await ben.next_event("meeting.left")
    assert left["username"] == "ann" and left["reason"] == "left"
    back = await ann.request("meeting.join", meeting_id=reply["meeting_id"], media=AV)
    assert names(back["meeting"]) == ["ben", "ann"]


async def test_refusals_leave_the_call_going(friends, connect) -> None:
    amy0, bo, cat = await friends("amy", "bo0", "cat")
    amy = await meeting_app(amy0, connect)
    # bo0 is on an app that never said it understands meetings.
    call_id = await connected(amy, bo)
    refused = await amy.call(
        "meeting.create", meeting_id=new_call_id(), media=AV, from_call=call_id
    )
    assert refused["code"] == "unsupported" and "meetings" in refused["message"]
    # Not a party, not a call, another of amy's connections: refused too.
    assert (await move(cat, call_id, []))["code"] == "forbidden"
    assert (await move(amy, new_call_id(), []))["code"] == "not_found"
    assert (await move(amy0, call_id, []))["code"] == "forbidden"
    bad = await amy.call(
        "meeting.create", meeting_id=new_call_id(), media=AV, from_call="not-a-uuid"
    )
    assert bad["code"] == "bad_message"
    # The call goes on: signals still flow, nobody was told of an end.
    await amy.request("rtc.signal", call_id=call_id, description=OFFER)
    assert (await bo.next_event("rtc.signal"))["call_id"] == call_id
    for client in (amy, bo, cat):
        assert not [
            m for m in await settle(client) if m["type"].startswith(("call.ended", "meeting"))
        ]
    await amy.request("call.hangup", call_id=call_id)


async def test_a_ringing_call_or_the_echo_test_cannot_move(friends, connect) -> None:
    eli0, fay0 = await friends("eli", "fay")
    eli, fay = await meeting_app(eli0, connect), await meeting_app(fay0, connect)
    call_id = new_call_id()
    await eli.request("call.invite", to="fay", call_id=call_id, media=AV)
    await fay.next_event("call.incoming")
    ringing = await move(eli, call_id, [])
    assert ringing["code"] == "forbidden"
    await eli.request("call.cancel", call_id=call_id)
    echo_call = new_call_id()
    await eli.request("call.invite", to="echo", call_id=echo_call, media=AV)
    await eli.next_event("call.accepted")
    assert (await move(eli, echo_call, []))["code"] == "bad_message"
    await eli.request("call.hangup", call_id=echo_call)


async def test_features_are_checked_words(connect) -> None:
    client = await connect()
    for bad in ("meetings", ["Meetings"], [1], ["x" * 33], ["a"] * 17):
        reply = await client.call(
            "register", username="gus", password="correct horse", features=bad
        )
        assert reply["code"] == "bad_message", bad
    ok = await client.call(
        "register", username="gus", password="correct horse", features=["meetings", "later.v2"]
    )
    assert ok["type"] == "ok"


async def test_an_invitation_answered_on_one_connection_stops_ringing_on_the_others(
    friends, connect
) -> None:
    hal, ivy, jo = await friends("hal", "ivy", "jo0")
    ivy_phone, jo_phone = await meeting_app(ivy, connect), await meeting_app(jo, connect)
    meeting_id = new_call_id()
    await hal.request("meeting.create", meeting_id=meeting_id, media=AV, invite=["ivy", "jo0"])
    for client in (ivy, ivy_phone, jo, jo_phone):
        assert (await client.next_event("meeting.invited"))["meeting_id"] == meeting_id
    # ivy joins on her phone: her other connection is told the invitation was answered.
    await ivy_phone.request("meeting.join", meeting_id=meeting_id, media=AV)
    gone = await ivy.next_event("meeting.ended")
    assert gone == {
        "type": "meeting.ended",
        "meeting_id": meeting_id,
        "reason": "answered_elsewhere",
    }
    # jo declines on one: the other stops ringing too; the meeting goes on.
    await jo.request("meeting.decline", meeting_id=meeting_id)
    assert (await jo_phone.next_event("meeting.ended"))["reason"] == "declined_elsewhere"
    received = await settle(ivy_phone, jo, hal)
    assert not [m for m in received if m["type"] == "meeting.ended"], received
    # A participant rejoining (not an invitation) tells no one else.
    await ivy_phone.request("meeting.join", meeting_id=meeting_id, media=AV)
    assert not [m for m in await settle(ivy) if m["type"] == "meeting.ended"]
