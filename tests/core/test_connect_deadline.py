"""An answered call that never connects ends as ``failed`` by itself, on either side.

Each side has its own deadline (``CallOptions.connect_timeout_s``, 30 s in the
app, 2 s here), counted from the answer, with ICE checks still running counted
in. The other end is hand-driven over a real server: a callee that accepts and
never answers, and a caller whose only candidate never replies to a check.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection

from gui.core.call_machine import NO_CONNECTION_DETAIL, CallState
from gui.core.call_session import CallOptions, CallSession
from gui.core.signaling_client import SignalingClient
from signaling.server import SignalingServer
from tests.core.test_call_session import friends, media
from tests.core.test_interop import split_candidates
from tests.waiting import until
from tests.wire import new_call_id

Json = dict[str, Any]
DEADLINE = CallOptions(connect_timeout_s=2.0)
#: The deadline plus what a loaded machine may add; without it the calls never ended.
ENDS_WITHIN_S = 10.0


def events(client: SignalingClient, *kinds: str) -> asyncio.Queue[Json]:
    """The client's server events of these types, from now on."""
    queue: asyncio.Queue[Json] = asyncio.Queue()

    def take(message: Json) -> None:
        if message["type"] in kinds:
            queue.put_nowait(message)

    client.on_event(take)
    return queue


async def ended_in_time(session: CallSession, since: float) -> None:
    """The session failed for want of a connection, after the deadline and not long after."""
    await asyncio.wait_for(session.wait_ended(), ENDS_WITHIN_S)
    assert time.monotonic() - since >= DEADLINE.connect_timeout_s
    assert session.machine.reason == "failed"
    assert session.failure_detail == NO_CONNECTION_DETAIL


async def test_a_caller_whose_callee_never_answers_the_offer(server: SignalingServer) -> None:
    alice, bob = await friends(server)
    ended, incoming = events(bob, "call.ended"), events(bob, "call.incoming")
    caller = CallSession.outgoing(alice, "bob", media(440), DEADLINE)
    call = await asyncio.wait_for(incoming.get(), 10)
    await bob.request("call.accept", call_id=call["call_id"])
    await until(lambda: caller.state is CallState.CONNECTING, what="connecting")
    await ended_in_time(caller, time.monotonic())
    assert (await asyncio.wait_for(ended.get(), 10))["reason"] == "failed"
    await alice.close()
    await bob.close()


async def test_a_callee_whose_checks_get_no_reply(server: SignalingServer) -> None:
    """The caller's only candidate is a UDP socket on this host that reads and never answers."""
    alice, bob = await friends(server)
    accepted = events(alice, "call.accepted", "call.ended")
    incoming = events(bob, "call.incoming")
    call_id = new_call_id()
    await alice.request(
        "call.invite", to="bob", call_id=call_id, media={"audio": True, "video": True}
    )
    event = await asyncio.wait_for(incoming.get(), 10)
    callee = CallSession.incoming(bob, event, media(440), DEADLINE)
    ice_states: list[str] = []
    callee.pc.on(
        "iceconnectionstatechange", lambda: ice_states.append(callee.pc.iceConnectionState)
    )
    callee.accept()
    assert (await asyncio.wait_for(accepted.get(), 10))["type"] == "call.accepted"
    answered = time.monotonic()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio")
    pc.addTransceiver("video")
    await pc.setLocalDescription(await pc.createOffer())
    sdp, candidates = split_candidates(pc.localDescription.sdp)
    host = candidates[0]["candidate"].split()[4]
    silent = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((host, 0))
    silent.setblocking(False)  # recv() below must not wait
    port = silent.getsockname()[1]
    await alice.request("rtc.signal", call_id=call_id, description={"type": "offer", "sdp": sdp})
    line = f"candidate:1 1 udp 2130706431 {host} {port} typ host"
    await alice.request(
        "rtc.signal", call_id=call_id, candidate={"candidate": line, "sdpMLineIndex": 0}
    )
    await ended_in_time(callee, answered)
    assert "checking" in ice_states and "failed" not in ice_states, ice_states
    assert silent.recv(2048), "no connectivity check reached the silent candidate"
    assert (await asyncio.wait_for(accepted.get(), 10))["reason"] == "failed"
    silent.close()
    await pc.close()
    await alice.close()
    await bob.close()
