"""The ``sfu.*`` relay on a real server with a real Janus, driven over the wire.

What a participant may do and what a stranger may not; that a real aiortc offer is
answered by Janus through the relay; that no message ever shows a client the room's id,
secret or anyone's token; that the room goes when the meeting ends; and that a server
whose media server is down falls back to a mesh.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from signaling.server import SignalingServer
from signaling.server.config import SfuSettings
from signaling.server.sfu.janus import JanusInstance
from signaling.server.sfu.pool import SfuAddress
from tests.conftest import ServerFactory
from tests.sfu.conftest import SfuSetup
from tests.sfu.janus_proc import free_port
from tests.wire import Json, ServerError, WireClient, befriend, make_contacts, new_call_id

AV = {"audio": True, "video": True}


def settings(sfu: SfuSetup) -> SfuSettings:
    return SfuSettings((SfuAddress.parse(sfu.janus.address),), sfu.secret, capacity=8)


async def apps(
    url: str, *names: str, features: tuple[str, ...] = ("meetings", "sfu")
) -> list[WireClient]:
    """``names`` registered as apps that say ``features``, every pair accepted contacts."""
    clients = []
    for name in names:
        client = await WireClient.open(url)
        reply = await client.register(name, features=list(features))
        assert "sfu" in reply["features"]  # the server has a media server
        clients.append(client)
    await make_contacts(clients)
    return clients


async def offer() -> tuple[RTCPeerConnection, Json]:
    """A real publisher's offer: camera and audio, send only."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, {"type": "offer", "sdp": pc.localDescription.sdp}


async def refused(client: WireClient, kind: str, **fields: object) -> str:
    """The error code ``kind`` gets."""
    try:
        await client.request(kind, **fields)
    except ServerError as exc:
        return str(exc.code)
    raise AssertionError(f"{kind} was not refused")


async def test_the_relay_answers_participants_only_and_shows_no_credential(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server: SignalingServer = await make_server(echo_bot=False, sfu=settings(sfu))
    ada, bob, zed = await apps(server.url, "ada", "bob", "zed")
    meeting_id = new_call_id()
    reply = await ada.request("meeting.create", meeting_id=meeting_id, media=AV, invite=["bob"])
    assert reply["meeting"]["topology"] == "sfu" and reply["meeting"]["capacity"] == 8
    pcs = []
    try:
        await bob.next_event("meeting.invited")
        code = await refused(zed, "sfu.publish", meeting_id=meeting_id, description={})
        assert code == "bad_message"  # an empty description is no offer
        pc, description = await offer()
        pcs.append(pc)
        # Not a participant (only invited, or a stranger): forbidden.
        for outsider in (bob, zed):
            code = await refused(
                outsider, "sfu.publish", meeting_id=meeting_id, description=description
            )
            assert code == "forbidden"
            code = await refused(outsider, "sfu.subscribe", meeting_id=meeting_id, username="ada")
            assert code == "forbidden"
        await bob.request("meeting.join", meeting_id=meeting_id, media=AV)
        assert await refused(bob, "sfu.subscribe", meeting_id=meeting_id, username="ada") == (
            "not_found"  # ada publishes nothing yet
        )
        assert await refused(bob, "sfu.subscribe", meeting_id=meeting_id, username="bob") == (
            "bad_message"
        )
        assert await refused(bob, "sfu.subscribe", meeting_id=meeting_id, username="zed") == (
            "forbidden"
        )
        answer = await ada.request("sfu.publish", meeting_id=meeting_id, description=description)
        assert answer["description"]["type"] == "answer" and answer["publishers"] == []
        await pc.setRemoteDescription(RTCSessionDescription(**answer["description"]))

        # Once ada's media reached Janus, bob is told and subscribes: Janus offers, bob answers.
        published = await bob.next_event("sfu.published")
        assert published["username"] == "ada" and published["meeting_id"] == meeting_id
        got = await bob.request("sfu.subscribe", meeting_id=meeting_id, username="ada")
        assert got["publication"] == published["publication"]
        assert got["description"]["type"] == "offer"
        viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(viewer)
        await viewer.setRemoteDescription(RTCSessionDescription(**got["description"]))
        await viewer.setLocalDescription(await viewer.createAnswer())
        local = {"type": "answer", "sdp": viewer.localDescription.sdp}
        await bob.request("sfu.answer", meeting_id=meeting_id, username="ada", description=local)
        await bob.request("sfu.video", meeting_id=meeting_id, username="ada", on=False)
        await bob.request("sfu.video", meeting_id=meeting_id, username="ada", on=True)
        end = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
        await bob.request("sfu.trickle", meeting_id=meeting_id, username="ada", candidate=end)
        assert await refused(ada, "sfu.video", meeting_id=meeting_id, username="bob", on=True) == (
            "not_found"  # ada subscribes to nobody
        )

        assert server.hub is not None and server.hub.meetings.sfu is not None
        room = server.hub.meetings.sfu.rooms[meeting_id]
        secrets_seen = [room.room_id, room.secret, *room.tokens.values()]
        assert all(secrets_seen)
        await ada.request("meeting.end", meeting_id=meeting_id)
        await bob.next_event("meeting.ended")
        received = json.dumps([*ada.drain(), *bob.drain(), *zed.drain(), reply, answer])
        for secret in secrets_seen:
            assert secret not in received
        # The room is gone from Janus.
        assert await _room_exists(sfu, room.room_id) is False
    finally:
        for pc in pcs:
            await pc.close()


async def _room_exists(sfu: SfuSetup, room_id: str) -> bool:
    address = SfuAddress.parse(sfu.janus.address)
    janus = JanusInstance(address.url, sfu.secret, address.admin_port)
    await janus.open()
    try:
        session = await janus.session()
        handle = await session.attach()
        data, _ = await handle.message({"request": "exists", "room": room_id})
        await session.destroy()
        return bool(data.get("exists"))
    finally:
        await janus.close()


async def test_with_the_media_server_down_meetings_are_a_mesh(
    make_server: ServerFactory, sfu: SfuSetup, tmp_path: Path
) -> None:
    down = SfuAddress(f"ws://127.0.0.1:{free_port()}", free_port())
    server = await make_server(echo_bot=False, sfu=SfuSettings((down,), sfu.secret))
    (ada,) = await befriend(server.url, "ada")
    reply = await ada.request("meeting.create", meeting_id=new_call_id(), media=AV)
    assert reply["meeting"]["topology"] == "mesh" and reply["meeting"]["capacity"] == 4
    code = await refused(
        ada, "sfu.subscribe", meeting_id=reply["meeting"]["meeting_id"], username="bob"
    )
    assert code == "bad_message"  # a mesh meeting has no media server


async def test_an_app_that_cannot_use_a_media_server_gets_a_mesh_or_is_told_why(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server = await make_server(echo_bot=False, sfu=settings(sfu))
    (ada,) = await apps(server.url, "ada")
    (old,) = await apps(server.url, "old", features=("meetings",))
    await ada.request("contacts.request", username="old")
    await old.request("contacts.accept", username="ada")
    # The old app's own meeting is a mesh; it cannot join one through the media server.
    mesh = await old.request("meeting.create", meeting_id=new_call_id(), media=AV)
    assert mesh["meeting"]["topology"] == "mesh"
    await old.request("meeting.leave", meeting_id=mesh["meeting"]["meeting_id"])
    meeting_id = new_call_id()
    reply = await ada.request("meeting.create", meeting_id=meeting_id, media=AV, invite=["old"])
    assert reply["meeting"]["topology"] == "sfu"
    assert await refused(old, "meeting.join", meeting_id=meeting_id, media=AV) == "unsupported"


async def _tokens(sfu: SfuSetup) -> list[str]:
    """The tokens Janus accepts now (admin API ``list_tokens``)."""
    address = SfuAddress.parse(sfu.janus.address)
    janus = JanusInstance(address.url, sfu.secret, address.admin_port)
    await janus.open()
    try:
        assert janus._admin is not None
        reply = await janus._admin.request({"janus": "list_tokens", "admin_secret": sfu.secret})
        return [t["token"] for t in reply["data"]["tokens"] if t["token"] != janus.token]
    finally:
        await janus.close()


async def test_the_server_token_is_accepted_while_it_runs_and_withdrawn_when_it_stops(
    make_server: ServerFactory, sfu: SfuSetup
) -> None:
    server = await make_server(echo_bot=False, sfu=settings(sfu))
    assert server.hub is not None and server.hub.meetings.sfu is not None
    (member,) = server.hub.meetings.sfu.pool.members
    token = member.janus.token
    assert token in await _tokens(sfu)
    await server.stop()
    assert token not in await _tokens(sfu)
