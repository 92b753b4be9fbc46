"""Account self-service (protocol v1.1): the requests, their fields, the ``signed_out`` event.

A user changes their password, signs out every other session, deletes their account,
and blocks or unblocks other users. A server that has these lists ``account`` in the
``features`` of the ``login`` and ``register`` replies. Pure definitions, registered by
:mod:`signaling.protocol.messages` beside its own parsers; both sides check with these.
See docs/protocol.md, "Version 1.1: account self-service".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from signaling.protocol.constants import RequestType
from signaling.protocol.fields import Fields

#: The ``features`` word of a server that has these requests.
ACCOUNT_FEATURE = "account"
#: Passwords: the protocol's bounds for a new one; a current one is only bounded above.
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
#: Users one may block.
MAX_BLOCKED = 1000


class SignedOutReason(StrEnum):
    """Why a connection was signed out by the server (the ``signed_out`` event's ``reason``)."""

    #: The user signed out every other session (``account.sign_out_others``).
    SIGNED_OUT_ELSEWHERE = "signed_out_elsewhere"
    #: The user changed their password on another connection.
    PASSWORD_CHANGED = "password_changed"
    #: The account was deleted from another connection.
    ACCOUNT_DELETED = "account_deleted"


@dataclass(frozen=True, slots=True)
class ChangePassword:
    """``account.password``: the current password, and the new one."""

    password: str
    new_password: str


@dataclass(frozen=True, slots=True)
class SignOutOthers:
    """``account.sign_out_others``: revoke every token but this connection's."""


@dataclass(frozen=True, slots=True)
class DeleteAccount:
    """``account.delete``: the current password, to confirm."""

    password: str


@dataclass(frozen=True, slots=True)
class Block:
    """``account.block`` / ``account.unblock``: another user."""

    username: str


@dataclass(frozen=True, slots=True)
class BlockedList:
    """``account.blocked``: the users one has blocked."""


def _current(f: Fields) -> str:
    return f.required_text("password", min_len=1, max_len=MAX_PASSWORD_CHARS)


ACCOUNT_PARSERS = {
    RequestType.ACCOUNT_PASSWORD: lambda f: ChangePassword(
        _current(f),
        f.required_text("new_password", min_len=MIN_PASSWORD_CHARS, max_len=MAX_PASSWORD_CHARS),
    ),
    RequestType.ACCOUNT_SIGN_OUT_OTHERS: lambda f: SignOutOthers(),
    RequestType.ACCOUNT_DELETE: lambda f: DeleteAccount(_current(f)),
    RequestType.ACCOUNT_BLOCK: lambda f: Block(f.username("username")),
    RequestType.ACCOUNT_UNBLOCK: lambda f: Block(f.username("username")),
    RequestType.ACCOUNT_BLOCKED: lambda f: BlockedList(),
}
