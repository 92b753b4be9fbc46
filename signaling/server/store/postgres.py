"""The PostgreSQL store (``--db postgresql://…``): what several server instances share.

The schema is SQLite's, in PostgreSQL's words, versioned the same way (:mod:`.postgres_schema`).

Every changing method is one transaction, committed (PostgreSQL's default
``synchronous_commit = on``: flushed to its log) before its awaitable returns. When the
database cannot be reached, methods raise :class:`StoreUnavailable` at once; the pool opens
new connections on the next call, so the server recovers by itself when it is back. When
every pooled connection stays lent out for ``timeout_s`` (a slow database under load), only
that call fails, with :class:`StoreBusy`, and the pool keeps its connections.
"""

# The methods are documented where they are declared, on Store (base.py).
# ruff: noqa: D102

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from signaling.protocol.constants import ContactStatus
from signaling.protocol.messages import Media
from signaling.server.store.base import (
    CallRecord,
    ContactRecord,
    GuestLinkRecord,
    MeetingIdTaken,
    MeetingRecord,
    Store,
    StoreBusy,
    StoreError,
    StoreUnavailable,
    UsernameTaken,
    UserRecord,
    is_postgres_url,
)
from signaling.server.store.postgres_calls import CallWrites
from signaling.server.store.postgres_schema import migrate

T = TypeVar("T")
Connection = Any  # asyncpg.Connection (or a pool's proxy of one); asyncpg ships no stubs


#: Leaves deleted accounts out of a query on users.
_NOT_DELETED = " AND username NOT IN (SELECT username FROM deleted_users)"
#: Byte order, as SQLite sorts, whatever the database's collation.
_BYTES = ' COLLATE "C"'

#: What "the database is not there" looks like from asyncpg.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
)


#: What a wrong user, password or database name in the URL looks like.
_REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.InvalidCatalogNameError,
)


def _all_busy(pool: asyncpg.Pool) -> bool:
    """Whether every connection the pool may hold is open and lent out (waiting for one is
    then a queue, not a database that is gone)."""
    return bool(pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size())


def check_url(url: str) -> str:
    """``url`` if it is a usable PostgreSQL URL; ``ValueError`` (one line) if not."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"bad database URL {safe_url(url)}: {exc}") from None
    if not is_postgres_url(url):
        raise ValueError(f"bad database URL {safe_url(url)}: not postgresql://")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError(f"bad database URL {safe_url(url)}: no host")
    return url


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _count(status: str) -> int:
    """Rows a command touched, from its status (``DELETE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


def _fold(text: str) -> str:
    return text.casefold()


async def _keep_session(_db: Connection) -> None:
    """What a connection needs before it goes back to the pool: nothing. asyncpg still rolls
    back a transaction left open; its default ``RESET ALL``, ``UNLISTEN *`` … (one more round
    trip per request) undoes what this store never does: it sets no session setting, listens
    to nothing, keeps no cursor or session advisory lock (only transaction-scoped ones)."""


def _user(row: Any) -> UserRecord:
    return UserRecord(row["username"], row["display_name"], row["password_hash"])


def _call(row: Any) -> CallRecord:
    return CallRecord(
        call_id=row["call_id"],
        caller=row["caller"],
        callee=row["callee"],
        media=Media(bool(row["audio"]), bool(row["video"])),
        started_at=row["started_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        reason=row["reason"],
    )


def _guest_link(row: Any) -> GuestLinkRecord:
    return GuestLinkRecord(
        link_id=row["link_id"],
        code_hash=row["code_hash"],
        owner=row["owner"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        meeting_id=row["meeting_id"],
        revoked_at=row["revoked_at"],
    )


class PostgresStore(Store):
    """:class:`Store` on a PostgreSQL database, through a pool of asyncpg connections."""

    def __init__(self, url: str, pool_size: int = 8, timeout_s: float = 5.0) -> None:
        self.url = check_url(url)
        self.pool_size = pool_size
        self.timeout_s = timeout_s
        self._pool: asyncpg.Pool | None = None
        self._calls = CallWrites(self._write)

    # Plumbing -----------------------------------------------------------------

    async def _use(self, fn: Callable[[Connection], Awaitable[T]], write: bool) -> T:
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        try:
            db = await pool.acquire(timeout=self.timeout_s)
        except TimeoutError as exc:
            if _all_busy(pool):
                # A slow but alive database: every connection is at work. Only this request
                # fails; tearing the pool down would make every next one wait for a new one.
                raise StoreBusy(
                    f"the database is busy (no free connection in {self.timeout_s:g} s)"
                ) from None
            raise await self._unreachable(pool, exc) from None  # connecting timed out
        except _UNREACHABLE as exc:
            raise await self._unreachable(pool, exc) from None
        try:
            try:
                if not write:
                    return await fn(db)
                async with db.transaction():
                    return await fn(db)
            finally:
                await pool.release(db)
        except _UNREACHABLE as exc:
            raise await self._unreachable(pool, exc) from None

    @staticmethod
    async def _unreachable(pool: asyncpg.Pool, exc: BaseException) -> StoreUnavailable:
        """The error for a connection that failed; connections opened before the cut are
        dead, so new ones are opened from the next call on."""
        await pool.expire_connections()
        return StoreUnavailable(f"the database is unreachable ({type(exc).__name__})")

    async def _run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """A read."""
        return await self._use(fn, write=False)

    async def _write(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """``fn`` in one transaction, committed when this returns."""
        return await self._use(fn, write=True)

    async def _execute(self, sql: str, *args: Any) -> str:
        """One statement, its own transaction (committed when this returns): one round trip
        where ``BEGIN`` … ``COMMIT`` would take three. Returns its status (``UPDATE 1``)."""

        async def execute(db: Connection) -> str:
            return str(await db.execute(sql, *args))

        return await self._use(execute, write=False)

    # Life cycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        where = safe_url(self.url)
        # No floor of idle connections: asyncpg would keep reconnecting (and logging) while
        # the database is away; a connection is opened when a request needs one.
        self._pool = pool = asyncpg.create_pool(
            self.url,
            min_size=0,
            max_size=self.pool_size,
            timeout=self.timeout_s,
            command_timeout=30,
            reset=_keep_session,
        )
        try:
            await pool
            async with pool.acquire(timeout=self.timeout_s) as db, db.transaction():
                await migrate(db)
        except _UNREACHABLE as exc:
            await self.close()
            raise StoreUnavailable(f"cannot reach database {where}: {_reason(exc)}") from None
        except _REFUSED as exc:  # the URL names a database or user that is not there
            await self.close()
            raise StoreUnavailable(f"cannot use database {where}: {_reason(exc)}") from None
        except (asyncpg.PostgresError, ValueError) as exc:
            await self.close()
            raise StoreError(f"cannot open database {where}: {_reason(exc)}") from None
        except StoreError:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool (waiting for what runs)."""
        await self._calls.drain()  # each write's caller has its outcome
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except _UNREACHABLE:
                pool.terminate()

    # Accounts -------------------------------------------------------------------

    async def create_user(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        token: tuple[str, float] | None = None,
    ) -> UserRecord:
        async def insert(db: Connection) -> UserRecord:
            try:
                await db.execute(
                    "INSERT INTO users VALUES ($1, $2, $3, $4, $5)",
                    username,
                    display_name,
                    _fold(display_name),
                    password_hash,
                    time.time(),
                )
            except asyncpg.UniqueViolationError:
                raise UsernameTaken(username) from None
            if token is not None:
                await _add_token(db, token[0], username, token[1])
            return UserRecord(username, display_name, password_hash)

        return await self._write(insert)

    async def get_user(self, username: str) -> UserRecord | None:
        async def select(db: Connection) -> UserRecord | None:
            row = await db.fetchrow(
                "SELECT * FROM users WHERE username = $1" + _NOT_DELETED, username
            )
            return None if row is None else _user(row)

        return await self._run(select)

    async def set_display_name(self, username: str, display_name: str) -> UserRecord:
        async def update(db: Connection) -> UserRecord:
            row = await db.fetchrow(
                """UPDATE users SET display_name = $1, display_name_folded = $2
                   WHERE username = $3 RETURNING *""",
                display_name,
                _fold(display_name),
                username,
            )
            return _user(row)

        return await self._write(update)

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        await self._execute(
            "UPDATE users SET password_hash = $1 WHERE username = $2", password_hash, username
        )

    async def search_users(self, query: str, limit: int) -> list[UserRecord]:
        async def select(db: Connection) -> list[UserRecord]:
            rows = await db.fetch(
                """SELECT * FROM users
                   WHERE (starts_with(username, $1) OR starts_with(display_name_folded, $2))"""
                + _NOT_DELETED
                + " ORDER BY username"
                + _BYTES
                + " LIMIT $3",
                query.lower(),
                _fold(query),
                limit,
            )
            return [_user(row) for row in rows]

        return await self._run(select)

    # Tokens ---------------------------------------------------------------------

    async def add_token(self, token_hash: str, username: str, expires_at: float) -> None:
        await self._write(lambda db: _add_token(db, token_hash, username, expires_at))

    async def user_for_token(self, token_hash: str, now: float) -> UserRecord | None:
        async def select(db: Connection) -> UserRecord | None:
            row = await db.fetchrow(
                """SELECT users.* FROM tokens JOIN users USING (username)
                   WHERE token_hash = $1 AND expires_at > $2""",
                token_hash,
                now,
            )
            return None if row is None else _user(row)

        return await self._run(select)

    async def revoke_token(self, token_hash: str) -> None:
        await self._execute("DELETE FROM tokens WHERE token_hash = $1", token_hash)

    # Account self-service ---------------------------------------------------------

    async def revoke_other_tokens(self, username: str, keep_token_hash: str | None) -> int:
        return await self._write(lambda db: _revoke_other_tokens(db, username, keep_token_hash))

    async def change_password(
        self, username: str, password_hash: str, keep_token_hash: str | None
    ) -> int:
        async def change(db: Connection) -> int:
            await db.execute(
                "UPDATE users SET password_hash = $1 WHERE username = $2", password_hash, username
            )
            return await _revoke_other_tokens(db, username, keep_token_hash)

        return await self._write(change)

    async def delete_user(self, username: str, at: float) -> None:
        async def delete(db: Connection) -> None:
            for statement in (
                "DELETE FROM tokens WHERE username = $1",
                "DELETE FROM contacts WHERE owner = $1 OR peer = $1",
                "DELETE FROM blocks WHERE owner = $1 OR peer = $1",
                "DELETE FROM calls WHERE caller = $1 OR callee = $1",
                "DELETE FROM meeting_attendance WHERE username = $1",
                "DELETE FROM meeting_invitations WHERE username = $1 OR inviter = $1",
                "UPDATE users SET display_name = $1, display_name_folded = $1,"
                " password_hash = NULL WHERE username = $1",
            ):
                await db.execute(statement, username)
            await db.execute(
                "UPDATE guest_links SET revoked_at = $2 WHERE owner = $1 AND revoked_at IS NULL",
                username,
                at,
            )
            await db.execute(
                "INSERT INTO deleted_users VALUES ($1, $2) ON CONFLICT DO NOTHING", username, at
            )

        await self._write(delete)

    async def block_user(self, username: str, peer: str, at: float) -> ContactStatus | None:
        async def change(db: Connection) -> ContactStatus | None:
            await _lock_pair(db, username, peer)
            status = await db.fetchval(
                "SELECT status FROM contacts WHERE owner = $1 AND peer = $2", username, peer
            )
            await db.execute(
                """DELETE FROM contacts
                   WHERE (owner = $1 AND peer = $2) OR (owner = $2 AND peer = $1)""",
                username,
                peer,
            )
            await db.execute(
                "INSERT INTO blocks VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", username, peer, at
            )
            return None if status is None else ContactStatus(status)

        return await self._write(change)

    async def unblock_user(self, username: str, peer: str) -> bool:
        async def delete(db: Connection) -> bool:
            status = await db.execute(
                "DELETE FROM blocks WHERE owner = $1 AND peer = $2", username, peer
            )
            return _count(status) > 0

        return await self._write(delete)

    async def blocked_users(self, username: str) -> list[UserRecord]:
        async def select(db: Connection) -> list[UserRecord]:
            rows = await db.fetch(
                """SELECT users.* FROM blocks JOIN users ON users.username = blocks.peer
                   WHERE blocks.owner = $1 ORDER BY users.username"""
                + _BYTES,
                username,
            )
            return [_user(row) for row in rows]

        return await self._run(select)

    async def blockers(self, a: str, b: str) -> set[str]:
        async def select(db: Connection) -> set[str]:
            rows = await db.fetch(
                """SELECT owner FROM blocks
                   WHERE (owner = $1 AND peer = $2) OR (owner = $2 AND peer = $1)""",
                a,
                b,
            )
            return {row[0] for row in rows}

        return await self._run(select)

    # Contacts -------------------------------------------------------------------

    async def list_contacts(self, username: str) -> list[ContactRecord]:
        async def select(db: Connection) -> list[ContactRecord]:
            rows = await db.fetch(
                """SELECT users.*, contacts.status FROM contacts
                   JOIN users ON users.username = contacts.peer
                   WHERE contacts.owner = $1 ORDER BY users.display_name_folded"""
                + _BYTES,
                username,
            )
            return [ContactRecord(_user(row), ContactStatus(row["status"])) for row in rows]

        return await self._run(select)

    async def contact_status(self, username: str, peer: str) -> ContactStatus | None:
        async def select(db: Connection) -> ContactStatus | None:
            status = await db.fetchval(
                "SELECT status FROM contacts WHERE owner = $1 AND peer = $2", username, peer
            )
            return None if status is None else ContactStatus(status)

        return await self._run(select)

    async def request_contact(self, username: str, peer: str) -> ContactStatus:
        async def change(db: Connection) -> ContactStatus:
            await _lock_pair(db, username, peer)
            status = await db.fetchval(
                "SELECT status FROM contacts WHERE owner = $1 AND peer = $2", username, peer
            )
            now = time.time()
            if status is None:
                await db.executemany(
                    "INSERT INTO contacts VALUES ($1, $2, $3, $4)",
                    [(username, peer, "outgoing", now), (peer, username, "incoming", now)],
                )
                return ContactStatus.OUTGOING
            found = ContactStatus(status)
            if found is ContactStatus.INCOMING:
                await _accept(db, username, peer, now)
                return ContactStatus.ACCEPTED
            return found

        return await self._write(change)

    async def accept_contact(self, username: str, peer: str) -> bool:
        async def change(db: Connection) -> bool:
            await _lock_pair(db, username, peer)
            status = await db.fetchval(
                "SELECT status FROM contacts WHERE owner = $1 AND peer = $2", username, peer
            )
            if status != ContactStatus.INCOMING:
                return False
            await _accept(db, username, peer, time.time())
            return True

        return await self._write(change)

    async def remove_contact(self, username: str, peer: str) -> bool:
        async def change(db: Connection) -> bool:
            status = await db.execute(
                """DELETE FROM contacts
                   WHERE (owner = $1 AND peer = $2) OR (owner = $2 AND peer = $1)""",
                username,
                peer,
            )
            return _count(status) > 0

        return await self._write(change)

    async def accepted_contacts(self, username: str) -> list[str]:
        async def select(db: Connection) -> list[str]:
            rows = await db.fetch(
                "SELECT peer FROM contacts WHERE owner = $1 AND status = 'accepted'", username
            )
            return [row[0] for row in rows]

        return await self._run(select)

    # Calls ----------------------------------------------------------------------

    async def insert_call(self, record: CallRecord) -> None:
        await self._calls.insert(record)

    async def call_answered(self, call_id: str, answered_at: float) -> None:
        await self._calls.answered(call_id, answered_at)

    async def call_ended(self, call_id: str, ended_at: float, reason: str) -> None:
        await self._calls.ended(call_id, ended_at, reason)

    async def list_calls(self, username: str, limit: int) -> list[CallRecord]:
        async def select(db: Connection) -> list[CallRecord]:
            rows = await db.fetch(
                """SELECT * FROM (
                       SELECT * FROM calls WHERE caller = $1 AND ended_at IS NOT NULL
                       UNION ALL
                       SELECT * FROM calls WHERE callee = $1 AND caller != $1
                                             AND ended_at IS NOT NULL) AS mine
                   ORDER BY started_at DESC LIMIT $2""",
                username,
                limit,
            )
            return [_call(row) for row in rows]

        return await self._run(select)

    async def end_unfinished_calls(self, ended_at: float, reason: str) -> int:
        async def update(db: Connection) -> int:
            return _count(
                await db.execute(
                    "UPDATE calls SET ended_at = $1, reason = $2 WHERE ended_at IS NULL",
                    ended_at,
                    reason,
                )
            )

        return await self._write(update)

    # Meetings -------------------------------------------------------------------

    async def insert_meeting(self, record: MeetingRecord, invited: Sequence[str]) -> None:
        async def insert(db: Connection) -> None:
            try:
                await db.execute(
                    "INSERT INTO meetings VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
                    record.meeting_id,
                    record.title,
                    record.host,
                    record.topology,
                    record.capacity,
                    record.started_at,
                )
            except asyncpg.UniqueViolationError:
                raise MeetingIdTaken(record.meeting_id) from None
            await _join(db, record.meeting_id, record.host, record.started_at)
            await _invite(db, record.meeting_id, record.host, invited, record.started_at)

        await self._write(insert)

    async def meeting_invited(
        self, meeting_id: str, inviter: str, usernames: Sequence[str], at: float
    ) -> None:
        await self._write(lambda db: _invite(db, meeting_id, inviter, usernames, at))

    async def meeting_declined(self, meeting_id: str, username: str, at: float) -> None:
        await self._write(lambda db: _answer(db, meeting_id, username, "declined", at))

    async def meeting_joined(self, meeting_id: str, username: str, at: float) -> None:
        await self._write(lambda db: _join(db, meeting_id, username, at))

    async def meeting_left(self, meeting_id: str, username: str, at: float, reason: str) -> None:
        await self._execute(
            """UPDATE meeting_attendance SET left_at = $1, reason = $2
               WHERE meeting_id = $3 AND username = $4 AND left_at IS NULL""",
            at,
            reason,
            meeting_id,
            username,
        )

    async def meeting_ended(self, meeting_id: str, at: float, reason: str) -> None:
        await self._write(lambda db: _end_meetings(db, at, reason, meeting_id))

    async def list_meetings(self, username: str, limit: int) -> list[MeetingRecord]:
        async def select(db: Connection) -> list[MeetingRecord]:
            rows = await db.fetch(
                """SELECT * FROM meetings WHERE ended_at IS NOT NULL AND meeting_id IN (
                       SELECT meeting_id FROM meeting_attendance WHERE username = $1
                       UNION
                       SELECT meeting_id FROM meeting_invitations WHERE username = $1)
                   ORDER BY started_at DESC LIMIT $2""",
                username,
                limit,
            )
            return [await _meeting(db, row, username) for row in rows]

        return await self._run(select)

    async def end_unfinished_meetings(self, ended_at: float, reason: str) -> int:
        return await self._write(lambda db: _end_meetings(db, ended_at, reason))

    # Guest links ----------------------------------------------------------------

    async def insert_guest_link(self, record: GuestLinkRecord) -> None:
        async def insert(db: Connection) -> None:
            await db.execute(
                "INSERT INTO guest_links VALUES ($1, $2, $3, $4, $5, $6, NULL)",
                record.link_id,
                record.code_hash,
                record.owner,
                record.meeting_id,
                record.created_at,
                record.expires_at,
            )

        await self._write(insert)

    async def guest_link(self, code_hash: str) -> GuestLinkRecord | None:
        async def select(db: Connection) -> GuestLinkRecord | None:
            row = await db.fetchrow("SELECT * FROM guest_links WHERE code_hash = $1", code_hash)
            return None if row is None else _guest_link(row)

        return await self._run(select)

    async def guest_links_of(self, owner: str, now: float) -> list[GuestLinkRecord]:
        async def select(db: Connection) -> list[GuestLinkRecord]:
            rows = await db.fetch(
                """SELECT * FROM guest_links
                   WHERE owner = $1 AND revoked_at IS NULL AND expires_at > $2
                   ORDER BY created_at DESC""",
                owner,
                now,
            )
            return [_guest_link(row) for row in rows]

        return await self._run(select)

    async def revoke_guest_link(
        self, link_id: str, owner: str, at: float
    ) -> GuestLinkRecord | None:
        async def update(db: Connection) -> GuestLinkRecord | None:
            await db.execute(
                """UPDATE guest_links SET revoked_at = $1
                   WHERE link_id = $2 AND owner = $3 AND revoked_at IS NULL""",
                at,
                link_id,
                owner,
            )
            row = await db.fetchrow(
                "SELECT * FROM guest_links WHERE link_id = $1 AND owner = $2", link_id, owner
            )
            return None if row is None else _guest_link(row)

        return await self._write(update)

    async def create_guest(
        self, username: str, display_name: str, link_id: str, at: float
    ) -> UserRecord:
        async def insert(db: Connection) -> UserRecord:
            try:
                await db.execute(
                    "INSERT INTO users VALUES ($1, $2, $3, NULL, $4)",
                    username,
                    display_name,
                    _fold(display_name),
                    at,
                )
            except asyncpg.UniqueViolationError:
                raise UsernameTaken(username) from None
            await db.execute("INSERT INTO guests VALUES ($1, $2, $3)", username, link_id, at)
            return UserRecord(username, display_name, None)

        return await self._write(insert)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def _add_token(db: Connection, token_hash: str, username: str, expires_at: float) -> None:
    """A new token; expired tokens of the same user are swept at the same time."""
    await db.execute(
        "DELETE FROM tokens WHERE username = $1 AND expires_at < $2", username, time.time()
    )
    await db.execute("INSERT INTO tokens VALUES ($1, $2, $3)", token_hash, username, expires_at)


async def _revoke_other_tokens(db: Connection, username: str, keep_token_hash: str | None) -> int:
    return _count(
        await db.execute(
            "DELETE FROM tokens WHERE username = $1 AND token_hash IS DISTINCT FROM $2",
            username,
            keep_token_hash,
        )
    )


async def _lock_pair(db: Connection, a: str, b: str) -> None:
    """Serialise changes to the relation between two users (both orders) till commit."""
    first, second = sorted((a, b))
    await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{first}\n{second}")


async def _accept(db: Connection, username: str, peer: str, now: float) -> None:
    await db.execute(
        """UPDATE contacts SET status = 'accepted', since = $1
           WHERE (owner = $2 AND peer = $3) OR (owner = $3 AND peer = $2)""",
        now,
        username,
        peer,
    )


async def _join(db: Connection, meeting_id: str, username: str, at: float) -> None:
    await db.execute(
        "INSERT INTO meeting_attendance VALUES ($1, $2, $3, NULL, NULL)", meeting_id, username, at
    )
    await _answer(db, meeting_id, username, "joined", at)


async def _invite(
    db: Connection, meeting_id: str, inviter: str, usernames: Sequence[str], at: float
) -> None:
    if not usernames:
        return
    await db.executemany(
        """INSERT INTO meeting_invitations VALUES ($1, $2, $3, $4, NULL, NULL)
           ON CONFLICT (meeting_id, username) DO UPDATE
           SET inviter = excluded.inviter, invited_at = excluded.invited_at,
               answer = NULL, answered_at = NULL""",
        [(meeting_id, username, inviter, at) for username in usernames],
    )


async def _answer(db: Connection, meeting_id: str, username: str, answer: str, at: float) -> None:
    await db.execute(
        """UPDATE meeting_invitations SET answer = $1, answered_at = $2
           WHERE meeting_id = $3 AND username = $4 AND answer IS NULL""",
        answer,
        at,
        meeting_id,
        username,
    )


async def _end_meetings(
    db: Connection, at: float, reason: str, meeting_id: str | None = None
) -> int:
    """End one open meeting (or, with no id, every open one); returns how many ended."""
    rows = await db.fetch(
        """UPDATE meetings SET ended_at = $1, reason = $2
           WHERE ended_at IS NULL AND ($3::text IS NULL OR meeting_id = $3) RETURNING meeting_id""",
        at,
        reason,
        meeting_id,
    )
    ids = [row[0] for row in rows]
    if ids:
        await db.execute(
            """UPDATE meeting_attendance SET left_at = $1, reason = $2
               WHERE left_at IS NULL AND meeting_id = ANY($3::text[])""",
            at,
            reason,
            ids,
        )
        await db.execute(
            """UPDATE meeting_invitations SET answer = 'ended', answered_at = $1
               WHERE answer IS NULL AND meeting_id = ANY($2::text[])""",
            at,
            ids,
        )
    return len(ids)


async def _meeting(db: Connection, row: Any, username: str) -> MeetingRecord:
    """A meeting row with its attendance, as ``username`` lists it."""
    stays = await db.fetch(
        """SELECT username, MIN(joined_at) AS first, MAX(left_at) AS last
           FROM meeting_attendance WHERE meeting_id = $1
           GROUP BY username ORDER BY first""",
        row["meeting_id"],
    )
    mine = next((stay for stay in stays if stay["username"] == username), None)
    return MeetingRecord(
        meeting_id=row["meeting_id"],
        host=row["host"],
        started_at=row["started_at"],
        title=row["title"],
        topology=row["topology"],
        capacity=row["capacity"],
        ended_at=row["ended_at"],
        reason=row["reason"],
        participants=tuple(stay["username"] for stay in stays),
        joined_at=mine["first"] if mine else None,
        left_at=mine["last"] if mine else None,
    )
