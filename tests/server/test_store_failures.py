"""A store that fails or lags under load (real PostgreSQL): a busy pool is not a dead database,
and a request that fails leaves the connection as it was."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from signaling.protocol.messages import Media
from signaling.server.store import CallRecord, StoreBusy, StoreUnavailable
from signaling.server.store.postgres import PostgresStore
from tests.pg import PostgresServer
from tests.waiting import until
from tests.wire import ServerError, WireClient

BACKEND_PID = "SELECT pg_backend_pid()"
AV = Media(audio=True, video=True)


async def all_lent_out(store: PostgresStore) -> None:
    """Until every connection the store's pool may hold is open and lent out."""
    pool = store._pool
    assert pool is not None
    await until(
        lambda: pool.get_size() == store.pool_size and pool.get_idle_size() == 0,
        30,
        "the slow queries taking the whole pool",
    )


async def test_a_busy_pool_answers_busy_and_keeps_its_connections(
    postgres: PostgresServer,
) -> None:
    """Every pooled connection at work past the acquire timeout: that request alone fails with
    :class:`StoreBusy`; the pool is not torn down (the same backend serves the next request)."""
    store = PostgresStore(postgres.new_database(), pool_size=1, timeout_s=0.5)
    await store.open()
    try:
        pid = await store._run(lambda db: db.fetchval(BACKEND_PID))
        slow = asyncio.create_task(store._run(lambda db: db.fetchval("SELECT pg_sleep(3)")))
        await all_lent_out(store)
        started = time.monotonic()
        with pytest.raises(StoreBusy, match="busy"):
            await store.get_user("ada")
        assert time.monotonic() - started < 10  # an answer, not a hang
        await asyncio.wait_for(slow, 30)  # the slow query was not disturbed
        assert await store._run(lambda db: db.fetchval(BACKEND_PID)) == pid  # same connection
        assert await store.get_user("ada") is None  # served again
    finally:
        await store.close()


async def _backend_waiting_on_a_lock(db: asyncpg.Connection, database: str) -> int:
    """The server's backend once it waits for our lock."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'"
            " AND pid <> pg_backend_pid()",
            database,
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError("the server never read the contacts")


@pytest.mark.parametrize("how", ["password", "token"])
async def test_a_login_the_store_fails_leaves_the_connection_logged_out(
    postgres: PostgresServer, make_server, how: str
) -> None:
    """The store's connection dies while a login reads the user's contacts: the client is
    answered ``unavailable`` and the connection is not logged in (trying again works)."""
    url = postgres.new_database()
    database = urlsplit(url).path.lstrip("/")
    server = await make_server(db_path=url, echo_bot=False)
    first = await WireClient.open(server.url)
    token = (await first.register("ada"))["token"]
    await first.close()
    # the first connection's logout is processed
    await until(lambda: "ada" not in server.hub.by_user, 30, "ada's first connection logged out")

    client = await WireClient.open(server.url)
    password = {"username": "ada", "password": "correct horse"}
    fields = {"token": token} if how == "token" else password
    locker = await asyncpg.connect(url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
            login = asyncio.create_task(client.request("login", **fields))
            victim = await _backend_waiting_on_a_lock(locker, database)
            await locker.fetchval("SELECT pg_terminate_backend($1)", victim)
            with pytest.raises(ServerError) as refused:
                await asyncio.wait_for(login, 30)
        assert refused.value.code == "unavailable"
        assert "database" in refused.value.reply["message"]
        assert "ada" not in server.hub.by_user  # not online on a failed login

        again = await client.request("login", **fields)  # not "already logged in"
        assert again["user"]["username"] == "ada"
        assert "ada" in server.hub.by_user
        await client.close()
    finally:
        await locker.close()


async def test_a_busy_database_is_answered_busy_and_the_next_request_is_served(
    postgres: PostgresServer, make_server
) -> None:
    """Through the server: every pooled connection at work answers ``unavailable`` saying
    *busy* (not *unreachable*), and the same connection is served once one is free."""
    server = await make_server(db_path=postgres.new_database(), echo_bot=False)
    store = server.hub.store
    assert isinstance(store, PostgresStore)
    client = await WireClient.open(server.url)
    await client.register("ada")
    store.timeout_s = 0.5
    slow = [
        asyncio.create_task(store._run(lambda db: db.fetchval("SELECT pg_sleep(6)")))
        for _ in range(store.pool_size)
    ]
    try:
        await all_lent_out(store)
        with pytest.raises(ServerError) as refused:
            await client.request("contacts.list")
        assert refused.value.code == "unavailable"
        assert "busy" in refused.value.reply["message"]
    finally:
        await asyncio.wait_for(asyncio.gather(*slow), 30)
    served = await client.request("contacts.list")
    assert [c["username"] for c in served["contacts"]] == ["echo"]  # served again
    await client.close()


async def _kill_when_blocked_on(url: str, table: str, request: Awaitable[Any]) -> ServerError:
    """Lock ``table``, start ``request`` and kill the server's connection to the database once
    it waits for that lock (the write to ``table`` fails for real); the request's error."""
    database = urlsplit(url).path.lstrip("/")
    locker = await asyncpg.connect(url)
    try:
        async with locker.transaction():
            await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            task = asyncio.ensure_future(request)
            victim = await _backend_waiting_on_a_lock(locker, database)
            await locker.fetchval("SELECT pg_terminate_backend($1)", victim)
            with pytest.raises(ServerError) as refused:
                await asyncio.wait_for(task, 30)
    finally:
        await locker.close()
    return refused.value


async def test_a_register_whose_token_save_fails_changes_nothing(
    postgres: PostgresServer, make_server
) -> None:
    """The database goes away while a register saves the new account's token: the client is
    answered ``unavailable``, no account was created, and trying again registers (not
    ``taken``)."""
    url = postgres.new_database()
    server = await make_server(db_path=url, echo_bot=False)
    client = await WireClient.open(server.url)
    failed = await _kill_when_blocked_on(url, "tokens", client.register("ada"))
    assert failed.code == "unavailable"
    assert await server.hub.store.get_user("ada") is None
    assert "ada" not in server.hub.by_user
    again = await client.register("ada")  # the retry works
    assert again["user"]["username"] == "ada"
    other = await WireClient.open(server.url)
    assert (await other.request("login", token=again["token"]))["user"]["username"] == "ada"
    await asyncio.gather(client.close(), other.close())


async def test_a_password_change_whose_token_revocation_fails_changes_nothing(
    postgres: PostgresServer, make_server
) -> None:
    """The database goes away while a password change revokes the other sessions' tokens:
    the old password and the other sessions stay, and trying again with it works."""
    url = postgres.new_database()
    server = await make_server(db_path=url, echo_bot=False)
    client = await WireClient.open(server.url)
    await client.register("ada")
    laptop = await WireClient.open(server.url)
    await laptop.login("ada")
    change = {"password": "correct horse", "new_password": "battery staple"}
    failed = await _kill_when_blocked_on(
        url, "tokens", client.request("account.password", **change)
    )
    assert failed.code == "unavailable"
    probe = await WireClient.open(server.url)
    await probe.request("login", token=laptop.token)  # the other session's token still works
    phone = await WireClient.open(server.url)
    await phone.login("ada")  # and so does the old password
    reply = await client.request("account.password", **change)  # the retry works
    assert reply["revoked"] == 2  # the laptop's token (the probe's too) and the phone's
    assert (await laptop.next_event("signed_out"))["reason"] == "password_changed"
    await asyncio.gather(client.close(), laptop.close(), probe.close(), phone.close())


async def test_call_writes_that_share_a_transaction_fail_together_then_recover(
    postgres: PostgresServer,
) -> None:
    """Call writes that arrive together are one transaction: the connection dies while it waits
    for a lock, and every one of them is answered ``StoreUnavailable``, none is kept; the next
    writes are served."""
    url = postgres.new_database()
    database = urlsplit(url).path.lstrip("/")
    store = PostgresStore(url)
    await store.open()
    locker = await asyncpg.connect(url)
    try:
        for name in ("ada", "bob"):
            await store.create_user(name, name.title(), "hash")
        await store.insert_call(CallRecord("c0", "ada", "bob", AV, started_at=1.0))
        async with locker.transaction():
            await locker.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
            writes = [
                asyncio.create_task(store.insert_call(CallRecord(f"c{n}", "ada", "bob", AV, n)))
                for n in (1, 2, 3)
            ]
            writes.append(asyncio.create_task(store.call_ended("c0", 5.0, "hangup")))
            victim = await _backend_waiting_on_a_lock(locker, database)
            await locker.fetchval("SELECT pg_terminate_backend($1)", victim)
            outcomes = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 30)
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        rows = await locker.fetch("SELECT call_id, ended_at FROM calls")
        assert [tuple(row) for row in rows] == [("c0", None)]  # c0 not ended, no c1..c3

        await store.insert_call(CallRecord("c1", "ada", "bob", AV, started_at=6.0))
        await store.call_ended("c1", 7.0, "hangup")
        await store.call_ended("c0", 8.0, "hangup")
        assert [c.call_id for c in await store.list_calls("ada", 10)] == ["c1", "c0"]
        assert await locker.fetchval("SELECT count(*) FROM calls") == 2
    finally:
        await locker.close()
        await store.close()


async def test_a_call_write_postgresql_refuses_fails_alone(postgres: PostgresServer) -> None:
    """A batch of call writes that PostgreSQL refuses for what one of them holds (a NUL in a
    text) is written one write at a time: only that write fails."""
    store = PostgresStore(postgres.new_database())
    await store.open()
    try:
        for name in ("ada", "bob"):
            await store.create_user(name, name.title(), "hash")
        await store.insert_call(CallRecord("c0", "ada", "bob", AV, started_at=1.0))
        outcomes = await asyncio.gather(
            store.insert_call(CallRecord("c1", "ada", "bob", AV, started_at=2.0)),
            store.insert_call(CallRecord("bad\x00", "ada", "bob", AV, started_at=3.0)),
            store.call_ended("c0", 4.0, "hangup"),
            store.call_ended("c1", 5.0, "hangup"),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2:] == [None, None], outcomes
        assert isinstance(outcomes[1], Exception), outcomes
        assert not isinstance(outcomes[1], StoreUnavailable)  # the data, not the database
        assert [c.call_id for c in await store.list_calls("ada", 10)] == ["c1", "c0"]
    finally:
        await store.close()
