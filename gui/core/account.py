"""Account self-service as the client sees it (Qt-free): password, other sessions, deletion,
blocked users; and what to tell the user when the server signs this session out.

Shared by ``parley-cli account …`` and the app's Account settings page. See
docs/protocol.md, "Version 1.1: account self-service".
"""

from __future__ import annotations

from typing import Any, Protocol

from signaling.protocol.account import (
    ACCOUNT_FEATURE,
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    SignedOutReason,
)

Json = dict[str, Any]

#: What the user reads when the server signed this session out, by the event's ``reason``.
SIGNED_OUT_TEXT = {
    SignedOutReason.PASSWORD_CHANGED.value: (
        "Your password was changed from another session. Sign in again with the new password."
    ),
    SignedOutReason.SIGNED_OUT_ELSEWHERE.value: (
        "You signed out of every other session from another device. Sign in again to continue."
    ),
    SignedOutReason.ACCOUNT_DELETED.value: "This account was deleted from another session.",
}
DEFAULT_SIGNED_OUT_TEXT = "Your session has ended. Please sign in again."

__all__ = [
    "ACCOUNT_FEATURE",
    "DEFAULT_SIGNED_OUT_TEXT",
    "SIGNED_OUT_TEXT",
    "block",
    "blocked",
    "change_password",
    "check_new_password",
    "delete_account",
    "sign_out_others",
    "signed_out_text",
    "unblock",
]


class Requester(Protocol):
    """The part of the signaling client used here."""

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request; return the ``ok`` reply or raise."""


def signed_out_text(reason: object) -> str:
    """The sentence for a ``signed_out`` event's reason (a general one for a reason not known)."""
    return SIGNED_OUT_TEXT.get(str(reason), DEFAULT_SIGNED_OUT_TEXT)


def check_new_password(current: str, new: str, repeated: str | None = None) -> str | None:
    """Why ``new`` cannot be the new password (in a sentence), or ``None`` when it can."""
    if not MIN_PASSWORD_CHARS <= len(new) <= MAX_PASSWORD_CHARS:
        return f"The new password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters."
    if new == current:
        return "The new password is the current one."
    if repeated is not None and repeated != new:
        return "The two new passwords differ."
    return None


async def change_password(client: Requester, current: str, new: str) -> int:
    """Change the password; returns how many other sessions were signed out."""
    return int(
        (await client.request("account.password", password=current, new_password=new))["revoked"]
    )


async def sign_out_others(client: Requester) -> int:
    """Revoke every other session; returns how many."""
    return int((await client.request("account.sign_out_others"))["revoked"])


async def delete_account(client: Requester, password: str) -> None:
    """Delete the account (contacts, requests and history with it); this session ends too."""
    await client.request("account.delete", password=password)


async def block(client: Requester, username: str) -> Json:
    """Block a user; returns their User."""
    return dict((await client.request("account.block", username=username.lower()))["user"])


async def unblock(client: Requester, username: str) -> None:
    """Lift a block."""
    await client.request("account.unblock", username=username.lower())


async def blocked(client: Requester) -> list[Json]:
    """The users one has blocked."""
    return list((await client.request("account.blocked"))["users"])
