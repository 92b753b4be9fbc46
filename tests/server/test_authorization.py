"""Authorisation: calls and presence only between accepted contacts, call actions only by parties.

The cast: alice and bob are accepted contacts; mallory is registered but is
not an accepted contact of either. Every case runs for three relations
between mallory and alice: none at all, a request from mallory that alice has
not accepted, and a request from alice that mallory has not accepted.

Every request mallory makes against alice and bob's relation or call is
``forbidden``, changes nothing, tells alice and bob nothing, and mallory
never hears of their presence or their calls: all she may learn of them is
what ``users.search`` shows (username and display name).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.wire import Json, WireClient, new_call_id

AUDIO = {"audio": True, "video": False}
OFFER = {"type": "offer", "sdp": "v=0"}
#: Events that would tell their receiver something of another user's presence or calls.
PRIVATE_EVENTS = frozenset(
    {"presence", "call.incoming", "call.ringing", "call.accepted", "call.ended", "rtc.signal"}
    | {f"meeting.{kind}" for kind in ("invited", "joined", "left", "media", "declined", "ended")}
)
RELATIONS = ("none", "mallory asked alice", "alice asked mallory")


@dataclass
class World:
    """alice and bob (accepted contacts), mallory, and alice's call to bob once started."""

    alice: WireClient
    bob: WireClient
    mallory: WireClient | None = None
    relation: str = "none"
    call_id: str | None = None

    @property
    def pending(self) -> bool:
        return self.relation != "none"

    async def start_call(self, phase: str) -> str:
        """alice calls bob; ``phase`` ``ringing`` leaves it there, ``accepted`` has bob answer."""
        self.call_id = new_call_id()
        await self.alice.request("call.invite", to="bob", call_id=self.call_id, media=AUDIO)
        assert (await self.bob.next_event("call.incoming"))["call_id"] == self.call_id
        assert (await self.alice.next_event("call.ringing"))["call_id"] == self.call_id
        if phase == "accepted":
            await self.bob.request("call.accept", call_id=self.call_id)
            assert (await self.alice.next_event("call.accepted"))["call_id"] == self.call_id
        return self.call_id

    async def finish_call(self, phase: str) -> None:
        """The call goes on from ``phase`` exactly as if mallory had done nothing."""
        call_id = self.call_id
        assert call_id is not None
        if phase == "ringing":
            await self.bob.request("call.accept", call_id=call_id)
            assert (await self.alice.next_event("call.accepted"))["call_id"] == call_id
        await self.alice.request("rtc.signal", call_id=call_id, description=OFFER)
        relayed = await self.bob.next_event("rtc.signal")
        assert relayed["from"] == "alice" and relayed["description"] == OFFER
        await self.bob.request("call.hangup", call_id=call_id)
        for client in (self.alice, self.bob):
            ended = await client.next_event("call.ended")
            assert ended == {"type": "call.ended", "call_id": call_id, "reason": "hangup"}

    async def settle(self, *clients: WireClient) -> list[Json]:
        """Everything ``clients`` were sent so far (a round trip orders it before the reply)."""
        received = []
        for client in clients:
            await client.request("history.list", limit=1)
            received += client.drain()
        return received


@pytest.fixture(params=RELATIONS)
async def world(
    request: pytest.FixtureRequest,
    friends: Callable[..., Awaitable[list[WireClient]]],
    user: Callable[[str], Awaitable[WireClient]],
) -> World:
    alice, bob = await friends("alice", "bob")
    mallory = await user("mallory")
    if request.param == "mallory asked alice":
        await mallory.request("contacts.request", username="alice")
        await alice.next_event("contact")
    elif request.param == "alice asked mallory":
        await alice.request("contacts.request", username="mallory")
        await mallory.next_event("contact")
    for client in (alice, bob, mallory):
        client.drain()
    return World(alice, bob, mallory, request.param)


def assert_error(reply: Json, code: str) -> None:
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert reply["re"], reply


async def assert_mallory_learned_nothing(world: World) -> None:
    """No event at all reached mallory, and alice and bob heard nothing of her attempts."""
    assert world.mallory is not None
    received = await world.settle(world.mallory)
    assert not [e for e in received if e["type"] in PRIVATE_EVENTS], received
    assert received == []
    for event in await world.settle(world.alice, world.bob):
        assert "mallory" not in json.dumps(event), event


# mallory against alice and bob's call ------------------------------------------------

Attempt = Callable[[World], Awaitable[Json]]


def _on_call(kind: str, **fields: Any) -> Attempt:
    async def attempt(world: World) -> Json:
        assert world.mallory is not None
        return await world.mallory.call(kind, call_id=world.call_id, **fields)

    return attempt


def _invite(to: str, reuse_call_id: bool = False) -> Attempt:
    async def attempt(world: World) -> Json:
        assert world.mallory is not None
        call_id = world.call_id if reuse_call_id else new_call_id()
        return await world.mallory.call("call.invite", to=to, call_id=call_id, media=AUDIO)

    return attempt


#: (phase of alice's call to bob, what mallory tries). Every one is ``forbidden``.
STRANGER_ATTEMPTS: dict[str, tuple[str | None, Attempt]] = {
    "invite alice": (None, _invite("alice")),
    "invite bob": (None, _invite("bob")),
    # Not ``busy``: that would tell mallory alice is in a call.
    "invite alice while she is called": ("ringing", _invite("alice")),
    "invite alice while she talks": ("accepted", _invite("alice")),
    "invite bob with their call_id": ("accepted", _invite("bob", reuse_call_id=True)),
    "accept their ringing call": ("ringing", _on_call("call.accept")),
    "decline their ringing call": ("ringing", _on_call("call.decline")),
    "cancel their ringing call": ("ringing", _on_call("call.cancel")),
    "hang up their ringing call": ("ringing", _on_call("call.hangup")),
    "signal into their ringing call": ("ringing", _on_call("rtc.signal", description=OFFER)),
    "accept their call": ("accepted", _on_call("call.accept")),
    "decline their call": ("accepted", _on_call("call.decline")),
    "cancel their call": ("accepted", _on_call("call.cancel")),
    "hang up their call": ("accepted", _on_call("call.hangup")),
    "signal into their call": ("accepted", _on_call("rtc.signal", description=OFFER)),
    "send a candidate into their call": (
        "accepted",
        _on_call("rtc.signal", candidate={"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host"}),
    ),
}


@pytest.mark.parametrize("attempt", STRANGER_ATTEMPTS)
async def test_stranger_is_forbidden(world: World, attempt: str) -> None:
    phase, act = STRANGER_ATTEMPTS[attempt]
    if phase is not None:
        await world.start_call(phase)

    assert_error(await act(world), "forbidden")

    await assert_mallory_learned_nothing(world)
    if phase is not None:
        await world.finish_call(phase)
    await assert_mallory_learned_nothing(world)


async def test_stranger_cannot_accept_a_request_never_made(world: World) -> None:
    # bob never asked mallory; alice did only in one of the relations.
    targets = ["bob"] if world.relation == "alice asked mallory" else ["alice", "bob"]
    for target in targets:
        assert_error(await world.mallory.call("contacts.accept", username=target), "forbidden")
    # Nothing changed: mallory's list is what it was, and bob still has only alice (and echo).
    contacts = (await world.mallory.request("contacts.list"))["contacts"]
    assert all(c["status"] != "accepted" for c in contacts if c["username"] != "echo")
    bobs = (await world.bob.request("contacts.list"))["contacts"]
    assert {c["username"] for c in bobs} == {"echo", "alice"}
    await assert_mallory_learned_nothing(world)


async def test_no_call_across_a_relation_that_is_not_accepted(world: World) -> None:
    assert world.mallory is not None
    for caller, callee_name in ((world.mallory, "alice"), (world.alice, "mallory")):
        reply = await caller.call("call.invite", to=callee_name, call_id=new_call_id(), media=AUDIO)
        assert_error(reply, "forbidden")
    for client in (world.alice, world.mallory):
        assert client is not None
        events = await world.settle(client)
        assert not [e for e in events if e["type"].startswith("call.")], events
        # A refused invite is no call: it leaves nothing in either side's history.
        assert (await client.request("history.list"))["calls"] == []


async def test_stranger_sees_no_presence_and_only_what_search_shows(world: World) -> None:
    alice, bob, mallory = world.alice, world.bob, world.mallory
    assert mallory is not None

    async def mallorys_view_of_alice() -> Json | None:
        contacts = (await mallory.request("contacts.list"))["contacts"]
        found = [c for c in contacts if c["username"] == "alice"]
        return found[0] if found else None

    async def check_views() -> None:
        seen = await mallorys_view_of_alice()
        if world.relation == "none":
            assert seen is None
        else:
            status = "outgoing" if world.relation == "mallory asked alice" else "incoming"
            # alice is online (or away, or in a call): a pending relation shows none of it.
            assert seen == {
                "username": "alice",
                "display_name": seen["display_name"],
                "status": status,
                "presence": "offline",
            }
        # The same the other way round: mallory is online, alice is not told.
        alices = {c["username"]: c for c in (await alice.request("contacts.list"))["contacts"]}
        if world.pending:
            assert alices["mallory"]["presence"] == "offline"
        else:
            assert "mallory" not in alices
        assert alices["bob"]["presence"] in {"online", "away", "dnd", "in_call"}

    await check_views()
    for status in ("away", "dnd"):
        await alice.request("presence.set", status=status)
        assert (await bob.next_event("presence"))["presence"] == status
        await check_views()
    await alice.request("profile.update", display_name="Alice Liddell")
    assert (await bob.next_event("presence"))["display_name"] == "Alice Liddell"

    await world.start_call("accepted")
    await check_views()
    await world.finish_call("accepted")
    await bob.request("presence.set", status="away")
    await alice.request("logout")
    await alice.login("alice")
    await check_views()

    # What users.search shows, and nothing more.
    for query, expected in (
        ("ali", [{"username": "alice", "display_name": "Alice Liddell"}]),
        ("Alice L", [{"username": "alice", "display_name": "Alice Liddell"}]),
        ("bo", [{"username": "bob", "display_name": "bob"}]),
    ):
        users = (await mallory.request("users.search", query=query))["users"]
        assert users == expected
        assert all(set(u) == {"username", "display_name"} for u in users)

    await assert_mallory_learned_nothing(world)


# The parties themselves ------------------------------------------------------------------

#: (phase, who, request, extra fields): each is ``forbidden`` by the call's own rules.
PARTY_ATTEMPTS = [
    ("ringing", "alice", "call.accept", {}),  # the caller cannot answer her own call
    ("ringing", "alice", "call.decline", {}),  # the caller cancels, she does not decline
    ("ringing", "bob", "call.cancel", {}),  # the callee declines, he does not cancel
    ("ringing", "alice", "call.hangup", {}),  # hang up only once accepted
    ("ringing", "bob", "call.hangup", {}),
    ("ringing", "alice", "rtc.signal", {"description": OFFER}),  # signals only once accepted
    ("ringing", "bob", "rtc.signal", {"description": OFFER}),
    ("accepted", "bob", "call.accept", {}),  # accepting twice
    ("accepted", "bob", "call.decline", {}),  # declining once answered
    ("accepted", "alice", "call.cancel", {}),  # cancelling once answered
    ("accepted", "alice", "call.accept", {}),
]


@pytest.mark.parametrize(("phase", "who", "kind", "fields"), PARTY_ATTEMPTS)
async def test_party_out_of_turn_is_forbidden(
    friends: Callable[..., Awaitable[list[WireClient]]],
    phase: str,
    who: str,
    kind: str,
    fields: Json,
) -> None:
    alice, bob = await friends("alice", "bob")
    world = World(alice, bob)
    call_id = await world.start_call(phase)
    party = alice if who == "alice" else bob

    assert_error(await party.call(kind, call_id=call_id, **fields), "forbidden")

    # Nothing happened: no event to either party, and the call goes on from where it was.
    for event in await world.settle(alice, bob):
        assert event["type"] not in {"call.accepted", "call.ended", "rtc.signal"}, event
    await world.finish_call(phase)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("call.accept", {}),
        ("call.decline", {}),
        ("call.cancel", {}),
        ("call.hangup", {}),
        ("rtc.signal", {"description": OFFER}),
    ],
)
async def test_unknown_call_is_not_found(
    friends: Callable[..., Awaitable[list[WireClient]]], kind: str, fields: Json
) -> None:
    alice, bob = await friends("alice", "bob")
    world = World(alice, bob)
    # No call at all, then while alice and bob talk in another one, then once that has ended.
    assert_error(await alice.call(kind, call_id=new_call_id(), **fields), "not_found")
    call_id = await world.start_call("accepted")
    for client in (alice, bob):
        assert_error(await client.call(kind, call_id=new_call_id(), **fields), "not_found")
    await world.finish_call("accepted")
    for client in (alice, bob):
        assert_error(await client.call(kind, call_id=call_id, **fields), "not_found")
