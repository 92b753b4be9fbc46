"""What the hub and the parts it delegates to share: sessions, handler results, timers, times.

Kept apart from ``hub.py`` so that a part of the routing (``hub_meetings.py``) can use
them without importing the hub that imports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from signaling.protocol.constants import ErrorCode
from signaling.protocol.errors import ProtocolError
from signaling.protocol.messages import Json
from signaling.server.logs import log_event

if TYPE_CHECKING:
    from signaling.server.store import UserRecord
from signaling.server.ratelimit import TokenBucket
from signaling.server.store import UserRecord


class Peer(Protocol):
    """What the hub needs of one client connection."""

    id: int
    address: str

    def send(self, message: Json) -> None:
        """Queue a message for this connection, in order, without blocking."""


@dataclass(eq=False, slots=True)
class Session:
    """One connection and who is logged in on it."""

    peer: Peer
    bucket: TokenBucket
    user: UserRecord | None = None
    token_hash: str | None = None
    closed: bool = False
    #: A built-in user inside the server (not counted as a connection or a user).
    bot: bool = False
    #: A guest's admission (``guests.GuestPass``): set for guests only, who have no account.
    guest: Any = None
    #: What the client said it understands when it logged in (``features``; v1.1).
    features: frozenset[str] = frozenset()
    #: A login whose credentials another instance of the service checked (``Hub.authenticate``
    #: there): the user and token its next ``login`` request binds, without checking again.
    verified: tuple[UserRecord, str] | None = None

    @property
    def id(self) -> int:
        """The connection's id."""
        return self.peer.id


FollowUp = Callable[[], Awaitable[None] | None]


@dataclass(slots=True)
class Result:
    """A handler's outcome: the ``ok`` reply's fields and what to do once it is sent."""

    fields: Json = field(default_factory=dict)
    then: FollowUp | None = None


#: A request's handler: a router's method the hub dispatches a request type to.
Handler = Callable[[Session, Any], Awaitable[Result]]


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds, as the protocol writes times."""
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def me_user(session: Session) -> UserRecord:
    """The user logged in on ``session`` (the dispatcher has checked there is one)."""
    if session.user is None:
        raise ProtocolError(ErrorCode.UNAUTHENTICATED, "log in first")
    return session.user


def me(session: Session) -> str:
    """The username logged in on ``session``."""
    return me_user(session).username


class Background:
    """Work started and not awaited (a timer's, a follow-up): kept until it is done, and its
    failure logged (``internal``, ``where``) rather than lost."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.tasks: set[asyncio.Future[None]] = set()

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` on the running loop."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log_event("internal", 40, where=self.where, error=repr(task.exception()))

    async def cancel(self) -> None:
        """Cancel what runs and wait until it has stopped."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Timers:
    """One-shot timers by key on the running loop (ringing, reconnection grace).

    A timer that fires hands its work to ``spawn`` (the hub's background tasks), so the
    state machines stay clock-free and the hub decides what a timeout means.
    """

    def __init__(self, spawn: Callable[[Awaitable[None]], None]) -> None:
        self._spawn = spawn
        self._handles: dict[Hashable, asyncio.TimerHandle] = {}

    def start(self, key: Hashable, delay: float, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` in ``delay`` seconds, replacing a timer of the same key."""
        self.cancel(key)

        def fire() -> None:
            self._handles.pop(key, None)
            self._spawn(work())

        self._handles[key] = asyncio.get_running_loop().call_later(delay, fire)

    def cancel(self, key: Hashable) -> None:
        """Forget the timer of this key, if any."""
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        """Stop every timer (the server is stopping)."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
