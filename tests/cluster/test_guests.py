"""A guest from a browser link, on another instance than the user who made the link: the page
is served there, the call rings across, and the guest's socket is closed at the end; guests'
calls and meetings when the coordinator dies."""

from __future__ import annotations

import asyncio
import urllib.request

from tests.cluster.conftest import Service
from tests.cluster.test_calls import patient, users_on
from tests.wire import WireClient, new_call_id

MEDIA = {"audio": True, "video": True}


async def test_a_guest_on_another_instance_calls_the_links_owner(service: Service) -> None:
    _, second, third = await service(3)
    (alice,) = await users_on(("alice", second))
    link = (await alice.request("guest_link.create"))["link"]
    page_url = third.url.replace("ws://", "http://").removesuffix("/ws") + link["path"]

    def get() -> tuple[int, bytes]:
        with urllib.request.urlopen(page_url, timeout=10) as response:
            return response.status, response.read()

    status, body = await asyncio.to_thread(get)
    assert status == 200 and b"<html" in body.lower()
    guest = await WireClient.open(third.url)
    reply = await guest.request("guest.join", code=link["code"], display_name="Ann", media=MEDIA)
    incoming = await alice.next_event("call.incoming")
    assert incoming["from"] == reply["user"]
    await alice.request("call.accept", call_id=reply["call_id"])
    await guest.next_event("call.accepted")
    offer = {"type": "offer", "sdp": "v=0"}
    await guest.request("rtc.signal", call_id=reply["call_id"], description=offer)
    assert (await alice.next_event("rtc.signal"))["description"] == offer
    await alice.request("call.hangup", call_id=reply["call_id"])
    assert (await guest.next_event("call.ended"))["reason"] == "hangup"
    async with asyncio.timeout(10):
        await guest.ws.wait_closed()
    assert guest.ws.close_code == 1000
    await alice.close()


async def test_a_guests_call_outlives_the_coordinator(service: Service) -> None:
    """The coordinator dies while a guest on another instance talks with alice: the next one
    has the guest's login from the mirror, with what its link admits it to: the call goes on,
    anything else is still refused, and the guest's socket is closed at the end."""
    first, second, third = await service(3)
    (alice,) = await users_on(("alice", second))
    link = (await alice.request("guest_link.create"))["link"]
    guest = await WireClient.open(third.url)
    reply = await guest.request("guest.join", code=link["code"], display_name="Ann", media=MEDIA)
    call_id = reply["call_id"]
    await alice.next_event("call.incoming")
    await alice.request("call.accept", call_id=call_id)
    await guest.next_event("call.accepted")
    await asyncio.to_thread(first.kill)
    offer = {"type": "offer", "sdp": "v=0 restart"}
    await patient(guest, "rtc.signal", call_id=call_id, description=offer)
    assert (await alice.next_event("rtc.signal", timeout=10))["description"] == offer
    refused = await guest.call("contacts.list")
    assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused
    await alice.no_event("call.ended", wait=1.0)
    await alice.request("call.hangup", call_id=call_id)
    assert (await guest.next_event("call.ended"))["reason"] == "hangup"
    async with asyncio.timeout(10):
        await guest.ws.wait_closed()
    assert guest.ws.close_code == 1000
    await alice.close()


async def test_guests_of_a_meeting_when_the_coordinator_dies(service: Service) -> None:
    """Two guests in alice's meeting, one on the coordinator, one on another instance; the
    coordinator dies. The guest whose socket died with it cannot come back, so it leaves at
    once (``left``, not after the 60 s grace); the other goes on, until alice ends the meeting."""
    first, second, third = await service(3, "--reconnect-grace", "60")
    (alice,) = await users_on(("alice", second))
    meeting_id = new_call_id()
    await alice.request("meeting.create", meeting_id=meeting_id, media=MEDIA)
    link = (await alice.request("guest_link.create", meeting_id=meeting_id))["link"]
    guests = {}
    for name, instance in (("Ann", third), ("Gus", first)):
        guest = await WireClient.open(instance.url)
        reply = await guest.request("guest.join", code=link["code"], display_name=name, media=MEDIA)
        guests[name] = (guest, reply["user"]["username"])
        joined = await alice.next_event("meeting.joined")
        assert joined["participant"]["username"] == guests[name][1]
    (ann, ann_name), (_, gus_name) = guests["Ann"], guests["Gus"]
    await ann.next_event("meeting.joined")  # Gus came in after Ann
    await asyncio.to_thread(first.kill)
    for client in (alice, ann):
        left = await client.next_event("meeting.left", timeout=30)
        assert (left["username"], left["reason"]) == (gus_name, "left"), left
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}
    await patient(ann, "rtc.signal", meeting_id=meeting_id, to="alice", candidate=candidate)
    assert (await alice.next_event("rtc.signal", timeout=10))["from"] == ann_name
    await alice.request("meeting.end", meeting_id=meeting_id)
    assert (await ann.next_event("meeting.ended"))["reason"] == "ended"
    async with asyncio.timeout(10):
        await ann.ws.wait_closed()
    assert ann.ws.close_code == 1000
    await alice.close()
