"""The server's view of a call: a small state machine with no I/O and no timers.

``ringing → accepted → ended``, or ``ringing → ended``. Each transition
checks who asks and in which phase, and raises :class:`ProtocolError` with
``forbidden`` when the protocol does not allow it; the hub persists the
change and tells the parties. Time comes in as an argument.

A call is *bound* to one connection per party once it is theirs (the
caller's inviting connection, the callee's answering one): events and relayed
``rtc.signal`` go there. A party whose bound connection is gone is
*detached*; the hub gives it a grace period to come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from signaling.protocol.constants import CallReason, ErrorCode
from signaling.protocol.errors import ProtocolError
from signaling.protocol.messages import Media


class CallPhase(StrEnum):
    """Where a call stands."""

    RINGING = "ringing"
    ACCEPTED = "accepted"
    ENDED = "ended"


def _forbidden(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.FORBIDDEN, message)


@dataclass(slots=True)
class Call:
    """One 1:1 call between two users."""

    call_id: str
    caller: str
    callee: str
    media: Media
    started_at: float
    caller_conn: int | None
    callee_conn: int | None = None
    phase: CallPhase = CallPhase.RINGING
    answered_at: float | None = None
    ended_at: float | None = None
    reason: CallReason | None = None

    def is_party(self, username: str) -> bool:
        """Whether ``username`` is the caller or the callee."""
        return username in (self.caller, self.callee)

    def peer_of(self, username: str) -> str:
        """The other party."""
        return self.callee if username == self.caller else self.caller

    def bound_conn(self, username: str) -> int | None:
        """The connection this party's call events go to, if it has one now."""
        return self.caller_conn if username == self.caller else self.callee_conn

    def bind(self, username: str, conn: int | None) -> None:
        """Attach (or with ``None`` detach) a party's connection."""
        if username == self.caller:
            self.caller_conn = conn
        else:
            self.callee_conn = conn

    def _require_party(self, username: str) -> None:
        if not self.is_party(username):
            raise _forbidden("you are not a party to this call")

    def _require(self, phase: CallPhase, what: str) -> None:
        if self.phase is not phase:
            raise _forbidden(
                f"{what} only while the call is {phase.value}; it is {self.phase.value}"
            )

    def accept(self, username: str, conn: int, now: float) -> None:
        """The callee answers on connection ``conn``."""
        self._require_party(username)
        if username != self.callee:
            raise _forbidden("only the callee can accept")
        self._require(CallPhase.RINGING, "accept")
        self.phase = CallPhase.ACCEPTED
        self.answered_at = now
        self.callee_conn = conn

    def check_decline(self, username: str) -> None:
        """The callee may decline while ringing."""
        self._require_party(username)
        if username != self.callee:
            raise _forbidden("only the callee can decline; the caller cancels")
        self._require(CallPhase.RINGING, "decline")

    def check_cancel(self, username: str) -> None:
        """The caller may cancel while ringing."""
        self._require_party(username)
        if username != self.caller:
            raise _forbidden("only the caller can cancel; the callee declines")
        self._require(CallPhase.RINGING, "cancel")

    def check_hangup(self, username: str) -> None:
        """Either party may hang up once accepted."""
        self._require_party(username)
        self._require(CallPhase.ACCEPTED, "hang up")

    def check_move(self, username: str, conn: int) -> str:
        """A party moves the accepted call into a meeting, from the connection the call is
        bound to; returns the other party (who comes along)."""
        self._require_party(username)
        self._require(CallPhase.ACCEPTED, "move into a meeting")
        if self.bound_conn(username) != conn:
            raise _forbidden("the call is on another of your connections")
        return self.peer_of(username)

    def check_signal(self, username: str) -> str:
        """``rtc.signal`` flows between the parties from the accept on; returns the recipient."""
        self._require_party(username)
        self._require(CallPhase.ACCEPTED, "rtc.signal")
        return self.peer_of(username)

    def end(self, reason: CallReason, now: float) -> CallPhase:
        """End the call; returns the phase it ended from (who is told depends on it)."""
        if self.phase is CallPhase.ENDED:
            raise _forbidden("the call has ended")
        previous = self.phase
        self.phase = CallPhase.ENDED
        self.reason = reason
        self.ended_at = now
        return previous


class CallTable:
    """The calls in progress, by id and by user.

    A user is in at most one call, except the built-in bots named in
    ``unlimited`` (the Echo Test answers everyone at once).
    """

    def __init__(self, unlimited: frozenset[str] = frozenset()) -> None:
        self._by_id: dict[str, Call] = {}
        self._by_user: dict[str, Call] = {}
        self._unlimited = unlimited

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, call_id: str) -> Call | None:
        """The call in progress with this id."""
        return self._by_id.get(call_id)

    def of_user(self, username: str) -> Call | None:
        """The call ``username`` is ringing in or talking in."""
        return self._by_user.get(username)

    def add(self, call: Call) -> None:
        """Start tracking a ringing call."""
        if call.call_id in self._by_id:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "'call_id' is already in use")
        users = [u for u in (call.caller, call.callee) if u not in self._unlimited]
        for user in users:
            if user in self._by_user:
                raise ProtocolError(ErrorCode.BUSY, f"{user} is in another call")
        self._by_id[call.call_id] = call
        for user in users:
            self._by_user[user] = call

    def remove(self, call: Call) -> None:
        """Forget an ended call."""
        self._by_id.pop(call.call_id, None)
        for user in (call.caller, call.callee):
            if self._by_user.get(user) is call:
                del self._by_user[user]

    def all(self) -> list[Call]:
        """Every call in progress."""
        return list(self._by_id.values())
