"""v1.1: a restart's ``rtc.signal`` from another connection of a party takes the call there.

A laptop whose address changed reconnects long before the server notices its old socket is
dead; the call's events must follow the party to the connection that now speaks for it.
"""

from __future__ import annotations

from tests.server.test_calls import OFFER, connected
from tests.wire import WireClient

ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n"}


async def test_a_restart_from_a_new_connection_rebinds_the_call(server, friends) -> None:
    alice, bob = await friends("alice", "bob")
    call_id = await connected(alice, bob)
    # alice's laptop moved: a second connection of hers, the first one still open.
    moved = await WireClient.open(server.url)
    try:
        await moved.login("alice")
        # A plain signal from the other connection relays but does not move the call.
        await moved.request("rtc.signal", call_id=call_id, description=OFFER)
        assert (await bob.next_event("rtc.signal"))["description"] == OFFER
        await bob.request("rtc.signal", call_id=call_id, description=ANSWER)
        assert (await alice.next_event("rtc.signal"))["description"] == ANSWER
        await moved.no_event("rtc.signal")
        # A restart does: bob's answer and the call's end reach the new connection only.
        await moved.request("rtc.signal", call_id=call_id, description=OFFER, restart="caller-1")
        relayed = await bob.next_event("rtc.signal")
        assert relayed["restart"] == "caller-1" and relayed["description"] == OFFER
        await bob.request("rtc.signal", call_id=call_id, description=ANSWER, restart="caller-1")
        answer = await moved.next_event("rtc.signal")
        assert answer["restart"] == "caller-1" and answer["description"] == ANSWER
        await alice.no_event("rtc.signal")
        await bob.request("call.hangup", call_id=call_id)
        assert (await moved.next_event("call.ended"))["reason"] == "hangup"
        await alice.no_event("call.ended")
    finally:
        await moved.close()
