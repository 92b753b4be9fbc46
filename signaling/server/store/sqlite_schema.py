"""The SQLite store's schema: its migrations, and applying those a database has not had yet."""

from __future__ import annotations

import sqlite3

from signaling.protocol.constants import ECHO_DISPLAY_NAME, ECHO_USERNAME
from signaling.server.store.base import StoreError

#: Schema migrations, applied in order; ``PRAGMA user_version`` counts those applied.
#: Only ever append to this list.
MIGRATIONS: list[str] = [
    f"""
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        display_name_folded TEXT NOT NULL,
        password_hash TEXT,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX users_by_display_name ON users(display_name_folded);

    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(username),
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX tokens_by_user ON tokens(username);

    CREATE TABLE contacts (
        owner TEXT NOT NULL REFERENCES users(username),
        peer TEXT NOT NULL REFERENCES users(username),
        status TEXT NOT NULL CHECK (status IN ('accepted', 'incoming', 'outgoing')),
        since REAL NOT NULL,
        PRIMARY KEY (owner, peer)
    ) WITHOUT ROWID;

    CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        caller TEXT NOT NULL REFERENCES users(username),
        callee TEXT NOT NULL REFERENCES users(username),
        audio INTEGER NOT NULL,
        video INTEGER NOT NULL,
        started_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL,
        reason TEXT
    );
    CREATE INDEX calls_by_caller ON calls(caller, started_at);
    CREATE INDEX calls_by_callee ON calls(callee, started_at);

    INSERT INTO users VALUES ('{ECHO_USERNAME}', '{ECHO_DISPLAY_NAME}',
                              '{ECHO_DISPLAY_NAME.casefold()}', NULL, 0);
    """,
    # 2: meetings (protocol v1.1). Attendance has a row per stay: one may leave and come back.
    """
    CREATE TABLE meetings (
        meeting_id TEXT PRIMARY KEY,
        title TEXT,
        host TEXT NOT NULL REFERENCES users(username),
        topology TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        reason TEXT
    );

    CREATE TABLE meeting_attendance (
        meeting_id TEXT NOT NULL REFERENCES meetings(meeting_id),
        username TEXT NOT NULL REFERENCES users(username),
        joined_at REAL NOT NULL,
        left_at REAL,
        reason TEXT
    );
    CREATE INDEX attendance_by_meeting ON meeting_attendance(meeting_id, username);
    CREATE INDEX attendance_by_user ON meeting_attendance(username);

    CREATE TABLE meeting_invitations (
        meeting_id TEXT NOT NULL REFERENCES meetings(meeting_id),
        username TEXT NOT NULL REFERENCES users(username),
        inviter TEXT NOT NULL REFERENCES users(username),
        invited_at REAL NOT NULL,
        answer TEXT CHECK (answer IN ('joined', 'declined', 'ended')),
        answered_at REAL,
        PRIMARY KEY (meeting_id, username)
    ) WITHOUT ROWID;
    CREATE INDEX invitations_by_user ON meeting_invitations(username);
    """,
    # 3: guest links (protocol v1.1). The code is kept only as its SHA-256; each guest is a
    # row of users (no password: it cannot log in) and one of guests, naming its link.
    """
    CREATE TABLE guest_links (
        link_id TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL REFERENCES users(username),
        meeting_id TEXT REFERENCES meetings(meeting_id),
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked_at REAL
    ) WITHOUT ROWID;
    CREATE INDEX guest_links_by_owner ON guest_links(owner, created_at);

    CREATE TABLE guests (
        username TEXT PRIMARY KEY REFERENCES users(username),
        link_id TEXT NOT NULL REFERENCES guest_links(link_id),
        joined_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: account self-service (protocol v1.1). A deleted account keeps a row in users (its name
    # stays reserved and old meetings keep their host) but is listed in deleted_users.
    """
    CREATE TABLE blocks (
        owner TEXT NOT NULL REFERENCES users(username),
        peer TEXT NOT NULL REFERENCES users(username),
        since REAL NOT NULL,
        PRIMARY KEY (owner, peer)
    ) WITHOUT ROWID;
    CREATE INDEX blocks_by_peer ON blocks(peer);

    CREATE TABLE deleted_users (
        username TEXT PRIMARY KEY REFERENCES users(username),
        deleted_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
]


def migrate(db: sqlite3.Connection) -> None:
    """Bring ``db`` up to this server's schema; a newer one than it knows is refused."""
    while True:
        # The version is read inside the write transaction: two servers opening one file at
        # once must not both apply the same migration ("table ... already exists").
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the database has schema version {version}, newer than this server knows "
                    f"({len(MIGRATIONS)}); upgrade Parley"
                )
            if version == len(MIGRATIONS):
                db.execute("COMMIT")
                return
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
