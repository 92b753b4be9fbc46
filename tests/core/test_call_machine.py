"""Every transition of the call state machine, without sockets or timers."""

from __future__ import annotations

from gui.core.call_machine import (
    MAX_TRICKLED_CANDIDATES,
    NO_CONNECTION_DETAIL,
    UNUSABLE_DETAIL,
    AddCandidate,
    ApplyRemoteDescription,
    CallMachine,
    CallState,
    ClosePeer,
    MakeAnswer,
    MakeOffer,
    Role,
    SendRequest,
    StateChanged,
)

CID = "123e4567-e89b-12d3-a456-426614174000"
#: What a machine that ends as failed sends: the peer learns it failed.
FAILED_HANGUP = SendRequest("call.hangup", {"call_id": CID, "reason": "failed"})
AV = {"audio": True, "video": True}
OFFER = {"type": "offer", "sdp": "o"}
ANSWER = {"type": "answer", "sdp": "a"}
CAND = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


def caller() -> CallMachine:
    machine = CallMachine(Role.CALLER, CID, "bob", AV)
    machine.place()
    return machine


def callee() -> CallMachine:
    return CallMachine(Role.CALLEE, CID, "alice", AV)


def ended(reason: str) -> list:
    return [StateChanged(CallState.ENDED, reason), ClosePeer()]


def test_caller_happy_path() -> None:
    m = caller()
    assert m.take_actions() == [
        SendRequest("call.invite", {"to": "bob", "call_id": CID, "media": AV}),
        StateChanged(CallState.OUTGOING_RINGING),
        MakeOffer(),
    ]
    m.local_description(OFFER)  # made while ringing: held until the callee answers
    m.server_event({"type": "call.ringing", "call_id": CID})
    assert m.ringing and m.take_actions() == []
    m.server_event({"type": "call.accepted", "call_id": CID})
    assert m.take_actions() == [
        StateChanged(CallState.CONNECTING),
        SendRequest("rtc.signal", {"call_id": CID, "description": OFFER}),
    ]
    m.server_event({"type": "rtc.signal", "call_id": CID, "candidate": CAND})
    assert m.take_actions() == []  # held until the answer is applied
    m.server_event({"type": "rtc.signal", "call_id": CID, "description": ANSWER})
    assert m.take_actions() == [ApplyRemoteDescription(ANSWER), AddCandidate(CAND)]
    m.server_event({"type": "rtc.signal", "call_id": CID, "candidate": CAND})
    assert m.take_actions() == [AddCandidate(CAND)]
    m.media_state("connected")
    assert m.take_actions() == [StateChanged(CallState.CONNECTED)]
    m.hang_up()
    assert m.take_actions() == [SendRequest("call.hangup", {"call_id": CID}), *ended("hangup")]
    assert m.ended and m.reason == "hangup"


def test_callee_answers_the_offer() -> None:
    m = callee()
    assert m.state is CallState.INCOMING_RINGING
    assert m.take_actions() == [StateChanged(CallState.INCOMING_RINGING)]
    m.accept()
    assert m.take_actions() == [
        SendRequest("call.accept", {"call_id": CID}),
        StateChanged(CallState.CONNECTING),
    ]
    m.server_event({"type": "rtc.signal", "call_id": CID, "description": OFFER, "candidate": CAND})
    assert m.take_actions() == [ApplyRemoteDescription(OFFER), MakeAnswer(), AddCandidate(CAND)]
    m.local_description(ANSWER)
    assert m.take_actions() == [SendRequest("rtc.signal", {"call_id": CID, "description": ANSWER})]


def test_a_second_offer_is_ignored() -> None:
    m = callee()
    m.accept()
    m.take_actions()
    m.server_event({"type": "rtc.signal", "description": OFFER})
    m.take_actions()
    m.server_event({"type": "rtc.signal", "description": OFFER})
    assert m.take_actions() == [] and not m.ended


def failed_after(m: CallMachine) -> None:
    """The call ended as failed, told the server, and says why."""
    assert m.take_actions() == [FAILED_HANGUP, *ended("failed")]
    assert m.detail == UNUSABLE_DETAIL and m.problem


def answered_callee() -> CallMachine:
    m = callee()
    m.accept()
    m.take_actions()
    return m


def test_what_the_peer_cannot_mean_fails_the_call() -> None:
    for signal in (
        {"description": ANSWER},  # the callee gets an answer
        {"description": "v=0"},  # not an object
        {"description": {"sdp": "v=0"}},  # no type
        {"candidate": ["candidate:1"]},
    ):
        m = answered_callee()
        m.server_event({"type": "rtc.signal", "call_id": CID, **signal})
        failed_after(m)
    m = caller()
    m.local_description(OFFER)
    m.server_event({"type": "call.accepted", "call_id": CID})
    m.take_actions()
    m.server_event({"type": "rtc.signal", "call_id": CID, "description": OFFER})  # glare
    failed_after(m)


def test_unusable_input_found_by_the_session_ends_the_call_once() -> None:
    m = answered_callee()
    m.server_event({"type": "rtc.signal", "call_id": CID, "description": OFFER})
    m.take_actions()
    m.remote_unusable("offer: no media section")
    failed_after(m)
    assert m.problem == "offer: no media section"
    m.remote_unusable("again")
    m.connect_deadline_passed()
    assert m.take_actions() == [] and m.problem == "offer: no media section"


def test_a_flood_of_candidates_fails_the_call_without_holding_them() -> None:
    m = answered_callee()
    for _ in range(MAX_TRICKLED_CANDIDATES):
        m.server_event({"type": "rtc.signal", "call_id": CID, "candidate": CAND})
    assert m.take_actions() == [] and not m.ended
    m.server_event({"type": "rtc.signal", "call_id": CID, "candidate": CAND})
    failed_after(m)
    m.server_event({"type": "rtc.signal", "call_id": CID, "description": OFFER})
    assert m.take_actions() == []


def test_the_connect_deadline_fails_only_a_call_still_connecting() -> None:
    m = answered_callee()
    m.connect_deadline_passed()
    assert m.take_actions() == [FAILED_HANGUP, *ended("failed")]
    assert m.detail == NO_CONNECTION_DETAIL
    m = answered_callee()
    m.media_state("connected")
    m.take_actions()
    m.connect_deadline_passed()
    assert m.take_actions() == [] and not m.ended and m.detail is None


def test_signals_before_accept_are_ignored() -> None:
    m = callee()
    m.take_actions()
    m.server_event({"type": "rtc.signal", "description": OFFER})
    assert m.take_actions() == []


def test_decline_cancel_and_remote_end() -> None:
    m = callee()
    m.take_actions()
    m.decline()
    assert m.take_actions() == [SendRequest("call.decline", {"call_id": CID}), *ended("declined")]
    m = caller()
    m.take_actions()
    m.hang_up()
    assert m.take_actions() == [SendRequest("call.cancel", {"call_id": CID}), *ended("cancelled")]
    m = caller()
    m.take_actions()
    m.server_event({"type": "call.ended", "call_id": CID, "reason": "busy"})
    assert m.take_actions() == ended("busy")
    m.server_event({"type": "call.ended", "call_id": CID, "reason": "hangup"})
    m.hang_up()
    assert m.take_actions() == [] and m.reason == "busy"


def test_refused_invite_ends_with_the_code() -> None:
    m = caller()
    m.take_actions()
    m.request_failed("call.invite", "forbidden")
    assert m.take_actions() == ended("forbidden")


def test_media_failure_and_silence() -> None:
    m = caller()
    m.server_event({"type": "call.accepted"})
    m.media_state("connected")
    m.take_actions()
    m.media_state("disconnected")
    # The path broke: a restart is offered on a fresh link (tests/core/test_call_recovery.py).
    assert m.take_actions()[0] == StateChanged(CallState.RECONNECTING)
    m.media_resumed()
    assert m.take_actions()[0] == StateChanged(CallState.CONNECTED)
    m.media_silent()
    assert m.take_actions() == [SendRequest("call.hangup", {"call_id": CID}), *ended("lost")]
    m = caller()
    m.server_event({"type": "call.accepted"})
    m.take_actions()
    m.media_state("failed")
    assert m.take_actions() == [FAILED_HANGUP, *ended("failed")]


def test_replayed_accept_after_reconnect_changes_nothing() -> None:
    m = caller()
    m.server_event({"type": "call.accepted"})
    m.media_state("connected")
    m.take_actions()
    m.server_event({"type": "call.accepted", "call_id": CID, "peer": "bob", "role": "caller"})
    assert m.take_actions() == [] and m.state is CallState.CONNECTED


def test_the_peer_closing_its_connection_is_a_hangup() -> None:
    m = caller()
    m.server_event({"type": "call.accepted"})
    m.media_state("connected")
    m.take_actions()
    m.media_state("closed")
    assert m.take_actions() == [SendRequest("call.hangup", {"call_id": CID}), *ended("hangup")]
    m.media_state("closed")
    assert m.take_actions() == []


def test_an_offer_still_being_made_at_the_accept_is_sent_when_ready() -> None:
    m = caller()
    m.take_actions()
    m.server_event({"type": "call.accepted", "call_id": CID})
    assert m.take_actions() == [StateChanged(CallState.CONNECTING)]
    m.local_description(OFFER)
    assert m.take_actions() == [SendRequest("rtc.signal", {"call_id": CID, "description": OFFER})]
