"""What the coordinator keeps in Redis so that another instance can take its place.

The hub decides as it always did; this module only watches the three things it changes that
must outlive the instance holding them: the calls in progress (with their timers' deadlines),
the presence users chose, and who is logged in on each connection. Watching, not editing: the
hub's ``calls``, ``chosen_presence`` and ``timers`` are swapped, once, at start, for subclasses
that report each change (:func:`install`), and a session's login travels as a small dict
(:func:`session_state`, :func:`restore_session`).

A call changes only together with a timer of its own (ringing, a party's grace) or when it is
added or removed, so watching the call table and the call timers sees every change of a call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, override

from signaling.protocol.constants import CallReason, Presence
from signaling.protocol.messages import Json, Media
from signaling.server.calls import Call, CallPhase, CallTable
from signaling.server.hub import Hub, Session
from signaling.server.routing import Timers
from signaling.server.store import UserRecord

Changed = Callable[[str], None]


class WatchedCalls(CallTable):
    """The hub's call table, reporting each call added or removed by its id."""

    def __init__(self, unlimited: frozenset[str], changed: Changed) -> None:
        super().__init__(unlimited)
        self._changed = changed

    @override
    def add(self, call: Call) -> None:
        super().add(call)
        self._changed(call.call_id)

    @override
    def remove(self, call: Call) -> None:
        super().remove(call)
        self._changed(call.call_id)


class WatchedPresence(dict[str, Presence]):
    """The hub's chosen presence by user, reporting each user whose entry changed."""

    def __init__(self, changed: Changed) -> None:
        super().__init__()
        self._changed = changed

    @override
    def __setitem__(self, key: str, value: Presence) -> None:
        super().__setitem__(key, value)
        self._changed(key)

    @override
    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed(key)

    @override
    def pop(self, key: str, default: Any = None) -> Any:
        found = super().pop(key, default)
        self._changed(key)
        return found


def call_of(key: Hashable) -> str | None:
    """The call id of a call timer's key (``("call", id, what)``), else ``None``."""
    if isinstance(key, tuple) and len(key) == 3 and key[0] == "call":
        return str(key[1])
    return None


class WatchedTimers(Timers):
    """The hub's timers, remembering each call timer's deadline (Unix seconds)."""

    def __init__(self, spawn: Callable[[Awaitable[None]], None], changed: Changed) -> None:
        super().__init__(spawn)
        self._changed = changed
        #: Call id → timer name ("ring" or a party's username) → deadline.
        self.deadlines: dict[str, dict[str, float]] = {}

    @override
    def start(self, key: Hashable, delay: float, work: Callable[[], Awaitable[None]]) -> None:
        super().start(key, delay, work)
        call_id = call_of(key)
        if call_id is not None:
            assert isinstance(key, tuple)
            self.deadlines.setdefault(call_id, {})[str(key[2])] = time.time() + delay
            self._changed(call_id)

    @override
    def cancel(self, key: Hashable) -> None:
        super().cancel(key)
        call_id = call_of(key)
        if call_id is None:
            return
        assert isinstance(key, tuple)
        timers = self.deadlines.get(call_id)
        if timers is not None and timers.pop(str(key[2]), None) is not None:
            if not timers:
                del self.deadlines[call_id]
            self._changed(call_id)

    @override
    def cancel_all(self) -> None:
        super().cancel_all()
        self.deadlines.clear()


def install(hub: Hub, call_changed: Changed, presence_changed: Changed) -> WatchedTimers:
    """Swap the hub's (still empty) call table, chosen presence and timers for watched ones."""
    assert not len(hub.calls) and not hub.chosen_presence, "install before the hub serves"
    hub.calls = WatchedCalls(frozenset(hub.calls._unlimited), call_changed)
    hub.chosen_presence = WatchedPresence(presence_changed)
    timers = WatchedTimers(hub._spawn, call_changed)
    hub.timers = timers
    return timers


def call_json(call: Call, deadlines: dict[str, float]) -> str:
    """A call in progress and its timers' deadlines, as stored in Redis."""
    return json.dumps(
        {
            "id": call.call_id,
            "caller": call.caller,
            "callee": call.callee,
            "media": call.media.to_json(),
            "started": call.started_at,
            "caller_conn": call.caller_conn,
            "callee_conn": call.callee_conn,
            "phase": call.phase.value,
            "answered": call.answered_at,
            "timers": deadlines,
        }
    )


def call_from_json(text: str | bytes) -> tuple[Call, dict[str, float]]:
    """The inverse of :func:`call_json`."""
    data = json.loads(text)
    media = data["media"]
    call = Call(
        data["id"],
        data["caller"],
        data["callee"],
        Media(bool(media["audio"]), bool(media["video"])),
        float(data["started"]),
        data["caller_conn"],
        data["callee_conn"],
        CallPhase(data["phase"]),
        data["answered"],
    )
    return call, {str(k): float(v) for k, v in data["timers"].items()}


def timer_reason(name: str) -> CallReason:
    """What a call timer ends the call with: no answer while ringing, else a party gone."""
    return CallReason.TIMEOUT if name == "ring" else CallReason.LOST


def session_state(session: Session) -> Json | None:
    """Who is logged in on ``session`` (``None``: nobody, or a guest, who is not carried over)."""
    user = session.user
    if user is None or session.guest is not None or session.token_hash is None:
        return None
    return {
        "u": user.username,
        "n": user.display_name,
        "t": session.token_hash,
        "f": sorted(session.features),
    }


def restore_session(hub: Hub, session: Session, state: Json) -> None:
    """Log ``session`` in again as it was on the previous coordinator (no events sent)."""
    user = UserRecord(str(state["u"]), str(state["n"]))
    session.user = user
    session.token_hash = str(state["t"])
    session.features = frozenset(str(f) for f in state["f"])
    if user.username not in hub.by_user:
        hub.by_user[user.username] = set()
        if user.username not in hub.chosen_presence:
            hub.chosen_presence[user.username] = Presence.ONLINE
    hub.by_user[user.username].add(session)
