"""Account self-service (protocol v1.1) on a real server: password change, signing other
sessions out, deleting an account, blocking and unblocking."""

from __future__ import annotations

import asyncio

from signaling.server.config import RateLimits
from tests.wire import WireClient, befriend, new_call_id

AV = {"audio": True, "video": True}


async def second_connection(url: str, name: str, password: str = "correct horse") -> WireClient:
    client = await WireClient.open(url)
    await client.login(name, password)
    return client


async def test_the_login_reply_lists_the_feature(server) -> None:
    client = await WireClient.open(server.url)
    reply = await client.register("alice")
    assert "account" in reply["features"]
    await client.close()


async def test_change_password_signs_other_sessions_out(server) -> None:
    (alice,) = await befriend(server.url, "alice")
    laptop = await second_connection(server.url, "alice")
    wrong = await alice.call("account.password", password="not it at all", new_password="x" * 12)
    assert wrong["code"] == "bad_credentials"
    short = await alice.call("account.password", password="correct horse", new_password="short")
    assert short["code"] == "bad_message"
    reply = await alice.request(
        "account.password", password="correct horse", new_password="battery staple"
    )
    assert reply["revoked"] == 1
    event = await laptop.next_event("signed_out")
    assert event["reason"] == "password_changed"
    # The laptop is logged out (its connection stays open) and its token is dead.
    assert (await laptop.call("contacts.list"))["code"] == "unauthenticated"
    assert (await laptop.call("login", token=laptop.token))["code"] == "bad_credentials"
    # This connection stays logged in; the old password is refused, the new one works.
    await alice.request("contacts.list")
    phone = await WireClient.open(server.url)
    old = await phone.call("login", username="alice", password="correct horse")
    assert old["code"] == "bad_credentials"
    await phone.login("alice", "battery staple")
    # Its own token still logs in.
    again = await WireClient.open(server.url)
    await again.request("login", token=alice.token)
    await asyncio.gather(*(c.close() for c in (alice, laptop, phone, again)))


async def test_sign_out_others_keeps_this_token(server) -> None:
    (alice,) = await befriend(server.url, "alice")
    others = [await second_connection(server.url, "alice") for _ in range(2)]
    same_token = await WireClient.open(server.url)
    await same_token.request("login", token=alice.token)
    reply = await alice.request("account.sign_out_others")
    assert reply["revoked"] == 2
    for other in others:
        assert (await other.next_event("signed_out"))["reason"] == "signed_out_elsewhere"
        assert (await other.call("login", token=other.token))["code"] == "bad_credentials"
    # A connection on this very token is this session: it stays.
    await same_token.no_event("signed_out")
    await same_token.request("contacts.list")
    await asyncio.gather(*(c.close() for c in (alice, same_token, *others)))


async def test_delete_account_takes_contacts_requests_and_history(server) -> None:
    alice, bob = await befriend(server.url, "alice", "bob")
    carol = await WireClient.open(server.url)
    await carol.register("carol")
    await carol.request("contacts.request", username="alice")  # a pending request
    call_id = new_call_id()
    await alice.request("call.invite", to="bob", call_id=call_id, media=AV)
    await bob.next_event("call.incoming")
    await alice.request("call.cancel", call_id=call_id)
    assert (await bob.next_event("call.ended"))["reason"] == "cancelled"
    assert [c["call_id"] for c in (await bob.request("history.list"))["calls"]] == [call_id]
    alice_laptop = await second_connection(server.url, "alice")
    # Ringing when the account goes: the call ends for the other side.
    ringing = new_call_id()
    await bob.request("call.invite", to="alice", call_id=ringing, media=AV)
    wrong = await alice.call("account.delete", password="wrong password")
    assert wrong["code"] == "bad_credentials"
    await alice.request("account.delete", password="correct horse")
    assert (await bob.next_event("call.ended"))["reason"] == "declined"
    removed = await bob.next_event("contact")
    assert removed["contact"]["username"] == "alice" and removed["contact"]["status"] == "removed"
    assert (await carol.next_event("contact"))["contact"]["status"] == "removed"
    assert (await alice_laptop.next_event("signed_out"))["reason"] == "account_deleted"
    assert (await alice.call("contacts.list"))["code"] == "unauthenticated"
    # Gone from everyone's lists, history and searches; the name cannot be taken again.
    bob_contacts = [c["username"] for c in (await bob.request("contacts.list"))["contacts"]]
    carol_contacts = [c["username"] for c in (await carol.request("contacts.list"))["contacts"]]
    assert bob_contacts == ["echo"] and carol_contacts == ["echo"]
    assert (await bob.request("history.list"))["calls"] == []
    assert (await bob.request("users.search", query="ali"))["users"] == []
    assert (await bob.call("contacts.request", username="alice"))["code"] == "not_found"
    thief = await WireClient.open(server.url)
    taken = await thief.call("register", username="alice", password="another one")
    assert taken["code"] == "taken"
    for password in ("correct horse",):
        login = await thief.call("login", username="alice", password=password)
        assert login["code"] == "bad_credentials"
    assert (await thief.call("login", token=alice.token))["code"] == "bad_credentials"
    await asyncio.gather(*(c.close() for c in (alice, bob, carol, alice_laptop, thief)))


async def test_block_stops_requests_calls_presence_and_meeting_invites(server) -> None:
    alice, bob = await befriend(server.url, "alice", "bob")
    # A call from bob rings; blocking him stops it.
    call_id = new_call_id()
    await bob.request("call.invite", to="alice", call_id=call_id, media=AV)
    await alice.next_event("call.incoming")
    reply = await alice.request("account.block", username="Bob")
    assert reply["user"]["username"] == "bob"
    assert (await bob.next_event("contact"))["contact"]["status"] == "removed"
    assert (await bob.next_event("call.ended"))["reason"] == "declined"
    assert (await alice.request("account.blocked"))["users"] == [
        {"username": "bob", "display_name": "bob"}
    ]
    # Nothing of bob's reaches alice any more.
    refused = await bob.call("contacts.request", username="alice")
    assert refused["code"] == "forbidden" and "does not accept" in refused["message"]
    call = await bob.call("call.invite", to="alice", call_id=new_call_id(), media=AV)
    assert call["code"] == "forbidden"
    meeting = await bob.call("meeting.create", meeting_id=new_call_id(), media=AV, invite=["alice"])
    assert meeting["code"] == "forbidden"
    await bob.request("presence.set", status="away")
    await alice.no_event("presence")
    await alice.no_event("call.incoming")
    # Alice cannot ask bob either while she blocks him.
    mine = await alice.call("contacts.request", username="bob")
    assert mine["code"] == "forbidden" and "unblock" in mine["message"]
    # Unblocked: they may become contacts again.
    await alice.request("account.unblock", username="bob")
    assert (await alice.request("account.blocked"))["users"] == []
    await bob.request("contacts.request", username="alice")
    accepted = await alice.request("contacts.accept", username="bob")
    assert accepted["contact"]["status"] == "accepted"
    await asyncio.gather(alice.close(), bob.close())


async def test_bad_account_requests_get_clear_errors(server) -> None:
    (alice,) = await befriend(server.url, "alice")
    assert (await alice.call("account.block", username="alice"))["code"] == "bad_message"
    assert (await alice.call("account.block", username="nobody"))["code"] == "not_found"
    assert (await alice.call("account.block", username="echo"))["code"] == "forbidden"
    assert (await alice.call("account.block"))["code"] == "bad_message"
    assert (await alice.call("account.delete"))["code"] == "bad_message"
    assert (await alice.call("account.password", password="correct horse"))["code"] == "bad_message"
    await alice.request("account.unblock", username="nobody")  # nothing to lift: ok
    stranger = await WireClient.open(server.url)
    assert (await stranger.call("account.sign_out_others"))["code"] == "unauthenticated"
    await asyncio.gather(alice.close(), stranger.close())


async def test_wrong_passwords_count_as_failed_logins(make_server) -> None:
    server = await make_server(
        rate_limits=RateLimits(login_failures_per_user=3, login_failures_per_address=100)
    )
    (alice,) = await befriend(server.url, "alice")
    codes = [(await alice.call("account.delete", password=f"guess {i}"))["code"] for i in range(4)]
    assert codes == ["bad_credentials"] * 3 + ["rate_limited"]
    # The right password is refused too while the limit holds: nothing is deleted.
    assert (await alice.call("account.delete", password="correct horse"))["code"] == (
        "rate_limited"
    )
    await alice.request("contacts.list")
    await alice.close()
