"""A guest from a browser link, on another instance than the user who made the link: the page
is served there, the call rings across, and the guest's socket is closed at the end."""

from __future__ import annotations

import asyncio
import urllib.request

from tests.cluster.conftest import Service
from tests.cluster.test_calls import users_on
from tests.wire import WireClient

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
