"""Hostile peers against a real :class:`CallSession`, while a well-behaved call goes on beside them.

Mallory, a raw protocol client, calls the victim (Parley's engine on a real
server and real peer connections) and sends a mutated offer and mutated
trickled candidates; or the victim calls Mallory and gets a mutated answer.
Every call must end cleanly within seconds: as ``failed`` with the "cannot
use" detail exactly when the checks refuse something the server delivered,
else by Mallory's hang-up. Nothing may raise out of the engine (no exception
reaches the loop, no error is logged), the victim's peer connections must not
pile up, and the good call must still carry video at the end.

As in ``tests/server/test_fuzz.py``, the server and the good call run on the
test's loop and hypothesis runs in a worker thread with a loop of its own, where
the victim's sessions and Mallory live; plain ``@given`` functions drive it with
``run_until_complete``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import resource
from collections.abc import Coroutine
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from gui.core.call_machine import UNUSABLE_DETAIL, CallState
from gui.core.call_session import CallSession, LocalMedia
from gui.core.remote_sdp import check_candidate, check_description, mids_in_sdp
from gui.core.signaling_client import SignalingClient
from signaling.server import SignalingServer
from tests.core.test_call_session import answer_next_call, friends, media
from tests.fuzz.sdp_mutations import mutated_candidate, mutated_sdp, parley_pair
from tests.waiting import until
from tests.wire import WireClient, new_call_id

pytestmark = [
    pytest.mark.slow,
    # The good call's aiortc draws from ``random`` on the main thread while hypothesis
    # generates in the worker; hypothesis takes that for the strategies' doing.
    # (HypothesisDeprecationWarning is a FutureWarning, not a DeprecationWarning.)
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

Json = dict[str, Any]
#: From Mallory's hang-up (or the victim's refusal) to the victim's session having closed.
ENDS_WITHIN_S = 10.0
#: Peer connections the process may hold after the fuzzing: the good call's two and the two
#: that made the base offer and answer. Each finished hostile call must have let go of its own.
PEER_CONNECTIONS_LEFT = 4
#: What the process's peak resident size may grow by over the fuzzing (a leak of one peer
#: connection per call would pass it within a few dozen calls).
RSS_GROWTH_BYTES = 300 * 1024 * 1024
#: The server's frame limit (docs/protocol.md, Transport).
MAX_FRAME_BYTES = 64 * 1024
FUZZ = settings(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Problems(logging.Handler):
    """Errors logged anywhere, and exceptions that reached the fuzzing loop."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()}")

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.seen.append(f"loop: {context.get('message')} {context.get('exception')!r}")


class Hostile:
    """Mallory and the victim, on a private loop in the fuzzing thread."""

    def __init__(self, url: str, problems: Problems) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(problems.loop_exception)
        self.mallory: WireClient
        self.victim: SignalingClient
        self.incoming: asyncio.Queue[Json]
        self.base: list[RTCPeerConnection] = []
        self.offer = self.answer = ""
        self.endings: dict[str, int] = {}
        #: Peer connections alive once the fuzzing is over (the good call's included).
        self.peer_connections = 0

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def open(self) -> None:
        self.mallory = await WireClient.open(self.url)
        await self.mallory.register("mallory")
        self.victim = SignalingClient(self.url)
        await self.victim.connect()
        await self.victim.register("victim", "correct horse")
        await self.mallory.request("contacts.request", username="victim")
        await self.victim.request("contacts.accept", username="mallory")
        self.incoming = asyncio.Queue()
        self.victim.on_event(
            lambda m: self.incoming.put_nowait(m) if m["type"] == "call.incoming" else None
        )
        # The base offer and answer come from connections kept open, so that a victim that
        # accepts a harmless mutation checks candidates that exist (and get no ICMP errors).
        caller, callee = await parley_pair()
        self.base = [caller, callee]
        self.offer, self.answer = caller.localDescription.sdp, callee.localDescription.sdp

    async def signal(self, call_id: str, **fields: Any) -> bool:
        """Send an ``rtc.signal``; whether the server took it (it refuses oversized ones).

        A frame over 64 KiB is not sent at all: the server would close Mallory's connection,
        which is the server's business (``tests/server``), not the victim's.
        """
        if len(json.dumps(fields).encode()) > MAX_FRAME_BYTES - 200:
            return False
        reply = await self.mallory.call("rtc.signal", call_id=call_id, **fields)
        return bool(reply["type"] == "ok")

    async def hostile_caller(self, offer: str, candidates: list[Json]) -> None:
        """Mallory calls: candidates first (held by the victim), then the offer."""
        call_id = new_call_id()
        await self.mallory.request(
            "call.invite", to="victim", call_id=call_id, media={"audio": True, "video": True}
        )
        session = CallSession.incoming(
            self.victim, await asyncio.wait_for(self.incoming.get(), 10), LocalMedia()
        )
        session.accept()
        await self.mallory.next_event("call.accepted", timeout=10)
        delivered = [c for c in candidates if await self.signal(call_id, candidate=c)]
        offered = await self.signal(call_id, description={"type": "offer", "sdp": offer})
        refused = offered and (
            check_description({"type": "offer", "sdp": offer}, "offer") is not None
            or any(check_candidate(c, mids_in_sdp(offer)) for c in delivered)
        )
        if offered:  # the victim answers once it took everything, or ends the call
            await self.until_answered_or_ended(session)
        await self.finish(session, call_id, refused)

    async def hostile_callee(self, answer: str) -> None:
        """The victim calls; Mallory accepts and answers with ``answer``."""
        session = CallSession.outgoing(self.victim, "mallory", LocalMedia())
        call_id = (await self.mallory.next_event("call.incoming", timeout=10))["call_id"]
        await self.mallory.request("call.accept", call_id=call_id)
        offer = (await self.mallory.next_event("rtc.signal", timeout=10))["description"]["sdp"]
        answered = await self.signal(call_id, description={"type": "answer", "sdp": answer})
        description = {"type": "answer", "sdp": answer}
        refused = answered and check_description(description, "answer", offer) is not None
        if answered:
            await until(
                lambda: session.machine.ended or session.pc.signalingState == "stable",
                ENDS_WITHIN_S,
                "the answer applied or refused",
            )
        await self.finish(session, call_id, refused)

    async def until_answered_or_ended(self, session: CallSession) -> None:
        answer = asyncio.ensure_future(self.mallory.next_event("rtc.signal", timeout=30))
        ended = asyncio.ensure_future(session.wait_ended())
        done, _ = await asyncio.wait(
            {answer, ended}, timeout=ENDS_WITHIN_S, return_when="FIRST_COMPLETED"
        )
        for future in (answer, ended):
            future.cancel()
        assert done, "the victim neither answered nor ended the call"

    async def finish(self, session: CallSession, call_id: str, refused: bool) -> None:
        """Mallory hangs up (if the call still runs); check how the victim's call ended."""
        if not session.machine.ended:
            await self.mallory.call("call.hangup", call_id=call_id)
        await asyncio.wait_for(session.wait_ended(), ENDS_WITHIN_S)
        self.mallory.drain()
        machine = session.machine
        note(f"ended {machine.reason}: {machine.problem}")
        event(f"ended {machine.reason}")
        self.endings[str(machine.reason)] = self.endings.get(str(machine.reason), 0) + 1
        if refused:
            assert machine.reason == "failed" and session.failure_detail == UNUSABLE_DETAIL
            assert isinstance(machine.problem, str) and machine.problem
        else:
            assert machine.reason == "hangup", (machine.reason, machine.problem)
        assert session.pc.connectionState == "closed"

    async def close(self) -> None:
        for pc in self.base:
            await pc.close()
        for name in ("mallory", "victim"):
            client = getattr(self, name, None)
            if client is not None:
                await client.close()


async def cancel_all() -> None:
    """Cancel every other task of the running loop and wait for them."""
    leftover = asyncio.all_tasks() - {asyncio.current_task()}
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)


def fuzz(url: str, problems: Problems) -> Hostile:
    """Every hostile call, in the worker thread; returns the tallies."""
    hostile = Hostile(url, problems)
    try:
        hostile.run(hostile.open())
        # Pristine parts half the time, so that calls that go on (and are hung up) are common.
        offers = st.sampled_from([hostile.offer, None]).flatmap(
            lambda offer: st.just(offer) if offer else mutated_sdp(hostile.offer)
        )
        line = next(
            line[2:] for line in hostile.offer.splitlines() if line.startswith("a=candidate:")
        )
        good = {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}
        candidates = st.lists(
            st.sampled_from([good, None]).flatmap(
                lambda c: st.just(c) if c else mutated_candidate(line)
            ),
            max_size=3,
        )

        @settings(FUZZ, max_examples=30)
        @given(offers, candidates)
        def calls_from_mallory(offer: str, candidates: list[Json]) -> None:
            hostile.run(hostile.hostile_caller(offer, candidates))

        @settings(FUZZ, max_examples=20)
        @given(mutated_sdp(hostile.answer))
        def calls_to_mallory(answer: str) -> None:
            hostile.run(hostile.hostile_callee(answer))

        calls_from_mallory()
        calls_to_mallory()
        hostile.run(asyncio.sleep(0.5))  # aiortc's own tasks of the last call wind down
        gc.collect()
        hostile.peer_connections = sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects())
        return hostile
    finally:
        hostile.run(hostile.close())
        # aiortc leaves a connect task waiting on a closed connection's ICE now and then.
        hostile.run(cancel_all())
        hostile.run(hostile.loop.shutdown_asyncgens())
        hostile.loop.close()


async def test_hostile_calls_end_cleanly_beside_a_good_one(server: SignalingServer) -> None:
    alice, bob = await friends(server)
    answering = asyncio.create_task(answer_next_call(bob, media(660)))
    good_caller = CallSession.outgoing(alice, "bob", media(440))
    good_callee = await answering
    await until(lambda: good_callee.state is CallState.CONNECTED, 15, "the good call connected")
    await until(lambda: "camera" in good_callee.receivers, 15, "the good call's video")

    problems = Problems()
    logging.getLogger().addHandler(problems)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        hostile = await asyncio.to_thread(fuzz, server.url, problems)
    finally:
        logging.getLogger().removeHandler(problems)
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before

    assert problems.seen == []
    assert hostile.endings.get("failed", 0) >= 10 and hostile.endings.get("hangup", 0) >= 5
    assert hostile.peer_connections <= PEER_CONNECTIONS_LEFT, hostile.peer_connections
    assert peak_growth < RSS_GROWTH_BYTES, peak_growth

    frames = good_callee.receivers["camera"].frames
    await until(lambda: good_callee.receivers["camera"].frames > frames + 5, 10, "video")
    assert good_caller.state is CallState.CONNECTED
    good_caller.hang_up()
    for session in (good_caller, good_callee):
        await asyncio.wait_for(session.wait_ended(), 10)
        assert session.machine.reason == "hangup"
    await alice.close()
    await bob.close()
