"""The SQLite store: one file, WAL mode, a versioned schema.

All SQL runs on one dedicated thread, so a slow disk never stalls the event
loop and writes are serialised without locks in Python. Each changing
method is one transaction, committed before its awaitable returns.

Durability: every acknowledged change survives a killed process. Accounts, contacts,
tokens and meetings survive a power cut too: their commits sync the log (``synchronous=FULL``
for that transaction). The calls' history rows, a thousand a second under load, are committed
without a sync of their own (``synchronous=NORMAL`` in WAL mode: :mod:`.sqlite_writes`); the
log is synced by the next synced commit or checkpoint, at most about a second later
(:mod:`.sqlite_checkpoints`), so a power cut may take the history of the last second's calls.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from signaling.protocol.constants import ContactStatus
from signaling.protocol.messages import Media
from signaling.server.store.base import (
    CallIdTaken,
    CallRecord,
    ContactRecord,
    GuestLinkRecord,
    MeetingIdTaken,
    MeetingRecord,
    Store,
    StoreError,
    UsernameTaken,
    UserRecord,
)
from signaling.server.store.sqlite_checkpoints import BACKSTOP_PAGES, Checkpointer
from signaling.server.store.sqlite_schema import migrate
from signaling.server.store.sqlite_writes import GroupCommit

T = TypeVar("T")


#: Appended to a query on users: leaves deleted accounts out.
_NOT_DELETED = " AND username NOT IN (SELECT username FROM deleted_users)"

#: Sorts after every character, for prefix ranges that can use an index.
_PREFIX_END = "\U0010ffff"


def _fold(text: str) -> str:
    return text.casefold()


def _user(row: sqlite3.Row) -> UserRecord:
    return UserRecord(row["username"], row["display_name"], row["password_hash"])


def _call(row: sqlite3.Row) -> CallRecord:
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


class SQLiteStore(Store):
    """:class:`Store` on a SQLite file (``":memory:"`` works too, for quick tests).

    Writes go to one connection on one thread, with *group commit* (:mod:`.sqlite_writes`):
    every caller is answered only after its transaction's ``COMMIT`` (synced unless it holds
    only calls' history). Reads run on a second connection and thread, which WAL mode lets
    proceed while the writer commits; checkpoints on a third (:mod:`.sqlite_checkpoints`). The
    schema and its migrations are in :mod:`.sqlite_schema`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-store-write")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-store-read")
        self._read_db: sqlite3.Connection | None = None
        self._writes = GroupCommit(self._writer)
        #: Checkpoints off the writer's thread (a file only).
        self.checkpoints: Checkpointer | None = None

    @property
    def commits(self) -> int:
        """Transactions that committed a write (the tests check that writes share them)."""
        return self._writes.commits

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read on the reading connection."""
        db = self._read_db
        if db is None:
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, fn, db)

    # Life cycle ---------------------------------------------------------

    async def open(self) -> None:
        """Open the file, set WAL mode and apply pending migrations."""
        loop = asyncio.get_running_loop()
        self._writes.db = await loop.run_in_executor(self._writer, self._open_sync)
        if self.path == ":memory:":
            # A second connection would be a second, empty database: share the writer's.
            self._read_db, self._reader = self._writes.db, self._writer
        else:
            self._read_db = await loop.run_in_executor(self._reader, self._connect)
            self.checkpoints = Checkpointer(self.path)
            self.checkpoints.start()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        return db

    def _open_sync(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            path = Path(self.path)
            if path.is_dir():
                raise StoreError(f"cannot open database {self.path}: it is a directory")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot open database {self.path}: {exc.strerror}") from None
        db = self._connect()
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if self.path != ":memory:" and mode != "wal":
                raise StoreError(f"cannot open database {self.path}: WAL mode unavailable")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            migrate(db)
            # From now on a commit syncs only when a write asks for it (sqlite_writes.py), and
            # checkpoints run on a thread of their own (sqlite_checkpoints.py).
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        return db

    async def close(self) -> None:
        """Wait for pending writes, close both connections and stop the threads."""
        await self._writes.drain()
        loop = asyncio.get_running_loop()
        if self.checkpoints is not None:
            checkpoints, self.checkpoints = self.checkpoints, None
            # On the store's own writer thread, idle by now: the loop's default executor is
            # Qt's threads in the app (qasync), which would outlive the store.
            await loop.run_in_executor(self._writer, checkpoints.stop)
        if self._read_db is not None and self._read_db is not self._writes.db:
            read_db, self._read_db = self._read_db, None
            await loop.run_in_executor(self._reader, read_db.close)
        if self._writes.db is not None:
            db, self._writes.db = self._writes.db, None
            await loop.run_in_executor(self._writer, db.close)
        self._read_db = None
        self._reader.shutdown(wait=True)
        self._writer.shutdown(wait=True)

    # Accounts -------------------------------------------------------------

    async def create_user(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        token: tuple[str, float] | None = None,
    ) -> UserRecord:
        """Insert an account (and its first token) in one transaction; :class:`UsernameTaken`
        if the name exists."""

        def insert(db: sqlite3.Connection) -> UserRecord:
            try:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                    (username, display_name, _fold(display_name), password_hash, time.time()),
                )
            except sqlite3.IntegrityError:
                raise UsernameTaken(username) from None
            if token is not None:
                _add_token(db, token[0], username, token[1])
            return UserRecord(username, display_name, password_hash)

        return await self._writes.run(insert)

    async def get_user(self, username: str) -> UserRecord | None:
        """Look an account up by username."""

        def select(db: sqlite3.Connection) -> UserRecord | None:
            row = db.execute(
                "SELECT * FROM users WHERE username = ?" + _NOT_DELETED, (username,)
            ).fetchone()
            return None if row is None else _user(row)

        return await self._run(select)

    async def set_display_name(self, username: str, display_name: str) -> UserRecord:
        """Rename; returns the updated account."""

        def update(db: sqlite3.Connection) -> UserRecord:
            db.execute(
                "UPDATE users SET display_name = ?, display_name_folded = ? WHERE username = ?",
                (display_name, _fold(display_name), username),
            )
            row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            return _user(row)

        return await self._writes.run(update)

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        """Store a rehashed password."""
        await self._writes.run(
            lambda db: db.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username)
            )
        )

    async def search_users(self, query: str, limit: int) -> list[UserRecord]:
        """Prefix search on username and folded display name, both through an index."""
        name_prefix = query.lower()
        display_prefix = _fold(query)

        def select(db: sqlite3.Connection) -> list[UserRecord]:
            rows = db.execute(
                """
                SELECT * FROM (
                    SELECT * FROM users WHERE username >= :name AND username < :name || :end
                    UNION
                    SELECT * FROM users
                     WHERE display_name_folded >= :shown AND display_name_folded < :shown || :end)
                WHERE username NOT IN (SELECT username FROM deleted_users)
                ORDER BY username LIMIT :limit
                """,
                {"name": name_prefix, "shown": display_prefix, "end": _PREFIX_END, "limit": limit},
            ).fetchall()
            return [_user(row) for row in rows]

        return await self._run(select)

    # Tokens ---------------------------------------------------------------

    async def add_token(self, token_hash: str, username: str, expires_at: float) -> None:
        """Store a token hash; expired tokens of the same user are swept at the same time."""
        await self._writes.run(lambda db: _add_token(db, token_hash, username, expires_at))

    async def user_for_token(self, token_hash: str, now: float) -> UserRecord | None:
        """The owner of a valid token."""

        def select(db: sqlite3.Connection) -> UserRecord | None:
            row = db.execute(
                """SELECT users.* FROM tokens JOIN users USING (username)
                   WHERE token_hash = ? AND expires_at > ?""",
                (token_hash, now),
            ).fetchone()
            return None if row is None else _user(row)

        return await self._run(select)

    async def revoke_token(self, token_hash: str) -> None:
        """Delete a token."""
        await self._writes.run(
            lambda db: db.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))
        )

    # Account self-service -------------------------------------------------

    async def revoke_other_tokens(self, username: str, keep_token_hash: str | None) -> int:
        """Delete every token of the user but one."""
        return await self._writes.run(
            lambda db: _revoke_other_tokens(db, username, keep_token_hash)
        )

    async def change_password(
        self, username: str, password_hash: str, keep_token_hash: str | None
    ) -> int:
        """The new hash and the other tokens revoked, in one transaction."""

        def change(db: sqlite3.Connection) -> int:
            db.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username)
            )
            return _revoke_other_tokens(db, username, keep_token_hash)

        return await self._writes.run(change)

    async def delete_user(self, username: str, at: float) -> None:
        """Everything of the account in one transaction; the users row stays as a tombstone."""

        def delete(db: sqlite3.Connection) -> None:
            who = {"user": username, "at": at}
            for statement in (
                "DELETE FROM tokens WHERE username = :user",
                "DELETE FROM contacts WHERE owner = :user OR peer = :user",
                "DELETE FROM blocks WHERE owner = :user OR peer = :user",
                "DELETE FROM calls WHERE caller = :user OR callee = :user",
                "DELETE FROM meeting_attendance WHERE username = :user",
                "DELETE FROM meeting_invitations WHERE username = :user OR inviter = :user",
                "UPDATE guest_links SET revoked_at = :at"
                " WHERE owner = :user AND revoked_at IS NULL",
                # The name and password go; the row keeps the username reserved.
                "UPDATE users SET display_name = :user, display_name_folded = :user,"
                " password_hash = NULL WHERE username = :user",
                "INSERT OR IGNORE INTO deleted_users VALUES (:user, :at)",
            ):
                db.execute(statement, who)

        await self._writes.run(delete)

    async def block_user(self, username: str, peer: str, at: float) -> ContactStatus | None:
        """The block, and the relation between the two removed, in one transaction."""

        def change(db: sqlite3.Connection) -> ContactStatus | None:
            row = db.execute(
                "SELECT status FROM contacts WHERE owner = ? AND peer = ?", (username, peer)
            ).fetchone()
            db.execute(
                """DELETE FROM contacts
                   WHERE (owner = :a AND peer = :b) OR (owner = :b AND peer = :a)""",
                {"a": username, "b": peer},
            )
            db.execute("INSERT OR IGNORE INTO blocks VALUES (?, ?, ?)", (username, peer, at))
            return None if row is None else ContactStatus(row["status"])

        return await self._writes.run(change)

    async def unblock_user(self, username: str, peer: str) -> bool:
        """Delete the block's row."""
        return await self._writes.run(
            lambda db: (
                db.execute(
                    "DELETE FROM blocks WHERE owner = ? AND peer = ?", (username, peer)
                ).rowcount
                > 0
            )
        )

    async def blocked_users(self, username: str) -> list[UserRecord]:
        """Blocked accounts, by username."""

        def select(db: sqlite3.Connection) -> list[UserRecord]:
            rows = db.execute(
                """SELECT users.* FROM blocks JOIN users ON users.username = blocks.peer
                   WHERE blocks.owner = ? ORDER BY users.username""",
                (username,),
            ).fetchall()
            return [_user(row) for row in rows]

        return await self._run(select)

    async def blockers(self, a: str, b: str) -> set[str]:
        """Who of the two blocked the other."""

        def select(db: sqlite3.Connection) -> set[str]:
            rows = db.execute(
                """SELECT owner FROM blocks
                   WHERE (owner = :a AND peer = :b) OR (owner = :b AND peer = :a)""",
                {"a": a, "b": b},
            ).fetchall()
            return {row[0] for row in rows}

        return await self._run(select)

    # Contacts -------------------------------------------------------------

    async def list_contacts(self, username: str) -> list[ContactRecord]:
        """Relations of one user, with the peers' accounts."""

        def select(db: sqlite3.Connection) -> list[ContactRecord]:
            rows = db.execute(
                """SELECT users.*, contacts.status FROM contacts
                   JOIN users ON users.username = contacts.peer
                   WHERE contacts.owner = ? ORDER BY users.display_name_folded""",
                (username,),
            ).fetchall()
            return [ContactRecord(_user(row), ContactStatus(row["status"])) for row in rows]

        return await self._run(select)

    async def contact_status(self, username: str, peer: str) -> ContactStatus | None:
        """One relation, from ``username``'s side."""

        def select(db: sqlite3.Connection) -> ContactStatus | None:
            row = db.execute(
                "SELECT status FROM contacts WHERE owner = ? AND peer = ?", (username, peer)
            ).fetchone()
            return None if row is None else ContactStatus(row["status"])

        return await self._run(select)

    async def request_contact(self, username: str, peer: str) -> ContactStatus:
        """Ask, or accept a request going the other way, in one transaction."""

        def change(db: sqlite3.Connection) -> ContactStatus:
            row = db.execute(
                "SELECT status FROM contacts WHERE owner = ? AND peer = ?", (username, peer)
            ).fetchone()
            now = time.time()
            if row is None:
                db.executemany(
                    "INSERT INTO contacts VALUES (?, ?, ?, ?)",
                    [(username, peer, "outgoing", now), (peer, username, "incoming", now)],
                )
                return ContactStatus.OUTGOING
            status = ContactStatus(row["status"])
            if status is ContactStatus.INCOMING:
                _accept(db, username, peer, now)
                return ContactStatus.ACCEPTED
            return status

        return await self._writes.run(change)

    async def accept_contact(self, username: str, peer: str) -> bool:
        """Accept an incoming request."""

        def change(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT status FROM contacts WHERE owner = ? AND peer = ?", (username, peer)
            ).fetchone()
            if row is None or row["status"] != ContactStatus.INCOMING:
                return False
            _accept(db, username, peer, time.time())
            return True

        return await self._writes.run(change)

    async def remove_contact(self, username: str, peer: str) -> bool:
        """Delete both rows of a relation."""

        def change(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                """DELETE FROM contacts
                   WHERE (owner = :a AND peer = :b) OR (owner = :b AND peer = :a)""",
                {"a": username, "b": peer},
            )
            return cursor.rowcount > 0

        return await self._writes.run(change)

    async def accepted_contacts(self, username: str) -> list[str]:
        """Peers with status accepted."""

        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT peer FROM contacts WHERE owner = ? AND status = 'accepted'", (username,)
            ).fetchall()
            return [row[0] for row in rows]

        return await self._run(select)

    # Calls ----------------------------------------------------------------

    async def insert_call(self, record: CallRecord) -> None:
        """Record a call at invite time."""

        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.call_id,
                        record.caller,
                        record.callee,
                        int(record.media.audio),
                        int(record.media.video),
                        record.started_at,
                        record.answered_at,
                        record.ended_at,
                        record.reason,
                    ),
                )
            except sqlite3.IntegrityError:
                raise CallIdTaken(record.call_id) from None

        await self._writes.run(insert, one_statement=True, synced=False)

    async def call_answered(self, call_id: str, answered_at: float) -> None:
        """Set the answer time."""
        await self._writes.run(
            lambda db: db.execute(
                "UPDATE calls SET answered_at = ? WHERE call_id = ?", (answered_at, call_id)
            ),
            one_statement=True,
            synced=False,
        )

    async def call_ended(self, call_id: str, ended_at: float, reason: str) -> None:
        """Set the end time and reason (once)."""
        await self._writes.run(
            lambda db: db.execute(
                "UPDATE calls SET ended_at = ?, reason = ? WHERE call_id = ? AND ended_at IS NULL",
                (ended_at, reason, call_id),
            ),
            one_statement=True,
            synced=False,
        )

    async def list_calls(self, username: str, limit: int) -> list[CallRecord]:
        """Ended calls of one user, newest first, through the two indexes."""

        def select(db: sqlite3.Connection) -> list[CallRecord]:
            rows = db.execute(
                """SELECT * FROM (
                       SELECT * FROM calls WHERE caller = :user AND ended_at IS NOT NULL
                       UNION ALL
                       SELECT * FROM calls WHERE callee = :user AND caller != :user
                                             AND ended_at IS NOT NULL)
                   ORDER BY started_at DESC LIMIT :limit""",
                {"user": username, "limit": limit},
            ).fetchall()
            return [_call(row) for row in rows]

        return await self._run(select)

    async def end_unfinished_calls(self, ended_at: float, reason: str) -> int:
        """Close calls that were open when a previous run stopped."""

        def update(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE calls SET ended_at = ?, reason = ? WHERE ended_at IS NULL",
                (ended_at, reason),
            )
            return cursor.rowcount

        return await self._writes.run(update)

    # Meetings -------------------------------------------------------------

    async def insert_meeting(self, record: MeetingRecord, invited: Sequence[str]) -> None:
        """The meeting, its host's first stay and the host's invitations, in one transaction."""

        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO meetings VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                    (
                        record.meeting_id,
                        record.title,
                        record.host,
                        record.topology,
                        record.capacity,
                        record.started_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise MeetingIdTaken(record.meeting_id) from None
            _join(db, record.meeting_id, record.host, record.started_at)
            _invite(db, record.meeting_id, record.host, invited, record.started_at)

        await self._writes.run(insert)

    async def meeting_invited(
        self, meeting_id: str, inviter: str, usernames: Sequence[str], at: float
    ) -> None:
        """Pending invitations, replacing declined ones."""
        await self._writes.run(lambda db: _invite(db, meeting_id, inviter, usernames, at))

    async def meeting_declined(self, meeting_id: str, username: str, at: float) -> None:
        """Close a pending invitation as declined."""
        await self._writes.run(lambda db: _answer(db, meeting_id, username, "declined", at))

    async def meeting_joined(self, meeting_id: str, username: str, at: float) -> None:
        """A new stay; a pending invitation is answered by it."""
        await self._writes.run(lambda db: _join(db, meeting_id, username, at))

    async def meeting_left(self, meeting_id: str, username: str, at: float, reason: str) -> None:
        """Close the participant's open stay."""
        await self._writes.run(
            lambda db: db.execute(
                """UPDATE meeting_attendance SET left_at = ?, reason = ?
                   WHERE meeting_id = ? AND username = ? AND left_at IS NULL""",
                (at, reason, meeting_id, username),
            )
        )

    async def meeting_ended(self, meeting_id: str, at: float, reason: str) -> None:
        """End the meeting once, close its open stays and pending invitations."""
        await self._writes.run(lambda db: _end_meetings(db, at, reason, meeting_id))

    async def list_meetings(self, username: str, limit: int) -> list[MeetingRecord]:
        """Ended meetings the user attended or was invited to, with everyone who attended."""

        def select(db: sqlite3.Connection) -> list[MeetingRecord]:
            rows = db.execute(
                """SELECT * FROM meetings WHERE ended_at IS NOT NULL AND meeting_id IN (
                       SELECT meeting_id FROM meeting_attendance WHERE username = :user
                       UNION
                       SELECT meeting_id FROM meeting_invitations WHERE username = :user)
                   ORDER BY started_at DESC LIMIT :limit""",
                {"user": username, "limit": limit},
            ).fetchall()
            return [_meeting(db, row, username) for row in rows]

        return await self._run(select)

    async def end_unfinished_meetings(self, ended_at: float, reason: str) -> int:
        """End meetings that were open when a previous run stopped."""
        return await self._writes.run(lambda db: _end_meetings(db, ended_at, reason))

    # Guest links ------------------------------------------------------------------

    async def insert_guest_link(self, record: GuestLinkRecord) -> None:
        """Remember a link (its code's hash only)."""
        await self._writes.run(
            lambda db: db.execute(
                "INSERT INTO guest_links VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    record.link_id,
                    record.code_hash,
                    record.owner,
                    record.meeting_id,
                    record.created_at,
                    record.expires_at,
                ),
            )
        )

    async def guest_link(self, code_hash: str) -> GuestLinkRecord | None:
        """The link of a code, by its hash."""

        def select(db: sqlite3.Connection) -> GuestLinkRecord | None:
            row = db.execute(
                "SELECT * FROM guest_links WHERE code_hash = ?", (code_hash,)
            ).fetchone()
            return None if row is None else _guest_link(row)

        return await self._run(select)

    async def guest_links_of(self, owner: str, now: float) -> list[GuestLinkRecord]:
        """Links that still admit guests, newest first."""

        def select(db: sqlite3.Connection) -> list[GuestLinkRecord]:
            rows = db.execute(
                """SELECT * FROM guest_links
                   WHERE owner = ? AND revoked_at IS NULL AND expires_at > ?
                   ORDER BY created_at DESC""",
                (owner, now),
            ).fetchall()
            return [_guest_link(row) for row in rows]

        return await self._run(select)

    async def revoke_guest_link(
        self, link_id: str, owner: str, at: float
    ) -> GuestLinkRecord | None:
        """Mark the link revoked (a second revocation keeps the first time)."""

        def update(db: sqlite3.Connection) -> GuestLinkRecord | None:
            db.execute(
                """UPDATE guest_links SET revoked_at = ?
                   WHERE link_id = ? AND owner = ? AND revoked_at IS NULL""",
                (at, link_id, owner),
            )
            row = db.execute(
                "SELECT * FROM guest_links WHERE link_id = ? AND owner = ?", (link_id, owner)
            ).fetchone()
            return None if row is None else _guest_link(row)

        return await self._writes.run(update)

    async def create_guest(
        self, username: str, display_name: str, link_id: str, at: float
    ) -> UserRecord:
        """An account with no password (it cannot log in) and its guest row."""

        def insert(db: sqlite3.Connection) -> UserRecord:
            try:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, NULL, ?)",
                    (username, display_name, _fold(display_name), at),
                )
            except sqlite3.IntegrityError:
                raise UsernameTaken(username) from None
            db.execute("INSERT INTO guests VALUES (?, ?, ?)", (username, link_id, at))
            return UserRecord(username, display_name, None)

        return await self._writes.run(insert)


def _add_token(db: sqlite3.Connection, token_hash: str, username: str, expires_at: float) -> None:
    """A new token; expired tokens of the same user are swept at the same time."""
    db.execute("DELETE FROM tokens WHERE username = ? AND expires_at < ?", (username, time.time()))
    db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (token_hash, username, expires_at))


def _revoke_other_tokens(db: sqlite3.Connection, username: str, keep_token_hash: str | None) -> int:
    return db.execute(
        "DELETE FROM tokens WHERE username = ? AND token_hash IS NOT ?",
        (username, keep_token_hash),
    ).rowcount


def _join(db: sqlite3.Connection, meeting_id: str, username: str, at: float) -> None:
    db.execute(
        "INSERT INTO meeting_attendance VALUES (?, ?, ?, NULL, NULL)", (meeting_id, username, at)
    )
    _answer(db, meeting_id, username, "joined", at)


def _invite(
    db: sqlite3.Connection, meeting_id: str, inviter: str, usernames: Sequence[str], at: float
) -> None:
    db.executemany(
        """INSERT INTO meeting_invitations VALUES (?, ?, ?, ?, NULL, NULL)
           ON CONFLICT (meeting_id, username) DO UPDATE
           SET inviter = excluded.inviter, invited_at = excluded.invited_at,
               answer = NULL, answered_at = NULL""",
        [(meeting_id, username, inviter, at) for username in usernames],
    )


def _answer(db: sqlite3.Connection, meeting_id: str, username: str, answer: str, at: float) -> None:
    db.execute(
        """UPDATE meeting_invitations SET answer = ?, answered_at = ?
           WHERE meeting_id = ? AND username = ? AND answer IS NULL""",
        (answer, at, meeting_id, username),
    )


def _end_meetings(
    db: sqlite3.Connection, at: float, reason: str, meeting_id: str | None = None
) -> int:
    """End one open meeting (or, with no id, every open one); returns how many ended."""
    # Two fixed conditions, so that ending one meeting is a primary-key lookup.
    which = "meeting_id = :id AND ended_at IS NULL" if meeting_id else "ended_at IS NULL"
    params = {"at": at, "reason": reason, "id": meeting_id}
    ids = "(SELECT meeting_id FROM meetings WHERE " + which + ")"
    db.execute(
        "UPDATE meeting_attendance SET left_at = :at, reason = :reason"
        " WHERE left_at IS NULL AND meeting_id IN " + ids,
        params,
    )
    db.execute(
        "UPDATE meeting_invitations SET answer = 'ended', answered_at = :at"
        " WHERE answer IS NULL AND meeting_id IN " + ids,
        params,
    )
    cursor = db.execute(
        "UPDATE meetings SET ended_at = :at, reason = :reason WHERE " + which, params
    )
    return cursor.rowcount


def _meeting(db: sqlite3.Connection, row: sqlite3.Row, username: str) -> MeetingRecord:
    """A meeting row with its attendance, as ``username`` lists it."""
    stays = db.execute(
        """SELECT username, MIN(joined_at) AS first, MAX(left_at) AS last
           FROM meeting_attendance WHERE meeting_id = ?
           GROUP BY username ORDER BY first""",
        (row["meeting_id"],),
    ).fetchall()
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


def _guest_link(row: sqlite3.Row) -> GuestLinkRecord:
    return GuestLinkRecord(
        link_id=row["link_id"],
        code_hash=row["code_hash"],
        owner=row["owner"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        meeting_id=row["meeting_id"],
        revoked_at=row["revoked_at"],
    )


def _accept(db: sqlite3.Connection, username: str, peer: str, now: float) -> None:
    db.execute(
        """UPDATE contacts SET status = 'accepted', since = :now
           WHERE (owner = :a AND peer = :b) OR (owner = :b AND peer = :a)""",
        {"now": now, "a": username, "b": peer},
    )
