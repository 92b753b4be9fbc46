"""The PostgreSQL store's schema: SQLite's, in PostgreSQL's words, versioned the same way.

``MIGRATIONS`` is only ever appended to, and the table ``parley_schema`` counts those applied.
Instances that start together migrate one at a time (a transaction-scoped advisory lock).
"""

from __future__ import annotations

from typing import Any

from signaling.protocol.constants import ECHO_DISPLAY_NAME, ECHO_USERNAME
from signaling.server.store.base import StoreError

Connection = Any  # asyncpg.Connection; asyncpg ships no stubs

#: Schema migrations, applied in order, one transaction each. Only ever append to this list.
MIGRATIONS: list[str] = [
    # 1: accounts, tokens, contacts, calls.
    f"""
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        display_name_folded TEXT NOT NULL,
        password_hash TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX users_by_display_name ON users(display_name_folded text_pattern_ops);
    CREATE INDEX users_by_username_prefix ON users(username text_pattern_ops);

    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(username),
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX tokens_by_user ON tokens(username);

    CREATE TABLE contacts (
        owner TEXT NOT NULL REFERENCES users(username),
        peer TEXT NOT NULL REFERENCES users(username),
        status TEXT NOT NULL CHECK (status IN ('accepted', 'incoming', 'outgoing')),
        since DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (owner, peer)
    );

    CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        caller TEXT NOT NULL REFERENCES users(username),
        callee TEXT NOT NULL REFERENCES users(username),
        audio INTEGER NOT NULL,
        video INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        answered_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        reason TEXT
    );
    CREATE INDEX calls_by_caller ON calls(caller, started_at);
    CREATE INDEX calls_by_callee ON calls(callee, started_at);
    CREATE INDEX calls_open ON calls(call_id) WHERE ended_at IS NULL;

    INSERT INTO users VALUES ('{ECHO_USERNAME}', '{ECHO_DISPLAY_NAME}',
                              '{ECHO_DISPLAY_NAME.casefold()}', NULL, 0);
    """,
    # 2: meetings. Attendance has a row per stay: one may leave and come back.
    """
    CREATE TABLE meetings (
        meeting_id TEXT PRIMARY KEY,
        title TEXT,
        host TEXT NOT NULL REFERENCES users(username),
        topology TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        reason TEXT
    );

    CREATE TABLE meeting_attendance (
        meeting_id TEXT NOT NULL REFERENCES meetings(meeting_id),
        username TEXT NOT NULL REFERENCES users(username),
        joined_at DOUBLE PRECISION NOT NULL,
        left_at DOUBLE PRECISION,
        reason TEXT
    );
    CREATE INDEX attendance_by_meeting ON meeting_attendance(meeting_id, username);
    CREATE INDEX attendance_by_user ON meeting_attendance(username);

    CREATE TABLE meeting_invitations (
        meeting_id TEXT NOT NULL REFERENCES meetings(meeting_id),
        username TEXT NOT NULL REFERENCES users(username),
        inviter TEXT NOT NULL REFERENCES users(username),
        invited_at DOUBLE PRECISION NOT NULL,
        answer TEXT CHECK (answer IN ('joined', 'declined', 'ended')),
        answered_at DOUBLE PRECISION,
        PRIMARY KEY (meeting_id, username)
    );
    CREATE INDEX invitations_by_user ON meeting_invitations(username);
    """,
    # 3: guest links. The code is kept only as its SHA-256.
    """
    CREATE TABLE guest_links (
        link_id TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL REFERENCES users(username),
        meeting_id TEXT REFERENCES meetings(meeting_id),
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    CREATE INDEX guest_links_by_owner ON guest_links(owner, created_at);

    CREATE TABLE guests (
        username TEXT PRIMARY KEY REFERENCES users(username),
        link_id TEXT NOT NULL REFERENCES guest_links(link_id),
        joined_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 4: account self-service. A deleted account keeps its users row (the name stays reserved).
    """
    CREATE TABLE blocks (
        owner TEXT NOT NULL REFERENCES users(username),
        peer TEXT NOT NULL REFERENCES users(username),
        since DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (owner, peer)
    );
    CREATE INDEX blocks_by_peer ON blocks(peer);

    CREATE TABLE deleted_users (
        username TEXT PRIMARY KEY REFERENCES users(username),
        deleted_at DOUBLE PRECISION NOT NULL
    );
    """,
]


async def migrate(db: Connection) -> None:
    """Bring the database up to this server's schema, in ``db``'s transaction; a newer one
    than it knows is refused."""
    # One instance at a time; the others find the work done.
    await db.execute("SELECT pg_advisory_xact_lock(4242001)")
    await db.execute("CREATE TABLE IF NOT EXISTS parley_schema (version INTEGER NOT NULL)")
    version = await db.fetchval("SELECT version FROM parley_schema")
    if version is None:
        await db.execute("INSERT INTO parley_schema VALUES (0)")
        version = 0
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the database has schema version {version}, newer than this server knows "
            f"({len(MIGRATIONS)}); upgrade Parley"
        )
    for number in range(version, len(MIGRATIONS)):
        await db.execute(MIGRATIONS[number])
        await db.execute("UPDATE parley_schema SET version = $1", number + 1)
