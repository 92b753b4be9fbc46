"""Coming back to a meeting on a new connection while the server still holds the old one
(a new address: the server notices the dead socket only after up to a minute of silence): the
join is refused ``busy`` and tried again, without I/O."""

from __future__ import annotations

from gui.core.meeting_machine import (
    REJOIN_ATTEMPTS,
    REJOIN_RETRY_S,
    MeetingMachine,
    MeetingState,
    OpenLink,
    RetryJoin,
    SendRequest,
    StateChanged,
)
from tests.core.test_meeting_machine import MID, joined_as, kinds, meeting

JOIN = SendRequest("meeting.join", {"meeting_id": MID, "media": {"audio": True, "video": True}})


def test_busy_after_a_reconnection_is_tried_again_until_the_server_lets_go() -> None:
    m = joined_as("cy", "ada", "bob")
    m.signaling_reconnected()
    assert m.take_actions() == [JOIN, StateChanged(MeetingState.JOINING)]
    for _ in range(3):
        m.request_failed("meeting.join", "busy")
        assert m.take_actions() == [RetryJoin(REJOIN_RETRY_S)]
        m.retry_join()
        assert m.take_actions() == [JOIN]
    m.request_succeeded("meeting.join", {"meeting": meeting("ada", "bob", "cy")})
    actions = kinds(m.take_actions())
    assert StateChanged(MeetingState.JOINED) in actions
    assert OpenLink("ada", offerer=True) in actions and OpenLink("bob", offerer=True) in actions


def test_busy_for_too_long_ends_it_and_a_first_join_is_not_retried() -> None:
    m = joined_as("cy", "ada")
    m.signaling_reconnected()
    m.take_actions()
    for _ in range(REJOIN_ATTEMPTS):
        m.request_failed("meeting.join", "busy")
        m.take_actions()
        m.retry_join()
        m.take_actions()
    m.request_failed("meeting.join", "busy")
    assert m.take_actions()[-1] == StateChanged(MeetingState.ENDED, "busy")
    m.retry_join()  # a timer left over: nothing
    assert m.take_actions() == []
    fresh = MeetingMachine("dan", MID, {"audio": True, "video": True})  # a first join
    fresh.join()
    fresh.take_actions()
    fresh.request_failed("meeting.join", "busy")
    assert fresh.take_actions()[-1] == StateChanged(MeetingState.ENDED, "busy")


def test_a_renewed_link_is_offered_anew_by_its_offerer_only() -> None:
    from gui.core.meeting_machine import CloseLink

    m = joined_as("cy", "ada", "bob")  # cy offered to both
    m.renew_link("ada")  # still connecting: nothing
    assert m.take_actions() == []
    m.link_state("ada", "connected")
    m.take_actions()
    m.renew_link("ada")
    assert kinds(m.take_actions()) == [CloseLink("ada"), OpenLink("ada", offerer=True)]
    ada = MeetingMachine("ada", MID, {"audio": True, "video": True})
    ada.join()
    ada.request_succeeded("meeting.join", {"meeting": meeting("ada")})
    ada.server_event({"type": "rtc.signal", "meeting_id": MID, "from": "cy",
                      "description": {"type": "offer", "sdp": "o"}})  # fmt: skip
    ada.link_state("cy", "connected")
    ada.take_actions()
    ada.renew_link("cy")  # ada answered on this pair: cy renews it, not ada
    assert ada.take_actions() == []
