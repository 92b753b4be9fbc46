"""Persistence behind one interface (:class:`Store`); SQLite is the default, PostgreSQL the
choice for several server instances (``--db postgresql://…``)."""

from pathlib import Path

from signaling.server.store.base import (
    CallIdTaken,
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
from signaling.server.store.sqlite import SQLiteStore


def store_for(db: str | Path) -> Store:
    """The store ``--db`` names: a ``postgresql://`` URL or a SQLite file.

    Raises ``ValueError`` (one line) for a PostgreSQL URL that cannot be used, or when the
    PostgreSQL driver (the ``postgres`` extra, asyncpg) is not installed.
    """
    text = str(db)
    if not is_postgres_url(text):
        return SQLiteStore(db)
    try:
        from signaling.server.store.postgres import PostgresStore
    except ImportError:
        raise ValueError("PostgreSQL needs asyncpg: pip install 'parley[postgres]'") from None
    return PostgresStore(text)


__all__ = [
    "CallIdTaken",
    "CallRecord",
    "ContactRecord",
    "GuestLinkRecord",
    "MeetingIdTaken",
    "MeetingRecord",
    "SQLiteStore",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "UserRecord",
    "UsernameTaken",
    "is_postgres_url",
    "store_for",
]
