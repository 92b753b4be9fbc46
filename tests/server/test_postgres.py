"""parley-server on PostgreSQL (``--db postgresql://…``): a real PostgreSQL 15 started for the
run; the server serves, says ``unavailable`` while its database is away, recovers by itself,
and loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from signaling.server.store import MeetingRecord, StoreError
from signaling.server.store.postgres import PostgresStore
from signaling.server.store.postgres_schema import MIGRATIONS
from tests.pg import PostgresServer, free_port
from tests.server.process import ServerProcess, run_server
from tests.wire import ServerError, WireClient, befriend, new_call_id, until_served

AV = {"audio": True, "video": True}


async def test_the_server_serves_from_postgresql(postgres: PostgresServer) -> None:
    server = ServerProcess("--port", "0", "--db", postgres.new_database(), "--no-echo")
    try:
        url = await asyncio.to_thread(server.wait_ready)
        ada, bob = await befriend(url, "ada", "bob")
        call_id = new_call_id()
        await ada.request("call.invite", to="bob", call_id=call_id, media=AV)
        await bob.next_event("call.incoming")
        await bob.request("call.accept", call_id=call_id)
        await ada.next_event("call.accepted")
        await ada.request("call.hangup", call_id=call_id)
        history = await bob.request("history.list")
        assert [c["call_id"] for c in history["calls"]] == [call_id]
        found = await ada.request("users.search", query="bo")
        assert [u["username"] for u in found["users"]] == ["bob"]
        await asyncio.gather(ada.close(), bob.close())
    finally:
        server.kill()


async def test_postgresql_restarted_mid_run(postgres: PostgresServer, make_server) -> None:
    """While the database is down requests fail with ``unavailable`` (quickly, nothing hangs);
    once it is back they succeed again, and everything acknowledged before is there."""
    server = await make_server(db_path=postgres.new_database(), echo_bot=False)
    ada, bob = await befriend(server.url, "ada", "bob")
    await ada.request("profile.update", display_name="Ada L.")
    call_id = new_call_id()
    await ada.request("call.invite", to="bob", call_id=call_id, media=AV)
    await bob.next_event("call.incoming")
    await ada.request("call.cancel", call_id=call_id)
    await bob.next_event("call.ended")

    await asyncio.to_thread(postgres.stop)
    try:
        started = time.monotonic()
        with pytest.raises(ServerError) as refused:
            await ada.request("contacts.list")
        assert refused.value.code == "unavailable"
        assert "database" in refused.value.reply["message"]
        with pytest.raises(ServerError) as refused:
            await bob.request("profile.update", display_name="Never stored")
        assert refused.value.code == "unavailable"
        assert time.monotonic() - started < 15  # an answer, not a hang
        assert ada.ws.close_code is None and bob.ws.close_code is None  # still connected
    finally:
        await asyncio.to_thread(postgres.start)

    contacts = await until_served(ada, "contacts.list")
    assert {c["username"]: c["status"] for c in contacts["contacts"]} == {
        "echo": "accepted",
        "bob": "accepted",
    }
    history = await until_served(bob, "history.list")
    assert [c["call_id"] for c in history["calls"]] == [call_id]
    (ada_seen,) = [
        c for c in (await bob.request("contacts.list"))["contacts"] if c["username"] == "ada"
    ]
    assert ada_seen["display_name"] == "Ada L."
    me = await bob.request("profile.update", display_name="Bob B.")
    assert me["user"]["display_name"] == "Bob B."
    # And a new session logs in with the password stored before the restart.
    again = await WireClient.open(server.url)
    await again.login("ada")
    await asyncio.gather(ada.close(), bob.close(), again.close())


def test_a_malformed_database_url_is_one_line_and_exit_2() -> None:
    for url in ("postgresql://ada@localhost:notaport/db", "mysql://ada@localhost/db"):
        result = run_server("--port", "0", "--db", url)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "--db" in result.stderr


def test_a_database_that_is_not_there_is_one_line_and_exit_2(postgres: PostgresServer) -> None:
    result = run_server("--port", "0", "--db", postgres.url("no_such_database"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("parley-server: error: cannot use database postgresql://")
    assert "no_such_database" in lines[-1] and "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://ada:secret-pw@127.0.0.1:{free_port()}/parley"
    result = run_server("--port", "0", "--db", url)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("parley-server: error: cannot reach database postgresql://ada:***@")
    assert "Traceback" not in result.stderr and "secret-pw" not in result.stderr


async def test_a_v1_postgresql_database_is_upgraded_and_a_newer_one_refused(
    postgres: PostgresServer,
) -> None:
    url = postgres.new_database()
    db = await asyncpg.connect(url)
    try:
        async with db.transaction():
            await db.execute(MIGRATIONS[0])
            await db.execute("CREATE TABLE parley_schema (version INTEGER NOT NULL)")
            await db.execute("INSERT INTO parley_schema VALUES (1)")
            await db.execute("INSERT INTO users VALUES ('ada', 'Ada', 'ada', 'h', 1)")
            await db.execute("INSERT INTO tokens VALUES ('tok', 'ada', 2e9)")
        store = PostgresStore(url)
        await store.open()
        try:
            assert await db.fetchval("SELECT version FROM parley_schema") == len(MIGRATIONS)
            found = await store.user_for_token("tok", now=1.9e9)
            assert found is not None and found.username == "ada"  # kept
            await store.insert_meeting(MeetingRecord("m1", "ada", 1.0), [])  # the new tables
            assert await store.block_user("ada", "echo", at=2.0) is None
        finally:
            await store.close()
        await db.execute("UPDATE parley_schema SET version = $1", len(MIGRATIONS) + 1)
    finally:
        await db.close()
    with pytest.raises(StoreError, match="newer than this server knows"):
        await PostgresStore(url).open()
