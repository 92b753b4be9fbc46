"""Schema migrations: a database of an earlier version is upgraded in place, losing nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from signaling.server.store import SQLiteStore
from signaling.server.store.sqlite_schema import MIGRATIONS
from tests.server.test_meetings import create, join
from tests.wire import WireClient, befriend, new_call_id

#: These read and rewrite the SQLite file (PostgreSQL's migrations: tests/server/test_postgres.py).
pytestmark = pytest.mark.sqlite_only

AV = {"audio": True, "video": True}
#: What version 2 (meetings) added; dropping it leaves exactly a version 1 database.
MEETING_TABLES = ("meeting_invitations", "meeting_attendance", "meetings")
#: What version 3 (guest links) added.
GUEST_TABLES = ("guests", "guest_links")
#: What version 4 (account self-service) added.
ACCOUNT_TABLES = ("blocks", "deleted_users")


def downgrade_to_v1(path: Path) -> None:
    db = sqlite3.connect(path)
    with db:
        for table in ACCOUNT_TABLES + GUEST_TABLES + MEETING_TABLES:
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 1")
    db.close()


def schema(path: Path) -> tuple[int, set[str]]:
    db = sqlite3.connect(path)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    return version, tables


async def test_a_v1_database_is_upgraded_without_loss(make_server, tmp_path: Path) -> None:
    path = tmp_path / "parley.db"
    server = await make_server()
    alice, bob = await befriend(server.url, "alice", "bob")
    token = alice.token
    call_id = new_call_id()
    await alice.request("call.invite", to="bob", call_id=call_id, media=AV)
    await bob.next_event("call.incoming")
    await alice.request("call.cancel", call_id=call_id)
    await server.stop()
    await asyncio.gather(alice.close(), bob.close())
    downgrade_to_v1(path)
    assert schema(path) == (1, {"users", "tokens", "contacts", "calls"})

    again = await make_server()
    assert schema(path) == (
        len(MIGRATIONS),
        {"users", "tokens", "contacts", "calls"}
        | set(MEETING_TABLES)
        | set(GUEST_TABLES)
        | set(ACCOUNT_TABLES),
    )
    alice = await WireClient.open(again.url)
    alice.user = (await alice.request("login", token=token))["user"]  # tokens survived
    bob = await WireClient.open(again.url)
    await bob.login("bob")  # and passwords
    contacts = {
        c["username"]: c["status"] for c in (await alice.request("contacts.list"))["contacts"]
    }
    assert contacts == {"echo": "accepted", "bob": "accepted"}
    history = await alice.request("history.list")
    assert [c["call_id"] for c in history["calls"]] == [call_id] and history["meetings"] == []
    # And the new tables work.
    meeting_id, _ = await create(alice, bob)
    await join(bob, meeting_id, alice)
    await alice.request("meeting.end", meeting_id=meeting_id)
    assert [m["meeting_id"] for m in (await bob.request("history.list"))["meetings"]] == [
        meeting_id
    ]
    await asyncio.gather(alice.close(), bob.close())


async def test_a_v3_database_gets_blocks_and_deletions(make_server, tmp_path: Path) -> None:
    path = tmp_path / "parley.db"
    server = await make_server()
    alice, bob, carol = await befriend(server.url, "alice", "bob", "carol")
    await server.stop()
    await asyncio.gather(alice.close(), bob.close(), carol.close())
    db = sqlite3.connect(path)
    with db:
        for table in ACCOUNT_TABLES:
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 3")
    db.close()

    again = await make_server()
    version, tables = schema(path)
    assert version == len(MIGRATIONS) and set(ACCOUNT_TABLES) <= tables
    alice = await WireClient.open(again.url)
    await alice.login("alice")
    contacts = [c["username"] for c in (await alice.request("contacts.list"))["contacts"]]
    assert contacts == ["echo", "bob", "carol"]  # nothing lost
    await alice.request("account.block", username="bob")  # and the new tables work
    assert [u["username"] for u in (await alice.request("account.blocked"))["users"]] == ["bob"]
    carol = await WireClient.open(again.url)
    await carol.login("carol")
    await carol.request("account.delete", password="correct horse")
    assert [c["username"] for c in (await alice.request("contacts.list"))["contacts"]] == ["echo"]
    await asyncio.gather(alice.close(), carol.close())


async def test_two_stores_opening_one_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    """Each reads the schema version inside its write transaction: the second finds the file
    migrated instead of applying the same migrations again ("table users already exists")."""
    for attempt in range(5):
        path = tmp_path / f"parley{attempt}.db"
        stores = [SQLiteStore(path) for _ in range(3)]
        await asyncio.gather(*(store.open() for store in stores))
        for store in stores:
            await store.close()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
