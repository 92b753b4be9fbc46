"""A hostile peer on the data channel: whatever it sends, the call's end stays up and pays little.

First the channel's rules on their own (a clock in the test's hand), then
hypothesis throws arbitrary messages at it, then a real aiortc peer floods a
real :class:`CallSession` over a real data channel while a well-behaved call
runs beside it in the same process.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gui.core.call_machine import CallState
from gui.core.call_session import CallSession, LocalMedia
from gui.core.peer_channel import (
    BURST,
    MAX_CHAT_CHARS,
    MAX_MESSAGE_CHARS,
    RATE_PER_S,
    ChatMessage,
    PeerChannel,
    PeerMediaState,
)
from signaling.server import SignalingServer
from tests.core.test_call_session import answer_next_call, client_for, friends, media
from tests.waiting import until


class Clock:
    """Time that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class OpenChannel:
    """The part of an open RTCDataChannel the peer channel uses; keeps what is sent."""

    readyState = "open"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Handlers are not needed: the test calls ``receive`` itself."""

    def send(self, data: str) -> None:
        self.sent.append(data)


def channel(clock: Clock | None = None) -> tuple[PeerChannel, list[Any], OpenChannel]:
    got: list[Any] = []
    peer = PeerChannel(got.append, got.append, got.append, clock=clock or Clock())
    raw = OpenChannel()
    peer.attach(raw)
    return peer, got, raw


def chat(text: Any = "hi", msg_id: Any = "m1", **extra: Any) -> str:
    return json.dumps({"t": "chat", "id": msg_id, "text": text, **extra})


def test_what_makes_no_sense_is_dropped_and_counted_by_cause() -> None:
    peer, got, raw = channel()
    for data, cause in (
        (b"\x00\x01", "binary"),
        ("x" * (MAX_MESSAGE_CHARS + 1), "oversized"),
        ("{nope", "malformed"),
        ("[" * 100_000 + "]" * 100_000, "oversized"),
        ("[" * 10_000 + "]" * 10_000, "malformed"),  # deeper than the parser goes
        ("[1, 2]", "malformed"),
        (json.dumps({"t": 7}), "malformed"),
        (json.dumps({"t": "launch"}), "unknown"),
        (json.dumps({"t": "state", "audio": 1, "video": True, "screen": False}), "malformed"),
        (chat(text=""), "malformed"),
        (chat(text="x" * (MAX_CHAT_CHARS + 1)), "malformed"),
        (chat(msg_id="i" * 65), "malformed"),
        (chat(msg_id=None), "malformed"),
        (chat(text=["hi"]), "malformed"),
        ('{"t": "chat", "id": "m", "text": "\\ud800"}', "malformed"),  # a lone surrogate
    ):
        before = peer.dropped[cause]
        peer.receive(data)
        assert peer.dropped[cause] == before + 1, (data[:40], peer.dropped)
    assert got == [] and raw.sent == []
    assert peer.dropped_total == 15


def test_good_messages_still_work_and_odd_timestamps_become_now() -> None:
    peer, got, raw = channel()
    peer.receive(json.dumps({"t": "state", "audio": False, "video": True, "screen": True}))
    peer.receive(json.dumps({"t": "ping"}))
    for stamp in (10**400, float("nan"), float("inf"), -5, True, "yesterday", 2**40):
        before = time.time()
        peer.receive(chat(msg_id=f"m{len(got)}", sent_at=stamp).replace('"NaN"', "NaN"))
        assert isinstance(got[-1], ChatMessage) and got[-1].sent_at >= before
    peer.receive(chat(msg_id="x", text="<b>not bold</b> &amp;", sent_at=1_700_000_000.5))
    assert got[0] == PeerMediaState(False, True, True)
    assert got[-1].text == "<b>not bold</b> &amp;" and got[-1].sent_at == 1_700_000_000.5
    assert len(raw.sent) == 8 and peer.dropped_total == 0  # every chat acknowledged


def test_a_flood_is_cut_to_the_bucket_and_the_bucket_refills() -> None:
    clock = Clock()
    peer, got, raw = channel(clock)
    for i in range(10_000):
        peer.receive(chat(msg_id=f"f{i}"))
    assert len(got) == BURST and peer.dropped["flood"] == 10_000 - BURST
    assert len(raw.sent) == BURST  # acks too are bounded by the bucket
    clock.now += 1.0
    for _ in range(1000):
        peer.receive(json.dumps({"t": "ping"}))
    assert peer.dropped["flood"] == 10_000 - BURST + 1000 - int(RATE_PER_S)
    clock.now += 3600.0  # a long quiet time refills only up to the burst
    for _ in range(BURST + 1):
        peer.receive(json.dumps({"t": "ping"}))
    assert peer.dropped["flood"] == 10_000 - BURST + 1000 - int(RATE_PER_S) + 1


def test_dropping_is_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    peer, _, _ = channel()
    with caplog.at_level("WARNING", logger="parley.call"):
        for _ in range(BURST):
            peer.receive(b"x")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "dropped 1 data channel message(s) from the peer",
        "dropped 10 data channel message(s) from the peer",
        "dropped 100 data channel message(s) from the peer",
    ]


# Anything at all --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {"t": st.sampled_from(["chat", "ack", "state", "ping", "other"]) | json_values},
    optional={
        "id": st.text(max_size=70) | json_values,
        "text": st.text(max_size=300) | json_values,
        "sent_at": json_values,
        "audio": json_values,
        "video": json_values,
        "screen": json_values,
    },
)
anything = (
    messages.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=500)
    | st.binary(max_size=500)
    | st.integers()
    | st.none()
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(anything, max_size=20))
def test_arbitrary_messages_never_raise_and_only_sound_ones_get_through(batch: list[Any]) -> None:
    peer, got, _ = channel()
    for data in batch:
        peer.receive(data)
    for item in got:
        if isinstance(item, ChatMessage):
            assert 0 < len(item.text) <= MAX_CHAT_CHARS and 0 < len(item.id) <= 64
            item.text.encode("utf-8")
            assert 0 <= item.sent_at < 2**33
        else:
            assert isinstance(item, PeerMediaState)
            assert all(isinstance(v, bool) for v in (item.audio, item.video, item.screen))
    accepted = sum(isinstance(i, ChatMessage | PeerMediaState) for i in got)
    assert accepted + peer.dropped_total <= len(batch)


# A flood over a real data channel -----------------------------------------------------------

#: What a flood may add to the process's traced memory (it stays near 0 when nothing piles up).
FLOOD_MEMORY_BYTES = 20 * 1024 * 1024
#: The flooding side sends while its own SCTP queue holds less than this.
SENDER_BUFFER_BYTES = 16 * 1024
#: How much work the loop may do between a 10 ms timer falling due and firing during the
#: flood: the loop is never held for long.
LOOP_HELD_S = 1.0


async def held_probe(stop: asyncio.Event) -> float:
    """Until ``stop``, the most CPU time the loop's thread spent while a 10 ms sleep waited.

    CPU time of this thread, not the clock: on a loaded machine the whole process can wait
    for a core longer than a second (load 20 on two cores), which says nothing about what
    the flood makes the loop do.
    """
    worst = 0.0
    while not stop.is_set():
        start = time.thread_time()
        await asyncio.sleep(0.01)
        worst = max(worst, time.thread_time() - start)
    return worst


@pytest.mark.slow
async def test_a_flood_from_a_real_peer_is_dropped_while_another_call_goes_on(
    server: SignalingServer,
) -> None:
    # A well-behaved call beside it, in the same process.
    alice, bob = await friends(server)
    answering = asyncio.create_task(answer_next_call(bob, media(660)))
    good_caller = CallSession.outgoing(alice, "bob", media(440))
    good_callee = await answering
    await until(lambda: good_callee.channel.is_open and good_caller.channel.is_open, 15)

    # The victim answers a call from a peer whose app floods the data channel. The peer is a
    # real Parley session, its channel used raw.
    carol, dave = await client_for(server, "carol"), await client_for(server, "dave")
    await carol.request("contacts.request", username="dave")
    await dave.request("contacts.accept", username="carol")
    answering = asyncio.create_task(answer_next_call(dave, LocalMedia()))
    hostile = CallSession.outgoing(carol, "dave", LocalMedia())
    victim = await answering
    chats: list[ChatMessage] = []
    victim.on("chat", chats.append)
    await until(lambda: hostile.channel.is_open and victim.channel.is_open, 15)
    raw = hostile.channel.channel
    assert raw is not None

    tracemalloc.start()
    stop = asyncio.Event()
    probe = asyncio.create_task(held_probe(stop))
    before = tracemalloc.get_traced_memory()[0]
    big = "y" * (MAX_MESSAGE_CHARS + 10)
    small = [chat(msg_id="same"), "{", json.dumps({"t": "launch"}), b"\x00" * 100]
    junk = [big, *small * 10]  # mostly small ones: the most messages per second

    async def flood() -> None:
        while True:
            if raw.bufferedAmount > SENDER_BUFFER_BYTES:  # the sender's own queue stays small
                await asyncio.sleep(0.005)
                continue
            for data in junk:
                raw.send(data)

    began = time.monotonic()
    flooding = asyncio.create_task(flood())
    causes = ("flood", "oversized", "malformed", "unknown", "binary")
    await until(lambda: all(victim.channel.dropped[c] for c in causes), 30, "every kind of drop")
    flooding.cancel()
    elapsed = time.monotonic() - began
    grew = tracemalloc.get_traced_memory()[0] - before
    stop.set()
    worst_held = await probe
    tracemalloc.stop()

    assert len(chats) <= BURST + RATE_PER_S * (elapsed + 1), (len(chats), elapsed)
    assert grew < FLOOD_MEMORY_BYTES, grew
    assert worst_held < LOOP_HELD_S, worst_held
    assert victim.state is CallState.CONNECTED and good_callee.state is CallState.CONNECTED

    # The good call's chat still gets through, and both calls end normally.
    seen: list[ChatMessage] = []
    good_callee.on("chat", seen.append)
    good_caller.send_chat("still here")
    await until(lambda: seen, 10)
    for session in (hostile, good_caller):
        session.hang_up()
    for session in (hostile, victim, good_caller, good_callee):
        await asyncio.wait_for(session.wait_ended(), 10)
        assert session.machine.reason == "hangup"
    for client in (alice, bob, carol, dave):
        await client.close()
