"""Which way a call that becomes a meeting goes, on a real server with a real Janus: through
the media server (its capacity, a room made for it) when both parties' apps said ``sfu``; a
mesh when one did not (its app could not take part otherwise)."""

from __future__ import annotations

import asyncio

from signaling.server import SignalingServer
from tests.conftest import ServerFactory
from tests.server.test_calls import connected
from tests.sfu.conftest import SfuSetup
from tests.sfu.test_relay import AV, apps, settings
from tests.wire import WireClient, make_contacts, new_call_id


async def move(client: WireClient, call_id: str) -> dict:
    """``meeting.create`` from the call; the Meeting of the reply."""
    reply = await client.request(
        "meeting.create", meeting_id=new_call_id(), media=AV, from_call=call_id
    )
    return dict(reply["meeting"])


async def test_a_call_between_two_apps_that_can_moves_through_the_media_server(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server: SignalingServer = await make_server(echo_bot=False, sfu=settings(sfu))
    ada, bob = await apps(server.url, "ada", "bob")
    meeting = await move(ada, await connected(ada, bob))
    assert meeting["topology"] == "sfu" and meeting["capacity"] == 8, meeting
    ended = await bob.next_event("call.ended")
    assert ended["reason"] == "moved_to_meeting" and ended["meeting"]["topology"] == "sfu"
    assert server.hub is not None and server.hub.meetings.sfu is not None
    room = server.hub.meetings.sfu.rooms[meeting["meeting_id"]]
    await asyncio.wait_for(asyncio.shield(room.ready), 20)  # its room is made in Janus
    assert room.room_id


async def test_who_joins_after_the_move_is_told_the_chat_before_went_end_to_end(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    """The call's chat went over its data channel, never through the server: the Meeting says
    until when (``end_to_end_until``), so that whoever joins later knows why they miss it. A
    meeting made through the media server from the start says nothing of the kind."""
    server: SignalingServer = await make_server(echo_bot=False, sfu=settings(sfu))
    ada, bob, cyd = await apps(server.url, "ada", "bob", "cyd")
    reply = await ada.request(
        "meeting.create",
        meeting_id=new_call_id(),
        media=AV,
        from_call=await connected(ada, bob),
        invite=["cyd"],
    )
    moved = reply["meeting"]
    assert moved["topology"] == "sfu" and moved["end_to_end_until"] >= moved["started_at"]
    ended = await bob.next_event("call.ended")
    assert ended["meeting"]["end_to_end_until"] == moved["end_to_end_until"]
    await cyd.next_event("meeting.invited")
    joined = await cyd.request("meeting.join", meeting_id=moved["meeting_id"], media=AV)
    assert joined["meeting"]["end_to_end_until"] == moved["end_to_end_until"]

    await cyd.request("meeting.leave", meeting_id=moved["meeting_id"])
    fresh = await cyd.request("meeting.create", meeting_id=new_call_id(), media=AV, invite=[])
    assert fresh["meeting"]["topology"] == "sfu" and "end_to_end_until" not in fresh["meeting"]


async def test_a_call_with_an_app_that_cannot_use_the_media_server_stays_a_mesh(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server: SignalingServer = await make_server(echo_bot=False, sfu=settings(sfu))
    (ada,) = await apps(server.url, "ada")
    (bob,) = await apps(server.url, "bob", features=("meetings",))
    await make_contacts([ada, bob])
    meeting = await move(ada, await connected(ada, bob))
    assert meeting["topology"] == "mesh" and meeting["capacity"] == 4, meeting
    assert "end_to_end_until" not in meeting  # still end to end: its chat goes over the links
    assert server.hub is not None and server.hub.meetings.sfu is not None
    assert meeting["meeting_id"] not in server.hub.meetings.sfu.rooms
