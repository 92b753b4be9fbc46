"""Rooms left in Janus by a parley-server that died (``signaling/server/sfu/sweep.py``).

A server SIGKILLed while holding a meeting leaves its room in Janus; the next server of the
same deployment (the same database) destroys it when it connects, and touches neither the
rooms of another deployment sharing that Janus nor rooms without Parley's mark. A server
that connects again keeps the rooms of its meetings in progress, and destroys the room a
meeting left behind when the connection to its Janus dropped while Janus lived on.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signaling.server import SignalingServer
from signaling.server.config import SfuSettings
from signaling.server.sfu.janus import JanusInstance
from signaling.server.sfu.pool import SfuAddress
from signaling.server.sfu.sweep import room_description, room_secret
from tests.cli.procs import ServerProcess
from tests.conftest import ServerFactory
from tests.sfu.conftest import SfuSetup
from tests.tcp_proxy import TcpProxy
from tests.waiting import until, until_async
from tests.wire import WireClient, new_call_id

AV = {"audio": True, "video": True}


@pytest.fixture
async def janus(sfu: SfuSetup) -> AsyncIterator[JanusInstance]:
    """The test's own connection to the session's Janus (as another server would hold)."""
    address = SfuAddress.parse(sfu.janus.address)
    instance = JanusInstance(address.url, sfu.secret, address.admin_port)
    await instance.open()
    yield instance
    await instance.close()


async def rooms(janus: JanusInstance, secret: str) -> dict[str, str]:
    """Every room on ``janus``: id → description."""
    session = await janus.session()
    try:
        handle = await session.attach()
        data, _ = await handle.message({"request": "list", "admin_key": secret})
    finally:
        await session.destroy()
    return {str(r["room"]): str(r.get("description", "")) for r in data.get("list") or []}


async def make_room(janus: JanusInstance, secret: str, description: str) -> str:
    """A private room made directly in Janus, with the secret Parley would give it."""
    room_id = secrets.token_hex(12)
    session = await janus.session()
    try:
        handle = await session.attach()
        await handle.message(
            {
                "request": "create",
                "room": room_id,
                "description": description,
                "admin_key": secret,
                "secret": room_secret(secret, room_id),
                "is_private": True,
            }
        )
    finally:
        await session.destroy()
    return room_id


async def destroy_rooms(janus: JanusInstance, secret: str, room_ids: list[str]) -> None:
    session = await janus.session()
    try:
        handle = await session.attach()
        for room_id in room_ids:
            await handle.message(
                {"request": "destroy", "room": room_id, "secret": room_secret(secret, room_id)}
            )
    finally:
        await session.destroy()


async def host_meeting(url: str, name: str) -> str:
    """``name`` registers as an app that can use the media server and creates a meeting."""
    client = await WireClient.open(url)
    try:
        await client.register(name, features=["meetings", "sfu"])
        meeting_id = new_call_id()
        reply = await client.request("meeting.create", meeting_id=meeting_id, media=AV)
        assert reply["meeting"]["topology"] == "sfu", reply
    finally:
        await client.close()  # the meeting stays for the grace period
    return meeting_id


async def test_a_server_killed_holding_a_meeting_leaves_a_room_the_next_one_destroys(
    tmp_path: Path, sfu: SfuSetup, janus: JanusInstance
) -> None:
    args = ("--no-echo", "--port", "0", "--db", str(tmp_path / "parley.db"), *sfu.server_args)
    other = await make_room(janus, sfu.secret, room_description("another-service", "m"))
    plain = await make_room(janus, sfu.secret, "someone else's room")
    first = ServerProcess(*args, "--reconnect-grace", "120")
    try:
        first.wait_ready()
        meeting_id = await host_meeting(first.url, "sw-ada")

        async def made() -> bool:
            return meeting_id in " ".join((await rooms(janus, sfu.secret)).values())

        await until_async(made, 20, "the meeting's room in Janus")
        (room_id,) = [r for r, d in (await rooms(janus, sfu.secret)).items() if meeting_id in d]
        first.send_signal(signal.SIGKILL)
        first.wait_exit(10)
        await asyncio.sleep(1)
        assert room_id in await rooms(janus, sfu.secret)  # nobody destroyed it

        second = ServerProcess(*args)
        try:
            second.wait_ready()

            async def gone() -> bool:
                return room_id not in await rooms(janus, sfu.secret)

            await until_async(gone, 20, "the dead server's room destroyed")
            second.wait_log(r"event=sfu\.swept .*rooms=1", 0, 10)
            left = await rooms(janus, sfu.secret)
            assert other in left and plain in left, left  # not this deployment's: kept
        finally:
            assert second.stop() == 0, second.describe()
        assert "Traceback" not in second.stderr, second.stderr[-3000:]
    finally:
        if first.running:
            first.kill()
        await destroy_rooms(janus, sfu.secret, [other, plain])


async def test_connecting_again_keeps_the_rooms_of_meetings_in_progress(
    make_server: ServerFactory, sfu: SfuSetup, janus: JanusInstance
) -> None:
    settings = SfuSettings((SfuAddress.parse(sfu.janus.address),), sfu.secret, capacity=8)
    server: SignalingServer = await make_server(echo_bot=False, sfu=settings)
    assert server.hub is not None and server.hub.meetings.sfu is not None
    relay = server.hub.meetings.sfu
    meeting_id = await host_meeting(server.url, "sk-ada")
    room = relay.rooms[meeting_id]
    await asyncio.wait_for(asyncio.shield(room.ready), 20)
    # A room of this deployment no meeting holds (a crashed run's, or one a meeting left
    # when it moved to another Janus), and another deployment's.
    orphan = await make_room(janus, sfu.secret, room_description(relay.deployment, new_call_id()))
    other = await make_room(janus, sfu.secret, room_description("another-service", "m"))
    try:
        await relay.instance_up(relay.pool.members[0])  # as when it connects again
        left = await rooms(janus, sfu.secret)
        assert room.room_id in left and other in left and orphan not in left, left
    finally:
        await destroy_rooms(janus, sfu.secret, [other])


async def test_a_room_left_when_the_connection_to_janus_dropped_is_destroyed_on_reconnecting(
    make_server: ServerFactory, sfu: SfuSetup, janus: JanusInstance
) -> None:
    """The server reaches Janus's API through a proxy the test cuts (Janus itself lives on):
    the meeting gets a new room when the connection is back, and the old one goes."""
    proxy = TcpProxy(sfu.janus.ws_port)
    await proxy.start()
    try:
        address = SfuAddress(f"ws://127.0.0.1:{proxy.port}", sfu.janus.admin_port)
        server = await make_server(echo_bot=False, sfu=SfuSettings((address,), sfu.secret))
        assert server.hub is not None and server.hub.meetings.sfu is not None
        relay = server.hub.meetings.sfu
        meeting_id = await host_meeting(server.url, "sr-ada")
        room = relay.rooms[meeting_id]
        await asyncio.wait_for(asyncio.shield(room.ready), 20)
        old = room.room_id
        assert old in await rooms(janus, sfu.secret)
        proxy.cut()  # the API connection drops: the instance is down, the meeting moves

        await until(
            lambda: bool(room.room_id) and room.room_id != old,
            30,
            "the meeting in a new room once the connection is back",
        )
        left = await rooms(janus, sfu.secret)
        assert room.room_id in left and old not in left, left
    finally:
        await proxy.stop()
