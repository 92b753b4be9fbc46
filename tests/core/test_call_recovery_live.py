"""A real call whose path dies recovers by itself, on loopback (the lab's cases: tests/net/).

The path is killed for real: iptables drops every UDP packet to the ports the two
peer connections' ICE agents gathered (so nothing else on this machine is touched),
as when a laptop's address changes: the old path never comes back, and a fresh
peer connection (the restart's candidate link) is negotiated inside the same call,
on new ports. Needs root and iptables (CI has both); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiortc import RTCPeerConnection

from gui.core.call_machine import CallState
from gui.core.call_session import CallSession
from tests.core.test_call_session import answer_next_call, friends, media, until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("iptables") is None,
        reason="dropping a call's packets needs root and iptables",
    ),
]


def ice_ports(pc: RTCPeerConnection) -> set[int]:
    """The UDP ports the connection's ICE agents gathered on."""
    ports = set()
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is not None:
            ports.update(c.port for c in dtls.transport.iceGatherer.getLocalCandidates())
    return ports


@contextmanager
def dropped(ports: set[int]) -> Iterator[None]:
    """Drop every UDP packet to ``ports`` while inside (rules tagged, always removed)."""
    tag = f"parley-test-{os.getpid()}"
    rules = [
        ["INPUT", "-p", "udp", "--dport", str(p), "-m", "comment", "--comment", tag, "-j", "DROP"]
        for p in sorted(ports)
    ]
    added = []
    try:
        for rule in rules:
            subprocess.run(["iptables", "-I", *rule], check=True, timeout=10)
            added.append(rule)
        yield
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", *rule], check=False, timeout=10)


async def test_a_call_whose_path_dies_moves_to_a_new_connection_by_itself(server) -> None:
    alice, bob = await friends(server)
    answering = asyncio.create_task(answer_next_call(bob, media(880)))
    caller = CallSession.outgoing(alice, "bob", media(440))
    callee = await answering
    states: dict[str, list[CallState]] = {"caller": [], "callee": []}
    caller.on("state", lambda state, reason: states["caller"].append(state))
    callee.on("state", lambda state, reason: states["callee"].append(state))
    try:
        await until(lambda: caller.state is CallState.CONNECTED, 20)
        await until(lambda: all(_frames(s) > 20 for s in (caller, callee)), 20)
        ports = ice_ports(caller.pc) | ice_ports(callee.pc)
        assert ports, "no ICE port to drop"
        old = (caller.pc, callee.pc)
        with dropped(ports):
            cut_at = time.monotonic()
            # Each end notices the silence, reconnects, and a restart connects on new ports.
            await until(
                lambda: (
                    all(s.machine.recoveries >= 1 for s in (caller, callee))
                    and caller.state is CallState.CONNECTED
                    and callee.state is CallState.CONNECTED
                ),
                30,
            )
            assert (caller.pc, callee.pc) != old
            # Media flows on the new connection, both ways.
            await until(lambda: all(_frames(s) > 10 for s in (caller, callee)), 15)
            took = time.monotonic() - cut_at
        print(f"recovered in {took:.1f} s")
        for side in ("caller", "callee"):
            assert CallState.RECONNECTING in states[side]
            assert CallState.ENDED not in states[side]
        # Chat and the verification words work on the new link too.
        await until(lambda: caller.channel.is_open and callee.channel.is_open, 10)
        assert caller.sas == callee.sas is not None
        caller.hang_up()
        await asyncio.wait_for(callee.wait_ended(), 15)
        assert callee.machine.reason == "hangup"
        # The call record is one call, ended by the hang-up: the recovery broke nothing.
        history = await bob.request("history.list")
        assert [(c["call_id"], c["reason"]) for c in history["calls"]] == [
            (caller.call_id, "hangup")
        ]
    finally:
        caller.hang_up()
        callee.hang_up()
        await asyncio.wait_for(caller.wait_ended(), 15)
        await asyncio.wait_for(callee.wait_ended(), 15)
        await alice.close()
        await bob.close()


def _frames(session: CallSession) -> int:
    video = session.receivers.get("camera")
    return video.frames if video is not None else 0
