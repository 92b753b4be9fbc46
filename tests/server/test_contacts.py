"""Contact requests and presence, as both sides see them."""

from __future__ import annotations


async def test_request_and_accept_tells_both_sides(user) -> None:
    alice = await user("alice")
    bob = await user("bob")
    reply = await alice.request("contacts.request", username="BOB")
    assert reply["contact"] == {
        "username": "bob",
        "display_name": "bob",
        "status": "outgoing",
        "presence": "offline",
    }
    incoming = await bob.next_event("contact")
    assert incoming["contact"]["username"] == "alice"
    assert incoming["contact"]["status"] == "incoming"
    assert incoming["contact"]["presence"] == "offline"  # not accepted yet: no presence

    accepted = await bob.request("contacts.accept", username="alice")
    assert accepted["contact"]["status"] == "accepted"
    assert accepted["contact"]["presence"] == "online"
    event = await alice.next_event("contact")
    assert event["contact"]["status"] == "accepted" and event["contact"]["username"] == "bob"
    presence = await alice.next_event("presence")
    assert presence == {
        "type": "presence",
        "username": "bob",
        "presence": "online",
        "display_name": "bob",
    }
    listed = {c["username"]: c for c in (await alice.request("contacts.list"))["contacts"]}
    assert listed["bob"]["status"] == "accepted" and listed["bob"]["presence"] == "online"


async def test_crossed_requests_become_accepted(user) -> None:
    alice = await user("alice")
    bob = await user("bob")
    await alice.request("contacts.request", username="bob")
    reply = await bob.request("contacts.request", username="alice")
    assert reply["contact"]["status"] == "accepted"
    assert (await alice.next_event("contact"))["contact"]["status"] == "accepted"


async def test_accept_without_request_and_unknown_users(user) -> None:
    alice = await user("alice")
    await user("bob")
    assert (await alice.call("contacts.accept", username="bob"))["code"] == "forbidden"
    assert (await alice.call("contacts.request", username="nobody"))["code"] == "not_found"
    assert (await alice.call("contacts.request", username="alice"))["code"] == "bad_message"
    echo = await alice.request("contacts.request", username="echo")
    assert echo["contact"]["status"] == "accepted"
    assert (await alice.call("contacts.remove", username="echo"))["code"] == "forbidden"


async def test_remove_and_decline_tell_both_sides(friends, user) -> None:
    alice, bob = await friends("alice", "bob")
    await alice.request("contacts.remove", username="bob")
    gone = await bob.next_event("contact")
    assert gone["contact"]["username"] == "alice" and gone["contact"]["status"] == "removed"
    names = [c["username"] for c in (await bob.request("contacts.list"))["contacts"]]
    assert names == ["echo"]
    # Declining is removing a pending request.
    carol = await user("carol")
    await carol.request("contacts.request", username="alice")
    await alice.next_event("contact")
    await alice.request("contacts.remove", username="carol")
    assert (await carol.next_event("contact"))["contact"]["status"] == "removed"
    # Removing what is not there is harmless.
    await alice.request("contacts.remove", username="carol")


async def test_presence_changes_reach_accepted_contacts_only(friends, user, connect) -> None:
    alice, bob = await friends("alice", "bob")
    stranger = await user("mallory")
    await stranger.request("contacts.request", username="alice")  # pending: sees nothing
    await alice.request("presence.set", status="dnd")
    event = await bob.next_event("presence")
    assert (event["username"], event["presence"]) == ("alice", "dnd")
    await alice.close()
    event = await bob.next_event("presence")
    assert (event["username"], event["presence"]) == ("alice", "offline")
    again = await connect()
    await again.login("alice")
    event = await bob.next_event("presence")
    assert event["presence"] == "online"  # a fresh login starts online
    await stranger.no_event("presence")


async def test_presence_stays_while_another_connection_is_open(friends, connect) -> None:
    _alice, bob = await friends("alice", "bob")
    phone = await connect()
    await phone.login("alice")
    await phone.request("presence.set", status="away")
    assert (await bob.next_event("presence"))["presence"] == "away"
    await phone.close()
    await bob.no_event("presence")  # alice's first connection is still there
    listed = {c["username"]: c for c in (await bob.request("contacts.list"))["contacts"]}
    assert listed["alice"]["presence"] == "away"
