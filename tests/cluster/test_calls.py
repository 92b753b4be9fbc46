"""Calls across instances of one service (``--bus redis://``): real PostgreSQL, real Redis,
real ``parley-server`` processes; the users' connections sit on different instances."""

from __future__ import annotations

import asyncio

from tests.cluster.conftest import Instance, Service
from tests.wire import WireClient, make_contacts, new_call_id

AV = {"audio": True, "video": True}


async def users_on(*places: tuple[str, Instance]) -> list[WireClient]:
    """Register each user on its instance; every pair becomes accepted contacts."""
    clients = []
    for name, instance in places:
        client = await WireClient.open(instance.url)
        await client.register(name)
        clients.append(client)
    await make_contacts(clients)
    return clients


async def logged_in(instance: Instance, token: str) -> WireClient:
    """Another connection of a user, on ``instance``, logged in by token."""
    client = await WireClient.open(instance.url)
    reply = await client.request("login", token=token)
    client.user, client.token = reply["user"], token
    return client


async def test_caller_and_callee_on_two_other_instances(service: Service) -> None:
    """The coordinator holds the call; caller and callee each sit on another instance:
    invite, accept, rtc.signal both ways, hang up, and the history read on both."""
    _, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", third))
    call_id = new_call_id()
    await ada.request("call.invite", to="bob", call_id=call_id, media=AV)
    incoming = await bob.next_event("call.incoming")
    assert incoming["call_id"] == call_id and incoming["from"]["username"] == "ada"
    await ada.next_event("call.ringing")
    await bob.request("call.accept", call_id=call_id)
    await ada.next_event("call.accepted")
    offer = {"type": "offer", "sdp": "v=0 offer"}
    await ada.request("rtc.signal", call_id=call_id, description=offer)
    signal = await bob.next_event("rtc.signal")
    assert signal["from"] == "ada" and signal["description"] == offer
    answer = {"type": "answer", "sdp": "v=0 answer"}
    await bob.request("rtc.signal", call_id=call_id, description=answer)
    assert (await ada.next_event("rtc.signal"))["description"] == answer
    await ada.request("call.hangup", call_id=call_id)
    ended = await bob.next_event("call.ended")
    assert ended["reason"] == "hangup"
    for client in (ada, bob):
        history = await client.request("history.list")
        assert [c["call_id"] for c in history["calls"]] == [call_id]
        assert history["calls"][0]["reason"] == "hangup"
    await asyncio.gather(ada.close(), bob.close())
