"""What the coordinator writes to Redis reads back as the same call, meeting and login (pure)."""

from __future__ import annotations

from signaling.protocol.constants import Presence, Topology
from signaling.protocol.messages import Media
from signaling.server.bus.mirror import (
    WatchedPresence,
    WatchedTimers,
    call_from_json,
    call_json,
    meeting_from_json,
    meeting_json,
    owner_of,
)
from signaling.server.calls import Call, CallPhase
from signaling.server.meetings import Meeting, Person


def test_a_call_and_its_deadlines_round_trip() -> None:
    call = Call("c1", "ada", "bob", Media(True, False), 100.5, caller_conn=(7 << 32) | 3)
    call.accept("bob", 42, 101.25)
    call.bind("ada", None)
    back, deadlines = call_from_json(call_json(call, {"ada": 131.5}))
    assert back == call and back.phase is CallPhase.ACCEPTED
    assert deadlines == {"ada": 131.5}


def test_a_meeting_round_trips_with_participants_invitations_and_chat() -> None:
    ana, bea, cat = Person("ana", "Ana"), Person("bea", "Bea B."), Person("cat", "Cat")
    meeting = Meeting.create(
        "m1", ana, Media(True, True), 11, 50.0, capacity=4, title="Stand-up",
        topology=Topology.MESH,
    )  # fmt: skip
    meeting.invite("ana", [bea, cat])
    meeting.join(bea, Media(True, False), 12, 51.0)
    meeting.detach("bea", 12)
    meeting.chat.append({"type": "meeting.chat", "text": "hi"})
    back, deadlines = meeting_from_json(meeting_json(meeting, {"bea": 80.0}))
    assert deadlines == {"bea": 80.0}
    assert back.to_json(str) == meeting.to_json(str)
    assert back.participants == meeting.participants
    assert back.invited == meeting.invited and back.former == meeting.former
    assert list(back.chat) == list(meeting.chat)
    assert back.end_to_end_until is None


def test_a_meeting_that_continues_an_end_to_end_call_says_so_after_the_round_trip() -> None:
    meeting = Meeting.create(
        "m2", Person("ana", "Ana"), Media(True, True), 11, 50.0, capacity=8,
        topology=Topology.SFU,
    )  # fmt: skip
    meeting.end_to_end_until = 50.0
    back, _ = meeting_from_json(meeting_json(meeting, {}))
    assert back.end_to_end_until == 50.0
    assert back.to_json(str)["end_to_end_until"] == "50.0"


def test_only_call_and_meeting_timers_are_owned() -> None:
    assert owner_of(("call", "c1", "ring")) == ("call", "c1", "ring")
    assert owner_of(("meeting", "m1", "ana")) == ("meeting", "m1", "ana")
    assert owner_of(("guest", "g", "x")) is None and owner_of("call") is None


def test_chosen_presence_reports_every_change() -> None:
    seen: list[str] = []
    chosen = WatchedPresence(seen.append)
    chosen["ada"] = Presence.AWAY
    chosen.pop("ada", None)
    chosen["bob"] = Presence.DND
    del chosen["bob"]
    assert seen == ["ada", "ada", "bob", "bob"] and not chosen


def test_a_call_timer_cancelled_reports_the_call_even_if_it_never_ran() -> None:
    """An answer cancels the ring timer, which may not have started yet (the Echo Test answers
    before the invite's reply): the call changed all the same and must be written again."""
    seen: list[str] = []
    timers = WatchedTimers(lambda work: None, seen.append)
    timers.cancel(("call", "c1", "ring"))
    timers.cancel(("meeting", "m1", "ada"))
    timers.cancel("something else")
    assert seen == ["c1"] and timers.of("call", "c1") == {}
