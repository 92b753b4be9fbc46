"""The pure meeting machine: who may do what, join order, host hand-over, binding, the end."""

from __future__ import annotations

import pytest

from signaling.protocol.constants import ErrorCode, LeaveReason, MeetingReason, Topology
from signaling.protocol.errors import ProtocolError
from signaling.protocol.messages import Media
from signaling.server.meetings import Meeting, MeetingTable, Person

AV = Media(True, True)
AUDIO = Media(True, False)
ALICE, BOB, CAROL, DAVE, ERIN = (
    Person(name, name.title()) for name in ("alice", "bob", "carol", "dave", "erin")
)


def iso(t: float) -> str:
    return f"t{t:g}"


def opened(capacity: int = 4) -> Meeting:
    """alice's meeting (connection 1), bob and carol invited."""
    meeting = Meeting.create("m1", ALICE, AV, conn=1, now=10.0, capacity=capacity, title="Sync")
    meeting.invite("alice", [BOB, CAROL])
    return meeting


def code_of(fn, *args) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        fn(*args)
    return info.value.code


def test_the_creator_is_host_and_the_only_participant() -> None:
    meeting = opened()
    assert meeting.host == "alice" and list(meeting.participants) == ["alice"]
    assert meeting.topology is Topology.MESH and meeting.capacity == 4
    assert meeting.to_json(iso) == {
        "meeting_id": "m1",
        "title": "Sync",
        "host": "alice",
        "topology": "mesh",
        "capacity": 4,
        "participants": [
            {
                "username": "alice",
                "display_name": "Alice",
                "audio": True,
                "video": True,
                "screen": False,
                "joined_at": "t10",
            }
        ],
        "invited": [
            {"username": "bob", "display_name": "Bob"},
            {"username": "carol", "display_name": "Carol"},
        ],
        "started_at": "t10",
    }
    with pytest.raises(ValueError, match="at least"):
        Meeting.create("m2", ALICE, AV, conn=1, now=0.0, capacity=0)


def test_invite_by_participants_only_and_never_twice() -> None:
    meeting = opened()
    assert code_of(meeting.invite, "dave", [ERIN]) is ErrorCode.FORBIDDEN
    assert code_of(meeting.invite, "alice", [ALICE]) is ErrorCode.BAD_MESSAGE
    assert code_of(meeting.invite, "alice", [Person("echo", "Echo Test")]) is ErrorCode.BAD_MESSAGE
    # Refused as a whole: dave was not invited with the bad name.
    assert code_of(meeting.invite, "alice", [DAVE, ALICE]) is ErrorCode.BAD_MESSAGE
    assert "dave" not in meeting.invited
    new = meeting.invite("alice", [BOB, DAVE])
    assert [i.person.username for i in new] == ["dave"]
    assert meeting.invited["bob"].inviter == ALICE and meeting.invited["bob"].media == AV
    meeting.join(BOB, AV, conn=2, now=11.0)
    assert meeting.invite("bob", [ALICE, CAROL, DAVE]) == []  # present or invited: unchanged
    assert meeting.invited["carol"].inviter == ALICE


def test_join_in_order_until_full() -> None:
    meeting = opened(capacity=3)
    meeting.invite("alice", [DAVE])
    joined = meeting.join(BOB, AUDIO, conn=2, now=11.0)
    assert not joined.rejoined and joined.participant.audio and not joined.participant.video
    assert "bob" not in meeting.invited
    meeting.join(CAROL, AV, conn=3, now=12.0)
    assert list(meeting.participants) == ["alice", "bob", "carol"]
    assert code_of(meeting.join, DAVE, AV, 4, 13.0) is ErrorCode.MEETING_FULL
    assert "dave" in meeting.invited  # still invited: a place may free up
    assert code_of(meeting.join, ERIN, AV, 5, 13.0) is ErrorCode.FORBIDDEN
    meeting.leave("carol")
    assert meeting.join(DAVE, AV, conn=4, now=14.0).participant.joined_at == 14.0


def test_a_former_participant_may_come_back_at_the_end_of_the_line() -> None:
    meeting = opened()
    meeting.join(BOB, AV, conn=2, now=11.0)
    meeting.join(CAROL, AV, conn=3, now=12.0)
    meeting.leave("bob")
    assert "bob" not in meeting.invited
    again = meeting.join(BOB, AV, conn=9, now=20.0)
    assert not again.rejoined and again.participant.joined_at == 20.0
    assert list(meeting.participants) == ["alice", "carol", "bob"]


def test_decline_only_when_invited() -> None:
    meeting = opened()
    assert meeting.decline("bob").inviter == ALICE
    assert code_of(meeting.decline, "bob") is ErrorCode.FORBIDDEN
    assert code_of(meeting.join, BOB, AV, 2, 11.0) is ErrorCode.FORBIDDEN
    assert code_of(meeting.decline, "alice") is ErrorCode.FORBIDDEN


def test_the_host_hands_over_to_the_longest_present() -> None:
    meeting = opened()
    meeting.join(BOB, AV, conn=2, now=11.0)
    meeting.join(CAROL, AV, conn=3, now=12.0)
    left = meeting.leave("alice")
    assert left.host == "bob" and not left.empty and left.reason is LeaveReason.LEFT
    left = meeting.leave("carol", LeaveReason.LOST)
    assert left.host == "bob" and left.reason is LeaveReason.LOST
    assert code_of(meeting.leave, "carol") is ErrorCode.FORBIDDEN
    left = meeting.leave("bob")
    assert left.empty


def test_only_the_host_ends_and_then_nothing_goes() -> None:
    meeting = opened()
    meeting.join(BOB, AV, conn=2, now=11.0)
    assert code_of(meeting.check_end, "bob") is ErrorCode.FORBIDDEN
    assert code_of(meeting.check_end, "carol") is ErrorCode.FORBIDDEN
    meeting.check_end("alice")
    present = meeting.end(MeetingReason.ENDED, now=30.0)
    assert [p.username for p in present] == ["alice", "bob"]
    assert meeting.ended and meeting.reason is MeetingReason.ENDED and meeting.ended_at == 30.0
    for attempt in (
        lambda: meeting.join(CAROL, AV, 3, 31.0),
        lambda: meeting.decline("carol"),
        lambda: meeting.leave("alice"),
        lambda: meeting.set_media("alice", True, True, True),
        lambda: meeting.end(MeetingReason.EMPTY, 32.0),
    ):
        assert code_of(attempt) is ErrorCode.NOT_FOUND


def test_media_and_signal_between_participants_only() -> None:
    meeting = opened()
    meeting.join(BOB, AV, conn=2, now=11.0)
    assert meeting.set_media("bob", False, True, True)
    assert not meeting.set_media("bob", False, True, True)
    assert meeting.participants["bob"].media_state() == {
        "audio": False,
        "video": True,
        "screen": True,
    }
    assert code_of(meeting.set_media, "carol", True, True, False) is ErrorCode.FORBIDDEN
    assert meeting.signal_target("alice", "bob").conn == 2
    assert code_of(meeting.signal_target, "alice", "carol") is ErrorCode.FORBIDDEN
    assert code_of(meeting.signal_target, "carol", "alice") is ErrorCode.FORBIDDEN
    assert code_of(meeting.signal_target, "alice", "alice") is ErrorCode.BAD_MESSAGE


def test_binding_detach_and_rejoin() -> None:
    meeting = opened()
    meeting.join(BOB, AV, conn=2, now=11.0)
    meeting.set_media("bob", True, True, True)
    assert not meeting.detach("bob", 7)  # not bob's bound connection
    assert not meeting.detach("carol", 2)
    # A second connection of bob's cannot take the place while the first is bound.
    assert code_of(meeting.join, BOB, AV, 5, 12.0) is ErrorCode.BUSY
    again = meeting.join(BOB, AV, conn=2, now=12.0)  # the bound one asking again
    assert again.rejoined and not again.media_changed
    assert meeting.detach("bob", 2)
    assert meeting.bound_conn("bob") is None and meeting.is_participant("bob")
    assert not meeting.detach("bob", 2)
    back = meeting.join(BOB, AUDIO, conn=5, now=13.0)
    assert back.rejoined and back.media_changed
    assert back.participant.joined_at == 11.0 and meeting.bound_conn("bob") == 5
    assert back.participant.media_state() == {"audio": True, "video": False, "screen": False}
    assert list(meeting.participants) == ["alice", "bob"]


def test_the_table_keeps_a_user_in_one_meeting() -> None:
    table = MeetingTable()
    first = opened()
    table.add(first)
    assert table.get("m1") is first and table.of_user("alice") is first and len(table) == 1
    assert [m.meeting_id for m in table.invitations_of("bob")] == ["m1"]
    with pytest.raises(ProtocolError) as info:
        table.add(opened())
    assert info.value.code is ErrorCode.BAD_MESSAGE
    second = Meeting.create("m2", BOB, AV, conn=2, now=0.0, capacity=4)
    second.invite("bob", [ALICE])
    table.add(second)
    second.join(ALICE, AV, 1, 1.0)
    assert code_of(table.joined, second, "alice") is ErrorCode.BUSY
    table.left(second, "alice")  # not in it as far as the table knows: nothing changes
    assert table.of_user("alice") is first
    table.remove(first)
    assert table.of_user("alice") is None and table.get("m1") is None
    table.joined(second, "alice")
    assert table.of_user("alice") is second and len(table.all()) == 1
