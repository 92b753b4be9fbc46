"""The store interface, the same tests on both backends: SQLite (a file) and PostgreSQL (a real
PostgreSQL 15 started for the run, a fresh database per test)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import ANY

import pytest

from signaling.protocol.constants import ContactStatus
from signaling.protocol.messages import Media
from signaling.server.store import (
    CallIdTaken,
    CallRecord,
    GuestLinkRecord,
    MeetingIdTaken,
    MeetingRecord,
    SQLiteStore,
    Store,
    StoreError,
    UsernameTaken,
)
from signaling.server.store.answers import PER_TURN
from signaling.server.store.sqlite_writes import Write, _commit_batch
from tests.pg import PostgresServer

AV = Media(audio=True, video=True)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened: Store = SQLiteStore(tmp_path / "parley.db")
    else:
        from signaling.server.store.postgres import PostgresStore

        postgres: PostgresServer = request.getfixturevalue("postgres")
        opened = PostgresStore(postgres.new_database())
    await opened.open()
    yield opened
    await opened.close()


async def users(store: Store, *names: str) -> None:
    for name in names:
        await store.create_user(name, name.title(), f"hash-{name}")


async def test_accounts(store: Store) -> None:
    ada = await store.create_user("ada", "Ada Lovelace", "h1")
    assert await store.get_user("ada") == ada
    assert await store.get_user("nobody") is None
    with pytest.raises(UsernameTaken):
        await store.create_user("ada", "Another", "h2")
    renamed = await store.set_display_name("ada", "Countess Ada")
    assert renamed.display_name == "Countess Ada" and await store.get_user("ada") == renamed
    await store.set_password_hash("ada", "h3")
    found = await store.get_user("ada")
    assert found is not None and found.password_hash == "h3"
    echo = await store.get_user("echo")
    assert echo is not None and echo.password_hash is None  # the built-in user, migration 1


async def test_search_by_username_and_display_name_prefix(store: Store) -> None:
    await store.create_user("bob", "Robert Zed", "h")
    await store.create_user("bobby", "Bobby", "h")
    await store.create_user("zoe", "Émile Bob", "h")
    await store.create_user("rob", "rob", "h")
    assert [u.username for u in await store.search_users("bob", 10)] == ["bob", "bobby"]
    assert [u.username for u in await store.search_users("Rob", 10)] == ["bob", "rob"]
    assert [u.username for u in await store.search_users("émile", 10)] == ["zoe"]
    assert [u.username for u in await store.search_users("bo", 1)] == ["bob"]
    assert await store.search_users("%", 10) == [] and await store.search_users("_", 10) == []


async def test_tokens(store: Store) -> None:
    await users(store, "ada", "bob")
    await store.add_token("t1", "ada", expires_at=2e9)
    await store.add_token("t2", "ada", expires_at=2e9)
    await store.add_token("old", "ada", expires_at=1000.0)
    await store.add_token("t3", "bob", expires_at=2e9)
    found = await store.user_for_token("t1", now=1.9e9)
    assert found is not None and found.username == "ada"
    assert await store.user_for_token("t1", now=2.1e9) is None  # expired
    assert await store.user_for_token("old", now=1.9e9) is None
    await store.revoke_token("t1")
    assert await store.user_for_token("t1", now=1.9e9) is None
    assert await store.revoke_other_tokens("ada", keep_token_hash="t2") == 1  # "old"
    assert await store.user_for_token("t2", now=1.9e9) is not None
    assert await store.revoke_other_tokens("ada", keep_token_hash=None) == 1
    assert await store.user_for_token("t2", now=1.9e9) is None
    assert await store.user_for_token("t3", now=1.9e9) is not None


async def test_an_account_and_its_first_token_are_one_transaction(store: Store) -> None:
    """A register whose token cannot be saved (here its hash is taken: a real constraint of
    the database) creates no account, so trying again with a fresh token works."""
    ada = await store.create_user("ada", "Ada", "h", token=("t1", 2e9))
    assert await store.user_for_token("t1", now=1.9e9) == ada
    with pytest.raises(Exception) as failed:
        await store.create_user("bob", "Bob", "h", token=("t1", 2e9))
    assert not isinstance(failed.value, UsernameTaken)
    assert await store.get_user("bob") is None
    bob = await store.create_user("bob", "Bob", "h", token=("t2", 2e9))
    assert await store.user_for_token("t2", now=1.9e9) == bob
    with pytest.raises(UsernameTaken):  # a taken name is still refused as taken
        await store.create_user("bob", "Other", "h", token=("t3", 2e9))
    assert await store.user_for_token("t3", now=1.9e9) is None


async def test_change_password_sets_the_hash_and_revokes_the_other_tokens(store: Store) -> None:
    await users(store, "ada", "bob")
    for token in ("here", "laptop", "phone"):
        await store.add_token(token, "ada", expires_at=2e9)
    await store.add_token("bobs", "bob", expires_at=2e9)
    assert await store.change_password("ada", "new-hash", keep_token_hash="here") == 2
    found = await store.get_user("ada")
    assert found is not None and found.password_hash == "new-hash"
    assert await store.user_for_token("here", now=1.9e9) == found
    assert await store.user_for_token("laptop", now=1.9e9) is None
    assert await store.user_for_token("bobs", now=1.9e9) is not None


async def test_contacts(store: Store) -> None:
    await users(store, "ada", "bob", "cyd")
    assert await store.request_contact("ada", "bob") is ContactStatus.OUTGOING
    assert await store.request_contact("ada", "bob") is ContactStatus.OUTGOING  # again: unchanged
    assert await store.contact_status("bob", "ada") is ContactStatus.INCOMING
    assert not await store.accept_contact("ada", "bob")  # not ada's to accept
    assert await store.accept_contact("bob", "ada")
    assert await store.contact_status("ada", "bob") is ContactStatus.ACCEPTED
    # Asking someone who asked already accepts.
    assert await store.request_contact("cyd", "ada") is ContactStatus.OUTGOING
    assert await store.request_contact("ada", "cyd") is ContactStatus.ACCEPTED
    listed = await store.list_contacts("ada")
    assert [(c.user.username, c.status) for c in listed] == [
        ("bob", ContactStatus.ACCEPTED),
        ("cyd", ContactStatus.ACCEPTED),
    ]
    assert sorted(await store.accepted_contacts("ada")) == ["bob", "cyd"]
    assert await store.remove_contact("bob", "ada")
    assert not await store.remove_contact("bob", "ada")
    assert await store.contact_status("ada", "bob") is None
    assert await store.accepted_contacts("ada") == ["cyd"]


async def test_crossed_requests_at_once_make_one_relation(store: Store) -> None:
    await users(store, "ada", "bob")
    results = await asyncio.gather(
        store.request_contact("ada", "bob"), store.request_contact("bob", "ada")
    )
    assert sorted(results) == sorted([ContactStatus.OUTGOING, ContactStatus.ACCEPTED])
    assert await store.contact_status("ada", "bob") is ContactStatus.ACCEPTED
    assert await store.contact_status("bob", "ada") is ContactStatus.ACCEPTED


async def test_blocks_and_deleting_an_account(store: Store) -> None:
    await users(store, "ada", "bob", "cyd")
    await store.request_contact("ada", "bob")
    assert await store.block_user("bob", "ada", at=10.0) is ContactStatus.INCOMING
    assert await store.contact_status("ada", "bob") is None
    assert await store.blockers("ada", "bob") == {"bob"}
    assert [u.username for u in await store.blocked_users("bob")] == ["ada"]
    assert await store.block_user("bob", "ada", at=11.0) is None  # twice: still one block
    assert await store.unblock_user("bob", "ada")
    assert not await store.unblock_user("bob", "ada")
    assert await store.blockers("ada", "bob") == set()

    await store.request_contact("cyd", "ada")
    await store.add_token("tc", "cyd", 2e9)
    await store.insert_call(CallRecord("c1", "cyd", "ada", AV, 1.0, ended_at=2.0, reason="x"))
    await store.delete_user("cyd", at=20.0)
    assert await store.get_user("cyd") is None
    assert await store.user_for_token("tc", now=1.9e9) is None
    assert await store.list_contacts("ada") == [] and await store.list_calls("ada", 10) == []
    with pytest.raises(UsernameTaken):
        await store.create_user("cyd", "Cyd again", "h")
    assert [u.username for u in await store.search_users("cyd", 10)] == []


async def test_a_write_that_fails_beside_others_fails_alone(store: Store) -> None:
    """Writes at once share SQLite's transaction: a call id already used fails that insert
    only; the other inserts, an update and a write of several statements commit."""
    await users(store, "ada", "bob")
    await store.insert_call(CallRecord("c1", "ada", "bob", AV, started_at=100.0))
    commits = store.commits if isinstance(store, SQLiteStore) else 0
    outcomes = await asyncio.gather(
        store.insert_call(CallRecord("c2", "ada", "bob", AV, started_at=101.0)),
        store.insert_call(CallRecord("c1", "bob", "ada", AV, started_at=102.0)),
        store.call_ended("c1", 110.0, "hangup"),
        store.request_contact("ada", "bob"),
        store.insert_call(CallRecord("c3", "bob", "ada", AV, started_at=103.0)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], CallIdTaken)
    others = [o for i, o in enumerate(outcomes) if i != 1]
    assert others == [None, None, ContactStatus.OUTGOING, None]
    if isinstance(store, SQLiteStore):  # the first write alone, the four behind it together
        assert store.commits - commits == 2
        with pytest.raises(CallIdTaken):  # alone, it rolls back: no commit is counted
            await store.insert_call(CallRecord("c1", "bob", "ada", AV, started_at=104.0))
        assert store.commits - commits == 2
    await store.call_ended("c2", 120.0, "hangup")
    await store.call_ended("c3", 130.0, "hangup")
    calls = {c.call_id: c for c in await store.list_calls("ada", 10)}
    assert sorted(calls) == ["c1", "c2", "c3"]
    assert calls["c1"].caller == "ada" and calls["c1"].reason == "hangup"
    assert await store.contact_status("ada", "bob") is ContactStatus.OUTGOING


async def test_writes_of_one_call_at_once_keep_their_order(store: Store) -> None:
    """Writes that share a transaction mean what they meant one after another: a call's row
    before its end, the first of two rows with one id, the last answer, the first end."""
    await users(store, "ada", "bob")
    started = asyncio.gather(
        store.insert_call(CallRecord("c1", "ada", "bob", AV, started_at=1.0)),
        store.insert_call(CallRecord("c2", "ada", "bob", AV, started_at=2.0)),
        store.insert_call(CallRecord("c2", "bob", "ada", AV, started_at=3.0)),
        store.call_answered("c2", 4.0),
        store.call_answered("c2", 5.0),
        store.call_ended("c2", 6.0, "hangup"),
        store.call_ended("c2", 7.0, "again"),
        store.call_ended("c1", 8.0, "cancelled"),
        return_exceptions=True,
    )
    outcomes = await started
    assert isinstance(outcomes[2], CallIdTaken), outcomes
    assert [o for i, o in enumerate(outcomes) if i != 2] == [None] * 7
    calls = {c.call_id: c for c in await store.list_calls("ada", 10)}
    assert calls["c1"] == CallRecord("c1", "ada", "bob", AV, 1.0, None, 8.0, "cancelled")
    assert calls["c2"] == CallRecord("c2", "ada", "bob", AV, 2.0, 5.0, 6.0, "hangup")


@contextlib.asynccontextmanager
async def _lock_held_elsewhere(store: Store) -> AsyncIterator[None]:
    """Another connection holds the database's write lock (as a slow sync holds the writes
    back) until the block ends."""
    if isinstance(store, SQLiteStore):
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("COMMIT")
            other.close()
        return
    import asyncpg

    from signaling.server.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    connection = await asyncpg.connect(store.url)
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE calls IN EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


async def test_writes_held_back_are_answered_a_few_per_turn_in_order(store: Store) -> None:
    """A commit that carried many writes (they waited behind one held back) answers them at most
    :data:`PER_TURN` a turn of the loop, in order: what comes in meanwhile is handled between
    slices rather than after all of them (answers.py)."""
    await users(store, "ada", "bob")
    loop = asyncio.get_running_loop()
    turn = 0
    ticking = True

    def tick() -> None:
        nonlocal turn
        turn += 1
        if ticking:
            loop.call_soon(tick)

    answered: list[tuple[int, int]] = []
    async with _lock_held_elsewhere(store):
        writes = [
            asyncio.ensure_future(store.insert_call(CallRecord(f"c{i}", "ada", "bob", AV, i)))
            for i in range(40)
        ]
        for index, write in enumerate(writes):
            write.add_done_callback(lambda _, index=index: answered.append((index, turn)))
        await asyncio.sleep(0.3)
        assert not answered, "the writes should wait for the lock"
        tick()
    try:
        await asyncio.wait_for(asyncio.gather(*writes), 10)
    finally:
        ticking = False
    assert [index for index, _ in answered] == list(range(40))
    per_turn = collections.Counter(at for _, at in answered)
    assert max(per_turn.values()) <= PER_TURN, per_turn
    await store.call_ended("c39", 50.0, "cancelled")
    assert [c.call_id for c in await store.list_calls("ada", 50)] == ["c39"]


async def test_calls(store: Store) -> None:
    await users(store, "ada", "bob")
    await store.insert_call(CallRecord("c1", "ada", "bob", AV, started_at=100.0))
    with pytest.raises(CallIdTaken):
        await store.insert_call(CallRecord("c1", "bob", "ada", AV, started_at=101.0))
    await store.insert_call(CallRecord("c2", "bob", "ada", Media(True, False), started_at=200.0))
    await store.insert_call(CallRecord("c3", "ada", "ada", AV, started_at=300.0))
    assert await store.list_calls("ada", 10) == []  # none ended
    await store.call_answered("c1", 105.0)
    await store.call_ended("c1", 110.0, "hangup")
    await store.call_ended("c1", 999.0, "again")  # the first end stays
    await store.call_ended("c3", 301.0, "cancelled")
    calls = await store.list_calls("ada", 10)
    assert [c.call_id for c in calls] == ["c3", "c1"]  # newest first, a self-call once
    assert calls[1] == CallRecord("c1", "ada", "bob", AV, 100.0, 105.0, 110.0, "hangup")
    assert await store.end_unfinished_calls(400.0, "lost") == 1
    (c2,) = [c for c in await store.list_calls("bob", 10) if c.call_id == "c2"]
    assert c2.media == Media(True, False) and c2.reason == "lost" and c2.ended_at == 400.0
    assert [c.call_id for c in await store.list_calls("bob", 1)] == ["c2"]


async def test_meetings(store: Store) -> None:
    await users(store, "ada", "bob", "cyd", "dan")
    meeting = MeetingRecord("m1", "ada", started_at=10.0, title="Plans", capacity=4)
    await store.insert_meeting(meeting, ["bob", "cyd"])
    with pytest.raises(MeetingIdTaken):
        await store.insert_meeting(meeting, [])
    await store.meeting_joined("m1", "bob", 11.0)
    await store.meeting_left("m1", "bob", 12.0, "left")
    await store.meeting_joined("m1", "bob", 13.0)
    await store.meeting_declined("m1", "cyd", 14.0)
    await store.meeting_invited("m1", "bob", ["cyd", "dan"], 15.0)
    await store.meeting_declined("m1", "dan", 16.0)
    assert await store.list_meetings("ada", 10) == []  # not ended
    await store.meeting_ended("m1", 20.0, "ended")
    await store.meeting_ended("m1", 99.0, "again")
    (seen_by_bob,) = await store.list_meetings("bob", 10)
    assert seen_by_bob == MeetingRecord(
        "m1",
        "ada",
        10.0,
        title="Plans",
        capacity=4,
        ended_at=20.0,
        reason="ended",
        participants=("ada", "bob"),
        joined_at=11.0,
        left_at=20.0,
    )
    (seen_by_cyd,) = await store.list_meetings("cyd", 10)  # invited again, never joined
    assert seen_by_cyd.joined_at is None and seen_by_cyd.participants == ("ada", "bob")
    assert [m.meeting_id for m in await store.list_meetings("dan", 10)] == ["m1"]

    await store.insert_meeting(MeetingRecord("m2", "bob", 30.0, topology="sfu"), [])
    await store.insert_meeting(MeetingRecord("m3", "cyd", 40.0), [])
    assert await store.end_unfinished_meetings(50.0, "lost") == 2
    listed = await store.list_meetings("bob", 10)
    assert [(m.meeting_id, m.topology, m.reason) for m in listed] == [
        ("m2", "sfu", "lost"),
        ("m1", "mesh", "ended"),
    ]
    assert [m.meeting_id for m in await store.list_meetings("bob", 1)] == ["m2"]


async def test_guest_links(store: Store) -> None:
    await users(store, "ada")
    await store.insert_meeting(MeetingRecord("m1", "ada", 1.0), [])
    link = GuestLinkRecord("l1", "hash1", "ada", created_at=10.0, expires_at=100.0)
    later = GuestLinkRecord("l2", "hash2", "ada", 20.0, 100.0, meeting_id="m1")
    await store.insert_guest_link(link)
    await store.insert_guest_link(later)
    assert await store.guest_link("hash2") == later
    assert await store.guest_link("nope") is None
    assert await store.guest_links_of("ada", now=50.0) == [later, link]
    assert await store.guest_links_of("ada", now=200.0) == []
    revoked = await store.revoke_guest_link("l1", "ada", at=30.0)
    assert revoked is not None and revoked.revoked_at == 30.0
    again = await store.revoke_guest_link("l1", "ada", at=40.0)
    assert again is not None and again.revoked_at == 30.0
    assert await store.revoke_guest_link("l1", "someone", at=40.0) is None
    assert await store.guest_links_of("ada", now=50.0) == [later]
    guest = await store.create_guest("guest-1", "Visitor", "l2", at=35.0)
    assert guest.password_hash is None and await store.get_user("guest-1") == guest
    with pytest.raises(UsernameTaken):
        await store.create_guest("guest-1", "Visitor", "l2", at=36.0)


async def test_a_store_that_is_closed_says_so(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.get_user("ada")


def test_an_error_that_ends_sqlites_transaction_fails_the_whole_batch(tmp_path: Path) -> None:
    """A one-statement write has no savepoint: when its error ended the transaction itself
    (a full disk, say; here a ROLLBACK), the batch fails and keeps nothing, rather than the
    writes after it running outside any transaction."""
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    db.execute("CREATE TABLE t (n INTEGER)")

    def insert(n: int) -> Write:
        return Write(lambda db: db.execute("INSERT INTO t VALUES (?)", (n,)), one_statement=True)

    def disk_full(db: sqlite3.Connection) -> None:
        db.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        _commit_batch(db, [insert(1), Write(disk_full, one_statement=True), insert(3)])
    assert not db.in_transaction
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert _commit_batch(db, [insert(4)])[0][0]  # the next batch is served
    assert db.execute("SELECT n FROM t").fetchall() == [(4,)]
    db.close()


def test_a_lone_write_of_one_statement_is_its_own_transaction() -> None:
    """A batch of one one-statement write runs in autocommit mode (no ``BEGIN``/``COMMIT`` of
    its own: two calls into SQLite fewer); its failure is its own, and the next is served. A
    call's write (not synced) runs alone; a synced one switches the sync on around it."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    insert = Write(lambda db: db.execute("INSERT INTO t VALUES (1)"), True, synced=False)
    assert _commit_batch(db, [insert]) == [(True, ANY)]
    assert statements == ["INSERT INTO t VALUES (1)"]
    ((ok, error),) = _commit_batch(db, [insert])
    assert not ok and isinstance(error, sqlite3.IntegrityError) and not db.in_transaction
    statements.clear()
    assert _commit_batch(db, [Write(lambda db: db.execute("INSERT INTO t VALUES (2)"), True)])
    assert statements == [
        "PRAGMA synchronous = FULL",
        "INSERT INTO t VALUES (2)",
        "PRAGMA synchronous = NORMAL",
    ]
    assert db.execute("SELECT n FROM t").fetchall() == [(1,), (2,)]
    db.close()
