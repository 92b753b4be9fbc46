"""Persistence behind one interface (:class:`Store`); SQLite is the default."""

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
from signaling.server.store.sqlite import SQLiteStore

__all__ = [
    "CallIdTaken",
    "CallRecord",
    "ContactRecord",
    "GuestLinkRecord",
    "MeetingIdTaken",
    "MeetingRecord",
    "SQLiteStore",
    "Store",
    "StoreError",
    "UserRecord",
    "UsernameTaken",
]
