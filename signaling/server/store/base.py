"""The storage interface the routing code depends on, and the records it returns.

Routing never sees SQL: another database is added by implementing
:class:`Store` (see ``sqlite.py``). Every method that changes something has
committed it durably when its awaitable completes, so the caller may then
acknowledge it to a client.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signaling.protocol.constants import ContactStatus
from signaling.protocol.messages import Media


class UsernameTaken(Exception):
    """``create_user`` with a username that exists."""


class CallIdTaken(Exception):
    """``insert_call`` with a call id that was used before."""


class MeetingIdTaken(Exception):
    """``insert_meeting`` with a meeting id that was used before."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """An account. ``password_hash`` is ``None`` for built-in users, who cannot log in."""

    username: str
    display_name: str
    password_hash: str | None = None

    def public(self) -> dict[str, Any]:
        """The protocol's User object."""
        return {"username": self.username, "display_name": self.display_name}


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """One side's view of a contact relation."""

    user: UserRecord
    status: ContactStatus


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as kept in the history. Times are Unix seconds (UTC)."""

    call_id: str
    caller: str
    callee: str
    media: Media
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MeetingRecord:
    """One meeting as kept in the history. Times are Unix seconds (UTC).

    ``host`` is the creator. Read back by :meth:`Store.list_meetings`, it also holds
    ``participants`` (everyone who was ever in it, in order of first joining) and, for the
    user who lists it, ``joined_at`` (their first join) and ``left_at`` (their last leave),
    both ``None`` for a user who was invited and never joined.
    """

    meeting_id: str
    host: str
    started_at: float
    title: str | None = None
    topology: str = "mesh"
    capacity: int = 4
    ended_at: float | None = None
    reason: str | None = None
    participants: tuple[str, ...] = ()
    joined_at: float | None = None
    left_at: float | None = None


@dataclass(frozen=True, slots=True)
class GuestLinkRecord:
    """A guest link: ``code_hash`` is the SHA-256 of its code (the code itself is never kept).

    ``meeting_id`` is ``None`` for a link to a 1:1 call with ``owner``.
    """

    link_id: str
    code_hash: str
    owner: str
    created_at: float
    expires_at: float
    meeting_id: str | None = None
    revoked_at: float | None = None


class Store(abc.ABC):
    """Accounts, tokens, contacts, call history and meetings."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply migrations; raises ``StoreError`` when it cannot."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the database."""

    # Accounts ----------------------------------------------------------

    @abc.abstractmethod
    async def create_user(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        token: tuple[str, float] | None = None,
    ) -> UserRecord:
        """Create an account; raises :class:`UsernameTaken`.

        ``token`` (a token hash and its expiry) is the account's first session token, saved in
        the same transaction: a register that fails leaves no account behind, so trying again
        is not refused as *taken*.
        """

    @abc.abstractmethod
    async def get_user(self, username: str) -> UserRecord | None:
        """The account, or ``None``."""

    @abc.abstractmethod
    async def set_display_name(self, username: str, display_name: str) -> UserRecord:
        """Change a display name and return the updated account."""

    @abc.abstractmethod
    async def set_password_hash(self, username: str, password_hash: str) -> None:
        """Replace a hash (after its parameters were raised)."""

    @abc.abstractmethod
    async def search_users(self, query: str, limit: int) -> list[UserRecord]:
        """Accounts whose username or display name starts with ``query`` (any case)."""

    # Tokens ------------------------------------------------------------

    @abc.abstractmethod
    async def add_token(self, token_hash: str, username: str, expires_at: float) -> None:
        """Remember a session token by its hash."""

    @abc.abstractmethod
    async def user_for_token(self, token_hash: str, now: float) -> UserRecord | None:
        """The account a valid, unexpired token belongs to."""

    @abc.abstractmethod
    async def revoke_token(self, token_hash: str) -> None:
        """Forget a token."""

    # Account self-service (v1.1) ---------------------------------------------

    @abc.abstractmethod
    async def revoke_other_tokens(self, username: str, keep_token_hash: str | None) -> int:
        """Forget every token of ``username`` but ``keep_token_hash``; returns how many."""

    @abc.abstractmethod
    async def change_password(
        self, username: str, password_hash: str, keep_token_hash: str | None
    ) -> int:
        """Set a new password hash and forget every token of ``username`` but
        ``keep_token_hash``, in one transaction; returns how many tokens went."""

    @abc.abstractmethod
    async def delete_user(self, username: str, at: float) -> None:
        """Delete an account with its tokens, contacts and requests, blocks, call history,
        meeting attendance and invitations, and revoke its guest links. The username stays
        reserved (``get_user`` no longer finds it; ``create_user`` raises :class:`UsernameTaken`).
        """

    @abc.abstractmethod
    async def block_user(self, username: str, peer: str, at: float) -> ContactStatus | None:
        """``username`` blocks ``peer``: the relation between them (if any) is removed in the
        same transaction; returns its status from ``username``'s side before, or ``None``."""

    @abc.abstractmethod
    async def unblock_user(self, username: str, peer: str) -> bool:
        """Lift a block; whether there was one."""

    @abc.abstractmethod
    async def blocked_users(self, username: str) -> list[UserRecord]:
        """The users ``username`` has blocked, by username."""

    @abc.abstractmethod
    async def blockers(self, a: str, b: str) -> set[str]:
        """Which of ``a`` and ``b`` has blocked the other (empty when neither)."""

    # Contacts ----------------------------------------------------------

    @abc.abstractmethod
    async def list_contacts(self, username: str) -> list[ContactRecord]:
        """Every relation of ``username``, seen from its side."""

    @abc.abstractmethod
    async def contact_status(self, username: str, peer: str) -> ContactStatus | None:
        """The relation of ``username`` to ``peer``, seen from ``username``."""

    @abc.abstractmethod
    async def request_contact(self, username: str, peer: str) -> ContactStatus:
        """Ask ``peer``; if ``peer`` had asked already, both become accepted.

        Returns the relation's new status, seen from ``username``.
        """

    @abc.abstractmethod
    async def accept_contact(self, username: str, peer: str) -> bool:
        """Accept ``peer``'s pending request; ``False`` if there was none."""

    @abc.abstractmethod
    async def remove_contact(self, username: str, peer: str) -> bool:
        """Drop the relation on both sides; ``False`` if there was none."""

    @abc.abstractmethod
    async def accepted_contacts(self, username: str) -> list[str]:
        """Usernames of ``username``'s accepted contacts."""

    # Calls -------------------------------------------------------------

    @abc.abstractmethod
    async def insert_call(self, record: CallRecord) -> None:
        """Record a new call; raises :class:`CallIdTaken`."""

    @abc.abstractmethod
    async def call_answered(self, call_id: str, answered_at: float) -> None:
        """Record that the call was answered."""

    @abc.abstractmethod
    async def call_ended(self, call_id: str, ended_at: float, reason: str) -> None:
        """Record how and when the call ended."""

    @abc.abstractmethod
    async def list_calls(self, username: str, limit: int) -> list[CallRecord]:
        """The user's ended calls, newest first."""

    @abc.abstractmethod
    async def end_unfinished_calls(self, ended_at: float, reason: str) -> int:
        """At start: close calls a previous run left open. Returns how many."""

    # Meetings ------------------------------------------------------------

    @abc.abstractmethod
    async def insert_meeting(self, record: MeetingRecord, invited: Sequence[str]) -> None:
        """Record a new meeting, its host joined at its start, and the host's invitations.

        Raises :class:`MeetingIdTaken`.
        """

    @abc.abstractmethod
    async def meeting_invited(
        self, meeting_id: str, inviter: str, usernames: Sequence[str], at: float
    ) -> None:
        """Record invitations (again pending, for a user who had declined)."""

    @abc.abstractmethod
    async def meeting_declined(self, meeting_id: str, username: str, at: float) -> None:
        """Record that an invitation was declined."""

    @abc.abstractmethod
    async def meeting_joined(self, meeting_id: str, username: str, at: float) -> None:
        """Record a join (a user may join, leave and join again while it lasts)."""

    @abc.abstractmethod
    async def meeting_left(self, meeting_id: str, username: str, at: float, reason: str) -> None:
        """Record that a participant left (``left``) or was lost (``lost``)."""

    @abc.abstractmethod
    async def meeting_ended(self, meeting_id: str, at: float, reason: str) -> None:
        """Record the end: its time and reason, everyone still in it left, invitations closed."""

    @abc.abstractmethod
    async def list_meetings(self, username: str, limit: int) -> list[MeetingRecord]:
        """Ended meetings the user was in or invited to, newest first."""

    @abc.abstractmethod
    async def end_unfinished_meetings(self, ended_at: float, reason: str) -> int:
        """At start: end meetings a previous run left open. Returns how many."""

    # Guest links (v1.1) ------------------------------------------------------
    # Not abstract: a store without them refuses guest links with a StoreError.

    async def insert_guest_link(self, record: GuestLinkRecord) -> None:
        """Remember a new guest link."""
        raise StoreError("this store keeps no guest links")

    async def guest_link(self, code_hash: str) -> GuestLinkRecord | None:
        """The link whose code hashes to ``code_hash``."""
        raise StoreError("this store keeps no guest links")

    async def guest_links_of(self, owner: str, now: float) -> list[GuestLinkRecord]:
        """``owner``'s links that are neither revoked nor expired at ``now``, newest first."""
        raise StoreError("this store keeps no guest links")

    async def revoke_guest_link(
        self, link_id: str, owner: str, at: float
    ) -> GuestLinkRecord | None:
        """Revoke ``owner``'s link; ``None`` if they have no such link (revoked ones included)."""
        raise StoreError("this store keeps no guest links")

    async def create_guest(
        self, username: str, display_name: str, link_id: str, at: float
    ) -> UserRecord:
        """A guest: an account that cannot log in, remembered as admitted by ``link_id``."""
        raise StoreError("this store keeps no guest links")


class StoreError(Exception):
    """The database cannot be opened or used; the message says why, in one line."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now (a server database restarting, a network cut).

    The operation was not acknowledged and may be tried again later; clients are answered
    ``unavailable``.
    """


class StoreBusy(StoreUnavailable):
    """The database is there but every connection to it is at work (a queue, not an outage):
    only this operation failed; clients are answered ``unavailable`` (busy)."""


def is_postgres_url(value: str) -> bool:
    """Whether ``--db`` names a PostgreSQL database rather than a SQLite file."""
    return value.startswith(("postgresql://", "postgres://"))
