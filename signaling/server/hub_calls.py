"""The hub's 1:1 calls: ``call.*``, ``rtc.signal`` and ``history.list``, the calls' timers
(ringing, and a party's grace to come back), and a party's call when its connection goes or
logs in again.

The calls themselves live in the hub's :class:`~signaling.server.calls.CallTable` (``hub.calls``),
which the bus mirrors and other routers read; this module decides what happens to them. Same
order of effects as the rest of the hub: validate, change memory, commit to the store, reply,
then send events.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from signaling.protocol.constants import (
    ECHO_USERNAME,
    CallReason,
    ErrorCode,
    EventType,
    RequestType,
)
from signaling.protocol.errors import ProtocolError, bad_message
from signaling.protocol.messages import (
    CallAction,
    CallInvite,
    HistoryList,
    Json,
    MeetingSignal,
    RtcSignal,
    event_message,
)
from signaling.server.calls import Call, CallPhase
from signaling.server.logs import log_event
from signaling.server.routing import Handler, Result, Session, iso
from signaling.server.routing import me as _me
from signaling.server.store import CallIdTaken, CallRecord, UserRecord

if TYPE_CHECKING:
    from signaling.server.hub import Hub


class CallRouter:
    """The requests of 1:1 calls, and what happens to a call when time passes."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def handlers(self) -> dict[RequestType, Handler]:
        """What the hub dispatches here."""
        return {
            RequestType.CALL_INVITE: self.invite,
            RequestType.CALL_ACCEPT: self._accept,
            RequestType.CALL_DECLINE: self._decline,
            RequestType.CALL_CANCEL: self._cancel,
            RequestType.CALL_HANGUP: self._hangup,
            RequestType.RTC_SIGNAL: self._signal,
            RequestType.HISTORY_LIST: self._history,
        }

    async def invite(self, session: Session, req: CallInvite) -> Result:
        """``call.invite`` (a guest's call to its host comes here too)."""
        me = _me(session)
        if req.to == me:
            raise bad_message("you cannot call yourself")
        if self.hub.busy(me):
            raise ProtocolError(ErrorCode.BUSY, "you are already in a call or a meeting")
        if (
            req.to != ECHO_USERNAME
            and not self.hub.guests.may_call(session, req.to)
            and req.to not in await self.hub.accepted_contacts(me)
        ):
            if await self.hub.store.get_user(req.to) is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, f"no user '{req.to}'")
            raise ProtocolError(ErrorCode.FORBIDDEN, f"'{req.to}' is not your contact")
        if self.hub.calls.get(req.call_id) is not None:
            raise bad_message("'call_id' is already in use")
        now = self.hub.now()
        call = Call(req.call_id, me, req.to, req.media, now, caller_conn=session.id)
        # Decided now, synchronously, so that two invites racing see each other.
        immediate: CallReason | None = None
        if self.hub.busy(me):
            raise ProtocolError(ErrorCode.BUSY, "you are already in a call or a meeting")
        if self.hub.busy(req.to):
            immediate = CallReason.BUSY
        elif req.to not in self.hub.by_user:
            immediate = CallReason.OFFLINE
        if immediate is None:
            self.hub.calls.add(call)
        record = CallRecord(req.call_id, me, req.to, req.media, now)
        if immediate is not None:
            call.end(immediate, now)
            record = CallRecord(
                req.call_id, me, req.to, req.media, now, ended_at=now, reason=immediate.value
            )
        # The history row is queued first, then the callee is told at once: a ringing call
        # lives in memory (a restart loses it whatever the store holds), so the callee does
        # not wait for the row's commit. The caller's ``ok`` still does (docs/performance.md).
        inserted = asyncio.ensure_future(self.hub.store.insert_call(record))
        if immediate is None:
            incoming = event_message(
                EventType.CALL_INCOMING,
                call_id=call.call_id,
                **{"from": session.user.public() if session.user else {"username": me}},
                media=call.media.to_json(),
            )
            self.hub.send_user(call.callee, incoming)
        try:
            await inserted
        except CallIdTaken:
            self._unring(call)
            raise bad_message("'call_id' is already in use") from None
        except BaseException:
            self._unring(call)
            raise
        # One line per invite with its outcome (a line of its own for ringing was a third of
        # the lines a call logs, and logging a tenth of the server's work per call).
        outcome = immediate.value if immediate is not None else "ringing"
        log_event("call.invite", call=call.call_id, caller=me, callee=req.to, outcome=outcome)

        def after() -> None:
            if immediate is not None:
                self._count_end(call)
                self.hub.send(session, _ended(call))
                return
            # Answered or ended while the row was committed: their events follow this one.
            self.hub.send(session, event_message(EventType.CALL_RINGING, call_id=call.call_id))
            if self.hub.calls.get(call.call_id) is call and call.phase is CallPhase.RINGING:
                self.start_timer(call, "ring", self.hub.config.ring_timeout_s, CallReason.TIMEOUT)

        return Result(then=after)

    def _unring(self, call: Call) -> None:
        """The invite failed after the callee was told: end the call for the callee, unrecorded."""
        if self.hub.calls.get(call.call_id) is not call:
            return
        self.hub.calls.remove(call)
        for key in ("ring", call.caller, call.callee):
            self._cancel_timer(call, key)
        previous = call.end(CallReason.FAILED, self.hub.now())
        if previous is CallPhase.RINGING:
            self.hub.send_user(call.callee, _ended(call))
        else:
            self._send_bound(call, call.callee, _ended(call))

    def _active_call(self, session: Session, call_id: str) -> Call:
        call = self.hub.calls.get(call_id)
        if call is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such call in progress")
        if not call.is_party(_me(session)):
            raise ProtocolError(ErrorCode.FORBIDDEN, "you are not a party to this call")
        return call

    async def _accept(self, session: Session, req: CallAction) -> Result:
        me = _me(session)
        call = self._active_call(session, req.call_id)
        before = {u: self.hub.presence_of(u) for u in (call.caller, call.callee)}
        call.accept(me, session.id, self.hub.now())
        self._cancel_timer(call, "ring")
        self._cancel_timer(call, me)
        assert call.answered_at is not None
        await self.hub.store.call_answered(call.call_id, call.answered_at)
        log_event("call.accepted", call=call.call_id)

        async def after() -> None:
            self._send_bound(
                call, call.caller, event_message(EventType.CALL_ACCEPTED, call_id=call.call_id)
            )
            elsewhere = event_message(
                EventType.CALL_ENDED,
                call_id=call.call_id,
                reason=CallReason.ANSWERED_ELSEWHERE.value,
            )
            self.hub.send_user(call.callee, elsewhere, skip=session)
            for user, presence in before.items():
                await self.hub.presence_changed(user, presence)

        return Result(then=after)

    async def _decline(self, session: Session, req: CallAction) -> Result:
        call = self._active_call(session, req.call_id)
        call.check_decline(_me(session))
        return await self.finish(call, CallReason.DECLINED)

    async def _cancel(self, session: Session, req: CallAction) -> Result:
        call = self._active_call(session, req.call_id)
        call.check_cancel(_me(session))
        return await self.finish(call, CallReason.CANCELLED)

    async def _hangup(self, session: Session, req: CallAction) -> Result:
        call = self._active_call(session, req.call_id)
        call.check_hangup(_me(session))
        return await self.finish(call, CallReason.FAILED if req.failed else CallReason.HANGUP)

    async def move_call(self, call: Call, meeting_fields: Json) -> Result:
        """End ``call`` because its parties moved into a meeting (``meeting.create`` with
        ``from_call``); ``call.ended`` carries ``meeting_fields`` (the meeting's id and object)."""
        return await self.finish(call, CallReason.MOVED_TO_MEETING, meeting_fields)

    async def finish(self, call: Call, reason: CallReason, extra: Json | None = None) -> Result:
        """End ``call``: state now, commit, then (after the reply) tell both parties."""
        before = {u: self.hub.presence_of(u) for u in (call.caller, call.callee)}
        previous = call.end(reason, self.hub.now())
        self.hub.calls.remove(call)
        for key in ("ring", call.caller, call.callee):
            self._cancel_timer(call, key)
        assert call.ended_at is not None
        await self.hub.store.call_ended(call.call_id, call.ended_at, reason.value)
        log_event("call.ended", call=call.call_id, reason=reason.value)
        self._count_end(call)

        async def after() -> None:
            message = {**_ended(call), **(extra or {})}
            self._send_bound(call, call.caller, message)
            if previous is CallPhase.RINGING:
                self.hub.send_user(call.callee, message)
            else:
                self._send_bound(call, call.callee, message)
            for user, presence in before.items():
                await self.hub.presence_changed(user, presence)

        return Result(then=after)

    def _count_end(self, call: Call) -> None:
        assert call.reason is not None
        self.hub.metrics.calls[call.reason.value] += 1

    async def end_by_server(self, call: Call, reason: CallReason) -> None:
        """A timer ended the call (no answer, or a party did not come back)."""
        if self.hub.calls.get(call.call_id) is not call:
            return
        await self.hub.follow_up(await self.finish(call, reason))

    def start_timer(self, call: Call, key: str, delay: float, reason: CallReason) -> None:
        """End ``call`` for ``reason`` in ``delay`` s unless timer ``key`` is cancelled first."""
        self.hub.timers.start(
            ("call", call.call_id, key), delay, lambda: self.end_by_server(call, reason)
        )

    def _cancel_timer(self, call: Call, key: str) -> None:
        self.hub.timers.cancel(("call", call.call_id, key))

    def start_grace(self, call: Call, username: str) -> None:
        """``username`` left ``call``'s connection: the call is lost unless they come back."""
        log_event("call.detached", call=call.call_id, user=username)
        self.start_timer(call, username, self.hub.config.reconnect_grace_s, CallReason.LOST)

    def detached(self, session: Session, username: str) -> None:
        """``session`` of ``username`` logged out or closed: a call bound to it, or ringing a
        callee with no connection left, waits for them (the grace period)."""
        call = self.hub.calls.of_user(username)
        if call is None:
            return
        if call.bound_conn(username) == session.id:
            call.bind(username, None)
            self.start_grace(call, username)
        elif (
            call.phase is CallPhase.RINGING
            and username == call.callee
            and username not in self.hub.by_user
        ):
            self.start_grace(call, username)

    def _send_bound(self, call: Call, username: str, message: Json) -> None:
        self.hub.send_conn(call.bound_conn(username), username, message)

    def replay(self, session: Session) -> None:
        """A party logged in again: rebind its call and tell it where the call stands."""
        username = _me(session)
        call = self.hub.calls.of_user(username)
        if call is None:
            return
        if call.phase is CallPhase.RINGING and username == call.callee:
            self._cancel_timer(call, username)
            caller = self.hub.by_user.get(call.caller)
            caller_user = next(iter(caller)).user if caller else None
            self.hub.send(
                session,
                event_message(
                    EventType.CALL_INCOMING,
                    call_id=call.call_id,
                    **{"from": (caller_user or UserRecord(call.caller, call.caller)).public()},
                    media=call.media.to_json(),
                ),
            )
            return
        if call.bound_conn(username) is not None:
            return
        call.bind(username, session.id)
        self._cancel_timer(call, username)
        log_event("call.reattached", call=call.call_id, user=username)
        if call.phase is CallPhase.RINGING:
            self.hub.send(session, event_message(EventType.CALL_RINGING, call_id=call.call_id))
        else:
            self.hub.send(
                session,
                event_message(
                    EventType.CALL_ACCEPTED,
                    call_id=call.call_id,
                    peer=call.peer_of(username),
                    role="caller" if username == call.caller else "callee",
                ),
            )

    async def _signal(self, session: Session, req: RtcSignal | MeetingSignal) -> Result:
        if isinstance(req, MeetingSignal):
            return await self.hub.meetings.signal(session, req)
        me = _me(session)
        call = self._active_call(session, req.call_id)
        recipient = call.check_signal(me)
        if req.restart is not None and call.bound_conn(me) != session.id:
            # v1.1: a party restarting its media from another connection of theirs (its address
            # changed; the old socket is dead but not yet noticed) takes the call there.
            call.bind(me, session.id)
            self._cancel_timer(call, me)
            log_event("call.rebound", call=call.call_id, user=me)
        message = event_message(
            EventType.RTC_SIGNAL, call_id=call.call_id, **{"from": me}, **req.payload()
        )
        return Result(then=lambda: self._send_bound(call, recipient, message))

    async def _history(self, session: Session, req: HistoryList) -> Result:
        me = _me(session)
        records = await self.hub.store.list_calls(me, req.limit)
        meetings = await self.hub.meetings.history(me, req.limit)
        return Result({"calls": [_call_record_json(r, me) for r in records], "meetings": meetings})


def _ended(call: Call) -> Json:
    assert call.reason is not None
    return event_message(EventType.CALL_ENDED, call_id=call.call_id, reason=call.reason.value)


def _call_record_json(record: CallRecord, me: str) -> Json:
    outgoing = record.caller == me
    out: Json = {
        "call_id": record.call_id,
        "peer": record.callee if outgoing else record.caller,
        "direction": "out" if outgoing else "in",
        "media": record.media.to_json(),
        "started_at": iso(record.started_at),
    }
    if record.answered_at is not None:
        out["answered_at"] = iso(record.answered_at)
    out["ended_at"] = iso(record.ended_at)
    out["reason"] = record.reason
    return out
