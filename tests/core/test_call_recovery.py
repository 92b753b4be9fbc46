"""The call machine's recovery from a dead path: restarts on a candidate link, without I/O."""

from __future__ import annotations

from gui.core.call_machine import (
    AddCandidate,
    ApplyRemoteDescription,
    CallMachine,
    CallState,
    CloseCandidate,
    ClosePeer,
    MakeAnswer,
    MakeOffer,
    OpenCandidate,
    PromoteCandidate,
    Role,
    SendRequest,
    StateChanged,
)

CID = "123e4567-e89b-12d3-a456-426614174000"
AV = {"audio": True, "video": True}
OFFER = {"type": "offer", "sdp": "o"}
ANSWER = {"type": "answer", "sdp": "a"}
CAND = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


def connected(role: Role) -> CallMachine:
    """A machine of ``role`` whose call is connected, its actions taken."""
    if role is Role.CALLER:
        m = CallMachine(Role.CALLER, CID, "bob", AV)
        m.place()
        m.local_description(OFFER)
        m.server_event({"type": "call.accepted", "call_id": CID})
        m.server_event({"type": "rtc.signal", "call_id": CID, "description": ANSWER})
    else:
        m = CallMachine(Role.CALLEE, CID, "alice", AV)
        m.accept()
        m.server_event({"type": "rtc.signal", "call_id": CID, "description": OFFER})
        m.local_description(ANSWER)
    m.media_state("connected")
    m.take_actions()
    assert m.state is CallState.CONNECTED
    return m


def signal(token: str, description: dict | None = None, candidate: dict | None = None) -> dict:
    message: dict = {"type": "rtc.signal", "call_id": CID, "restart": token}
    if description is not None:
        message["description"] = description
    if candidate is not None:
        message["candidate"] = candidate
    return message


def restart_signal(token: str, description: dict) -> SendRequest:
    return SendRequest("rtc.signal", {"call_id": CID, "description": description, "restart": token})


def test_lost_path_offers_a_restart_and_the_candidate_takes_over() -> None:
    m = connected(Role.CALLER)
    m.path_lost()
    assert m.take_actions() == [
        StateChanged(CallState.RECONNECTING),
        OpenCandidate("caller-1", offerer=True),
        MakeOffer("caller-1"),
    ]
    m.path_lost()  # still quiet: the candidate under way is not doubled
    assert m.take_actions() == []
    m.candidate_description("caller-1", OFFER)
    assert m.take_actions() == [restart_signal("caller-1", OFFER)]
    m.server_event(signal("caller-1", ANSWER, CAND))
    assert m.take_actions() == [
        ApplyRemoteDescription(ANSWER, "caller-1"),
        AddCandidate(CAND, "caller-1"),
    ]
    m.candidate_state("caller-1", "connecting")
    assert m.take_actions() == []
    m.candidate_state("caller-1", "connected")
    assert m.take_actions() == [
        PromoteCandidate("caller-1"),
        StateChanged(CallState.CONNECTED),
    ]
    assert m.recoveries == 1 and m.restart_link is None and not m.ended


def test_the_old_path_coming_back_first_drops_our_candidate() -> None:
    m = connected(Role.CALLEE)
    m.path_lost()
    assert m.take_actions()[1:] == [
        OpenCandidate("callee-1", offerer=True),
        MakeOffer("callee-1"),
    ]
    m.media_resumed()
    assert m.take_actions() == [StateChanged(CallState.CONNECTED), CloseCandidate("callee-1")]
    # The answer to the dropped restart arrives late: ignored.
    m.server_event(signal("callee-1", ANSWER))
    assert m.take_actions() == []
    m.candidate_state("callee-1", "connected")
    assert m.take_actions() == []


def test_our_answered_candidate_outlives_the_old_path_coming_back() -> None:
    """The peer may carry the call on our candidate already (its end connected first) and
    close the old link: this end keeps the candidate, and the old link's closing is not a
    hang-up but the move, which the candidate completes."""
    m = connected(Role.CALLER)
    m.path_lost()
    m.candidate_description("caller-1", OFFER)
    m.server_event(signal("caller-1", ANSWER))
    m.take_actions()
    m.media_resumed()
    assert m.take_actions() == [StateChanged(CallState.CONNECTED)]
    m.media_state("closed")  # the peer promoted caller-1 and closed the old link
    assert m.take_actions() == [StateChanged(CallState.RECONNECTING)]
    m.candidate_state("caller-1", "connected")
    assert m.take_actions() == [PromoteCandidate("caller-1"), StateChanged(CallState.CONNECTED)]
    m.media_state("closed")  # the old link, before the I/O layer moved the call off it
    assert m.take_actions() == [] and not m.ended and m.recoveries == 1
    m.moved("caller-1")
    m.media_state("closed")  # the peer hangs up (the promoted link closes): the call ends
    assert m.ended and m.reason == "hangup"


def test_the_peer_restart_is_answered_even_while_connected() -> None:
    """The peer cannot hear us although we hear it: it offers, and we answer."""
    m = connected(Role.CALLEE)
    m.server_event(signal("caller-1", OFFER, CAND))
    assert m.take_actions() == [
        OpenCandidate("caller-1", offerer=False),
        ApplyRemoteDescription(OFFER, "caller-1"),
        MakeAnswer("caller-1"),
        AddCandidate(CAND, "caller-1"),
    ]
    m.candidate_description("caller-1", ANSWER)
    assert m.take_actions() == [restart_signal("caller-1", ANSWER)]
    m.media_resumed()  # we still hear the old link: the peer's candidate stays
    assert m.take_actions() == []
    m.candidate_state("caller-1", "connected")
    assert m.take_actions() == [PromoteCandidate("caller-1")]
    assert m.state is CallState.CONNECTED


def test_crossed_restarts_the_caller_wins() -> None:
    caller, callee = connected(Role.CALLER), connected(Role.CALLEE)
    caller.path_lost()
    callee.path_lost()
    caller.take_actions()
    callee.take_actions()
    # The callee's offer reaches the caller, which has its own under way: ignored.
    caller.server_event(signal("callee-1", OFFER))
    assert caller.take_actions() == []
    # The caller's offer reaches the callee: it drops its own and answers.
    callee.server_event(signal("caller-1", OFFER))
    assert callee.take_actions() == [
        CloseCandidate("callee-1"),
        OpenCandidate("caller-1", offerer=False),
        ApplyRemoteDescription(OFFER, "caller-1"),
        MakeAnswer("caller-1"),
    ]


def test_a_candidate_that_does_not_connect_is_replaced_then_the_call_is_lost() -> None:
    m = connected(Role.CALLER)
    m.path_lost()
    m.take_actions()
    m.candidate_timed_out("caller-0")  # not ours: nothing
    assert m.take_actions() == []
    m.candidate_timed_out("caller-1")
    assert m.take_actions() == [
        CloseCandidate("caller-1"),
        OpenCandidate("caller-2", offerer=True),
        MakeOffer("caller-2"),
    ]
    m.candidate_state("caller-2", "failed")
    assert m.take_actions()[0] == CloseCandidate("caller-2")
    m.reconnect_deadline_passed()
    assert m.take_actions() == [
        CloseCandidate("caller-3"),
        SendRequest("call.hangup", {"call_id": CID}),
        StateChanged(CallState.ENDED, "lost"),
        ClosePeer(),
    ]


def test_the_old_link_failing_while_connected_starts_recovery() -> None:
    m = connected(Role.CALLER)
    m.media_state("failed")
    assert m.take_actions()[:2] == [
        StateChanged(CallState.RECONNECTING),
        OpenCandidate("caller-1", offerer=True),
    ]
    assert not m.ended


def test_bad_restart_signals_are_ignored_or_drop_only_the_candidate() -> None:
    m = connected(Role.CALLEE)
    for token in (7, "", "x" * 33):
        m.server_event({"type": "rtc.signal", "call_id": CID, "restart": token, "description": {}})
    m.server_event(signal("caller-9", ANSWER))  # an answer to nothing we offered
    m.server_event(signal("caller-9", {"type": "pranswer", "sdp": "x"}))
    m.server_event(signal("caller-9", candidate=CAND))  # a candidate for no link
    assert m.take_actions() == []
    m.server_event(signal("caller-1", OFFER))
    m.take_actions()
    m.candidate_unusable("caller-1", "no fingerprint")
    assert m.take_actions() == [CloseCandidate("caller-1")]
    assert m.state is CallState.CONNECTED and not m.ended


def test_restarts_before_the_call_connected_or_after_it_ended_change_nothing() -> None:
    m = CallMachine(Role.CALLEE, CID, "alice", AV)
    m.server_event(signal("caller-1", OFFER))  # still ringing
    m.path_lost()
    assert m.take_actions() == [StateChanged(CallState.INCOMING_RINGING)]
    m = connected(Role.CALLER)
    m.hang_up()
    m.take_actions()
    m.path_lost()
    m.server_event(signal("callee-1", OFFER))
    m.candidate_state("callee-1", "connected")
    assert m.take_actions() == []


def test_signaling_back_while_reconnecting_offers_again() -> None:
    """What was sent on a dead signaling connection may be lost: a new restart is offered."""
    m = connected(Role.CALLER)
    m.signaling_reconnected()  # connected: nothing to do
    assert m.take_actions() == []
    m.path_lost()
    m.take_actions()
    m.signaling_reconnected()
    assert m.take_actions() == [
        CloseCandidate("caller-1"),
        OpenCandidate("caller-2", offerer=True),
        MakeOffer("caller-2"),
    ]


def test_a_call_taken_over_offers_a_restart_and_answers_the_callers_crossing_one() -> None:
    """The Echo Test of a new coordinator takes over a call another process answered
    (``taken_over``): reconnecting at once, it offers a restart; the caller's own restart,
    which crossed it, wins: the taker drops its candidate and answers, and the answered one
    carries the call once it connects."""
    m = CallMachine(Role.CALLEE, CID, "alice", {})
    m.take_actions()
    m.taken_over()
    assert m.state is CallState.RECONNECTING
    assert m.take_actions() == [
        StateChanged(CallState.RECONNECTING),
        OpenCandidate("callee-1", offerer=True),
        MakeOffer("callee-1"),
    ]
    m.server_event(signal("caller-1", OFFER))
    assert m.take_actions() == [
        CloseCandidate("callee-1"),
        OpenCandidate("caller-1", offerer=False),
        ApplyRemoteDescription(OFFER, "caller-1"),
        MakeAnswer("caller-1"),
    ]
    m.candidate_description("caller-1", ANSWER)
    assert m.take_actions() == [restart_signal("caller-1", ANSWER)]
    m.candidate_state("caller-1", "connected")
    assert m.state is CallState.CONNECTED and m.recoveries == 1
    assert m.take_actions() == [
        PromoteCandidate("caller-1"),
        StateChanged(CallState.CONNECTED),
    ]
    m.taken_over()  # once only
    assert m.take_actions() == []
