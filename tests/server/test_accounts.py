"""Accounts, tokens and login limits, against a live server and a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from signaling.server import RateLimits
from tests.wire import ServerError, WireClient


async def test_register_logs_in_and_returns_a_token(connect) -> None:
    client = await connect()
    reply = await client.register("Alice", display_name="Alice Liddell")
    assert reply["user"] == {"username": "alice", "display_name": "Alice Liddell"}
    assert len(reply["token"]) >= 22  # at least 128 bits, URL-safe base64
    contacts = (await client.request("contacts.list"))["contacts"]
    assert contacts[0] == {
        "username": "echo",
        "display_name": "Echo Test",
        "status": "accepted",
        "presence": "online",
    }


async def test_display_name_defaults_to_username(connect) -> None:
    client = await connect()
    assert (await client.register("bob"))["user"]["display_name"] == "bob"


async def test_username_taken_any_case_and_echo_reserved(connect, user) -> None:
    await user("carol")
    client = await connect()
    for name in ("carol", "CAROL", "echo"):
        reply = await client.call("register", username=name, password="whatever1")
        assert reply["code"] == "taken", name


@pytest.mark.sqlite_only
async def test_passwords_and_tokens_are_stored_hashed(server, connect) -> None:
    client = await connect()
    reply = await client.register("dave", password="plain text pw")
    db = sqlite3.connect(server.config.db_path)
    (stored,) = db.execute("SELECT password_hash FROM users WHERE username='dave'").fetchone()
    assert stored.startswith("$argon2id$") and "plain text pw" not in stored
    tokens = [row[0] for row in db.execute("SELECT token_hash FROM tokens")]
    assert reply["token"] not in tokens and len(tokens) == 1
    db.close()


@pytest.mark.sqlite_only
async def test_a_register_whose_token_save_fails_creates_no_account(server, connect) -> None:
    """SQLite refuses the new account's token (a trigger in the file aborts the insert, as a
    full disk would): the register fails, no account is left, and its retry works."""
    db = sqlite3.connect(server.config.db_path)
    db.execute(
        "CREATE TRIGGER refuse_tokens BEFORE INSERT ON tokens"
        " BEGIN SELECT RAISE(ABORT, 'no room for tokens'); END"
    )
    db.commit()
    client = await connect()
    assert (await client.call("register", username="fay", password="s3cret-pass"))["code"] == (
        "internal"
    )
    assert db.execute("SELECT COUNT(*) FROM users WHERE username = 'fay'").fetchone() == (0,)
    db.execute("DROP TRIGGER refuse_tokens")
    db.commit()
    db.close()
    again = await client.register("fay", password="s3cret-pass")  # not "taken"
    assert again["user"]["username"] == "fay"


async def test_login_with_password_then_with_token(connect, user) -> None:
    await user("erin", password="s3cret-pass")
    second = await connect()
    reply = await second.login("ERIN", password="s3cret-pass")
    assert reply["user"]["username"] == "erin"
    third = await connect()
    again = await third.request("login", token=reply["token"])
    assert again["token"] == reply["token"] and again["user"]["username"] == "erin"


async def test_wrong_password_and_unknown_user_look_the_same(connect, user) -> None:
    await user("frank")
    client = await connect()
    wrong = await client.call("login", username="frank", password="not the one")
    missing = await client.call("login", username="nobody", password="not the one")
    assert wrong["code"] == missing["code"] == "bad_credentials"
    assert wrong["message"] == missing["message"]
    assert (await client.call("login", token="forged"))["code"] == "bad_credentials"


async def test_logout_revokes_the_token_and_keeps_the_connection(connect) -> None:
    client = await connect()
    reply = await client.register("gina")
    await client.request("logout")
    assert (await client.call("contacts.list"))["code"] == "unauthenticated"
    assert (await client.call("login", token=reply["token"]))["code"] == "bad_credentials"
    await client.login("gina")
    assert (await client.request("contacts.list"))["type"] == "ok"


async def test_second_login_on_one_connection_is_refused(connect) -> None:
    client = await connect()
    await client.register("hank")
    reply = await client.call("login", username="hank", password="correct horse")
    assert reply["code"] == "bad_message"


async def test_requests_before_login_are_unauthenticated(connect) -> None:
    client = await connect()
    for kind in ("contacts.list", "logout", "history.list", "presence.set"):
        assert (await client.call(kind))["code"] == "unauthenticated"


async def test_profile_update(connect, friends) -> None:
    ivy, jack = await friends("ivy", "jack")
    reply = await ivy.request("profile.update", display_name="Ivy 🌿")
    assert reply["user"] == {"username": "ivy", "display_name": "Ivy 🌿"}
    event = await jack.next_event("presence")
    assert event == {
        "type": "presence",
        "username": "ivy",
        "presence": "online",
        "display_name": "Ivy 🌿",
    }
    found = await jack.request("users.search", query="ivy ")
    assert found["users"] == [{"username": "ivy", "display_name": "Ivy 🌿"}]


async def test_users_search_prefix_any_case_at_most_20(connect, user) -> None:
    for i in range(25):
        await user(f"zed{i:02d}", display_name=f"Zorro {i}")
    searcher = await user("searcher")
    by_name = (await searcher.request("users.search", query="ZED0"))["users"]
    assert [u["username"] for u in by_name] == [f"zed0{i}" for i in range(10)]
    by_display = (await searcher.request("users.search", query="zorro 1"))["users"]
    assert {u["username"] for u in by_display} == {"zed01", *(f"zed{i}" for i in range(10, 20))}
    assert len((await searcher.request("users.search", query="z"))["users"]) == 20
    assert (await searcher.request("users.search", query="%"))["users"] == []
    assert (await searcher.request("users.search", query="search"))["users"] == []


async def test_failed_logins_are_limited_per_username(make_server) -> None:
    server = await make_server(
        rate_limits=RateLimits(login_failures_per_user=3, login_failures_per_address=100)
    )
    client = await WireClient.open(server.url)
    await client.register("kate")
    await client.request("logout")
    for _ in range(3):
        assert (await client.call("login", username="kate", password="wrong-one"))[
            "code"
        ] == "bad_credentials"
    limited = await client.call("login", username="kate", password="correct horse")
    assert limited["code"] == "rate_limited" and limited["retry_after"] >= 1
    # Another username from the same address is not affected.
    other = await client.call("login", username="someone", password="wrong-one")
    assert other["code"] == "bad_credentials"
    await client.close()


async def test_failed_logins_are_limited_per_address(make_server) -> None:
    server = await make_server(
        rate_limits=RateLimits(login_failures_per_user=100, login_failures_per_address=4)
    )
    client = await WireClient.open(server.url)
    for i in range(4):
        await client.call("login", username=f"user{i}", password="wrong-one")
    limited = await client.call("login", username="fresh", password="wrong-one")
    assert limited["code"] == "rate_limited"
    assert (await client.call("login", token="x"))["code"] == "rate_limited"
    await client.close()


async def test_requests_per_connection_are_limited(make_server) -> None:
    server = await make_server(rate_limits=RateLimits(requests_per_s=1, request_burst=5))
    client = await WireClient.open(server.url)
    codes = [(await client.call("contacts.list"))["code"] for _ in range(7)]
    assert codes[:5] == ["unauthenticated"] * 5
    assert codes[5:] == ["rate_limited"] * 2
    # Another connection has its own budget.
    fresh = await WireClient.open(server.url)
    assert (await fresh.call("contacts.list"))["code"] == "unauthenticated"
    await client.close()
    await fresh.close()


@pytest.mark.sqlite_only
async def test_default_hash_is_argon2id_with_the_documented_cost(make_server) -> None:
    from signaling.server.credentials import HashParameters

    server = await make_server(hash_parameters=HashParameters())
    client = await WireClient.open(server.url)
    await client.register("lena")
    db = sqlite3.connect(server.config.db_path)
    (stored,) = db.execute("SELECT password_hash FROM users WHERE username='lena'").fetchone()
    db.close()
    assert stored.startswith("$argon2id$v=19$m=32768,t=2,p=1$")
    await client.close()


async def test_error_replies_raise_in_helper(connect) -> None:
    client = await connect()
    with pytest.raises(ServerError) as info:
        await client.request("login", token="nope")
    assert info.value.code == "bad_credentials"
