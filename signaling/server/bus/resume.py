"""What a new coordinator restores from the mirror (``mirror.py``): calls and meetings go on.

A coordinator that takes over (``redis.py``) has loaded the mirrored calls and meetings into its
hub and gathered every live instance's connections; these put the rest back: each timer from
its deadline, a grace for each party or participant whose connection died with the old
coordinator, a new media-server room for a meeting through Janus (its room lived in the dead
coordinator's Janus session), the Echo Test's calls to this instance's bot, and an end for the
part of each guest who cannot come back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from signaling.protocol.constants import ECHO_USERNAME, CallReason, MeetingReason, Topology
from signaling.protocol.guests import is_guest_username
from signaling.server.bots import take_over_call
from signaling.server.bus.mirror import timer_reason
from signaling.server.calls import CallPhase
from signaling.server.hub import Hub
from signaling.server.meetings import Meeting

#: Starts a task that outlives the caller (``routing.Background.spawn``).
Spawn = Callable[[Awaitable[None]], None]


def resume_calls(hub: Hub, timers: dict[str, dict[str, float]], spawn: Spawn) -> None:
    """Mirrored calls go on: timers from their deadlines, graces for parties gone."""
    now = time.time()
    for call_id, deadlines in timers.items():
        call = hub.calls.get(call_id)
        if call is None:
            continue
        if ECHO_USERNAME in (call.caller, call.callee) and not take_over_call(hub, call):
            # No Echo Test here (--no-echo): its media was in the dead process.
            spawn(hub.call_router.end_by_server(call, CallReason.FAILED))
            continue
        for name, deadline in deadlines.items():
            hub.call_router.start_timer(call, name, max(0.0, deadline - now), timer_reason(name))
        for party in (call.caller, call.callee):
            if party in deadlines:
                continue
            conn = call.bound_conn(party)
            session = hub.sessions.get(conn) if conn is not None else None
            ringing_callee = call.phase is CallPhase.RINGING and party == call.callee
            if ringing_callee:
                if party not in hub.by_user:
                    hub.call_router.start_grace(call, party)
            elif session is None or session.user is None:
                call.bind(party, None)
                hub.call_router.start_grace(call, party)


def resume_meetings(hub: Hub, timers: dict[str, dict[str, float]], spawn: Spawn) -> None:
    """Mirrored meetings go on, graces from their deadlines or for participants gone. One
    through a media server gets a new room, as when its Janus dies: the old one went with
    the dead coordinator's Janus session (the sweep takes it once the pool connects; the
    new one is placed after that). Without media servers here, such a meeting ends."""
    router = hub.meetings
    now = time.time()
    for meeting_id, deadlines in timers.items():
        meeting = router.table.get(meeting_id)
        if meeting is None:
            continue
        if meeting.topology is Topology.SFU and router.sfu is None:
            spawn(_end_meeting(hub, meeting))
            continue
        for participant in list(meeting.participants.values()):
            username = participant.username
            conn = participant.conn
            session = hub.sessions.get(conn) if conn is not None else None
            deadline = deadlines.get(username)
            if deadline is None and session is not None and session.user is not None:
                continue
            participant.conn = None
            delay = hub.config.reconnect_grace_s if deadline is None else deadline - now
            router.start_grace(meeting, username, max(0.0, delay))
        if meeting.topology is Topology.SFU and router.sfu is not None:
            router.sfu.meeting_resumed(meeting)


def end_guests_gone(hub: Hub, spawn: Spawn) -> None:
    """Guests of a mirrored call or meeting whose connection died with the old coordinator:
    a guest's page cannot log in again, so their part ends now, as when its socket closes
    (a guest on a live instance was restored with its pass and goes on)."""
    names = {party for call in hub.calls.all() for party in (call.caller, call.callee)}
    names.update(name for meeting in hub.meetings.table.all() for name in meeting.participants)
    for username in sorted(names):
        if is_guest_username(username) and username not in hub.by_user:
            spawn(hub.guests.gone(username))


async def _end_meeting(hub: Hub, meeting: Meeting) -> None:
    router = hub.meetings
    await hub.follow_up(await router._finish(meeting, MeetingReason.ENDED))
