"""Every transition of the meeting state machine, without sockets or timers."""

from __future__ import annotations

from gui.core.call_machine import MAX_TRICKLED_CANDIDATES
from gui.core.meeting_machine import (
    LINK_RETRY_DELAYS_S,
    AddCandidate,
    ApplyRemoteDescription,
    CloseLink,
    LinkState,
    MakeAnswer,
    MeetingMachine,
    MeetingState,
    OpenLink,
    Participant,
    ParticipantsChanged,
    RetryLink,
    SendRequest,
    StateChanged,
)

MID = "123e4567-e89b-12d3-a456-426614174000"
AV = {"audio": True, "video": True}
OFFER = {"type": "offer", "sdp": "o"}
ANSWER = {"type": "answer", "sdp": "a"}
CAND = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


def person(name: str, **media: bool) -> dict:
    return {
        "username": name,
        "display_name": name.title(),
        "audio": media.get("audio", True),
        "video": media.get("video", True),
        "screen": media.get("screen", False),
        "joined_at": "2026-11-30T10:00:00.000Z",
    }


def meeting(*names: str, host: str | None = None, invited: tuple[str, ...] = ()) -> dict:
    return {
        "meeting_id": MID,
        "host": host or names[0],
        "topology": "mesh",
        "capacity": 4,
        "participants": [person(n) for n in names],
        "invited": [{"username": u, "display_name": u} for u in invited],
        "started_at": "2026-11-30T10:00:00.000Z",
    }


def signal(sender: str, **what: object) -> dict:
    return {"type": "rtc.signal", "meeting_id": MID, "from": sender, **what}


def kinds(actions: list) -> list:
    """The actions without the ParticipantsChanged snapshots (checked on their own)."""
    return [a for a in actions if not isinstance(a, ParticipantsChanged)]


def host_alone() -> MeetingMachine:
    """Ada created the meeting, inviting bob and cy; nobody else is in yet."""
    m = MeetingMachine("ada", MID, {**AV, "screen": False})
    m.create(invite=["Bob", "cy"], title="Standup")
    m.request_succeeded("meeting.create", {"meeting": meeting("ada", invited=("bob", "cy"))})
    m.take_actions()
    return m


def joined_as(me: str, *present: str) -> MeetingMachine:
    """``me`` joined a meeting where ``present`` were already (and offered to each)."""
    m = MeetingMachine(me, MID, AV)
    m.join()
    m.request_succeeded("meeting.join", {"meeting": meeting(*present, me)})
    m.take_actions()
    return m


def test_the_host_creates_and_answers_each_newcomer() -> None:
    m = MeetingMachine("ada", MID, {**AV, "screen": False})
    m.create(invite=["Bob", "cy"], title="Standup")
    assert m.take_actions() == [
        SendRequest(
            "meeting.create",
            {"meeting_id": MID, "media": AV, "invite": ["bob", "cy"], "title": "Standup"},
        ),
        StateChanged(MeetingState.JOINING),
    ]
    m.request_succeeded("meeting.create", {"meeting": meeting("ada", invited=("bob", "cy"))})
    assert m.take_actions() == [
        StateChanged(MeetingState.JOINED),
        ParticipantsChanged((), "ada", ("bob", "cy")),
    ]
    # Bob joins: nothing is opened until he offers (the joiner offers, those present answer).
    m.server_event({"type": "meeting.joined", "meeting_id": MID, "participant": person("bob")})
    (changed,) = m.take_actions()
    assert isinstance(changed, ParticipantsChanged) and changed.invited == ("cy",)
    assert changed.participants == (Participant("bob", "Bob", True, True, False),)
    m.server_event(signal("bob", candidate=CAND))  # no link yet: nothing to hold it for
    assert m.take_actions() == []
    m.server_event(signal("bob", description=OFFER))
    assert kinds(m.take_actions()) == [
        OpenLink("bob", offerer=False),
        ApplyRemoteDescription("bob", OFFER),
        MakeAnswer("bob"),
    ]
    assert m.link_offerer("bob") is False
    m.server_event(signal("bob", candidate=CAND))
    assert m.take_actions() == [AddCandidate("bob", CAND)]
    m.local_description("bob", ANSWER)
    assert m.take_actions() == [
        SendRequest("rtc.signal", {"meeting_id": MID, "to": "bob", "description": ANSWER})
    ]
    m.link_state("bob", "connected")
    (changed,) = m.take_actions()
    assert changed.participants[0].link is LinkState.CONNECTED


def test_the_joiner_offers_to_everyone_present_in_order() -> None:
    m = MeetingMachine("dan", MID, AV)
    m.join()
    assert m.take_actions() == [
        SendRequest("meeting.join", {"meeting_id": MID, "media": AV}),
        StateChanged(MeetingState.JOINING),
    ]
    m.request_succeeded("meeting.join", {"meeting": meeting("ada", "cy", "bob", "dan")})
    actions = m.take_actions()
    assert kinds(actions) == [
        StateChanged(MeetingState.JOINED),
        OpenLink("ada", offerer=True),
        OpenLink("cy", offerer=True),
        OpenLink("bob", offerer=True),
    ]
    assert [p.username for p in m.participants.values()] == ["ada", "cy", "bob"]
    assert all(p.link is LinkState.CONNECTING for p in m.participants.values())
    # Offers go out as each is made; answers are applied with the candidates held for them.
    m.local_description("cy", OFFER)
    assert m.take_actions() == [
        SendRequest("rtc.signal", {"meeting_id": MID, "to": "cy", "description": OFFER})
    ]
    m.server_event(signal("cy", candidate=CAND))
    assert m.take_actions() == []
    m.server_event(signal("cy", description=ANSWER))
    assert m.take_actions() == [ApplyRemoteDescription("cy", ANSWER), AddCandidate("cy", CAND)]
    m.server_event(signal("cy", description=ANSWER))  # a second answer changes nothing
    assert m.take_actions() == []


def test_a_joiner_who_finds_the_meeting_full_or_is_refused_ends() -> None:
    for code in ("meeting_full", "forbidden", "not_found", "busy"):
        m = MeetingMachine("eve", MID, AV)
        m.join()
        m.take_actions()
        m.request_failed("meeting.join", code)
        assert m.take_actions() == [StateChanged(MeetingState.ENDED, code)]
        assert m.ended and m.reason == code


def test_an_invitation_is_joined_or_declined() -> None:
    event = {
        "type": "meeting.invited",
        "meeting_id": MID.upper(),
        "from": {"username": "ada", "display_name": "Ada"},
        "title": "Standup",
        "participants": [{"username": "ada", "display_name": "Ada"}],
        "media": AV,
    }
    m = MeetingMachine.from_invitation("bob", event, AV)
    assert m.meeting_id == MID and m.title == "Standup" and m.inviter == event["from"]
    assert m.take_actions() == [StateChanged(MeetingState.INVITED)]
    m.join()
    assert m.take_actions()[0] == SendRequest("meeting.join", {"meeting_id": MID, "media": AV})
    m = MeetingMachine.from_invitation("bob", event, AV)
    m.take_actions()
    m.decline()
    assert m.take_actions() == [
        SendRequest("meeting.decline", {"meeting_id": MID}),
        StateChanged(MeetingState.ENDED, "declined"),
    ]
    m = MeetingMachine.from_invitation("bob", event, AV)
    m.take_actions()
    m.server_event({"type": "meeting.ended", "meeting_id": MID, "reason": "ended"})
    assert m.take_actions() == [StateChanged(MeetingState.ENDED, "ended")]


def test_a_participant_who_leaves_has_their_link_closed_and_the_host_moves() -> None:
    m = joined_as("cy", "ada", "bob")
    m.server_event(
        {
            "type": "meeting.left",
            "meeting_id": MID,
            "username": "ada",
            "reason": "left",
            "host": "bob",
        }
    )
    actions = m.take_actions()
    assert kinds(actions) == [CloseLink("ada")]
    assert actions[-1] == ParticipantsChanged(
        (Participant("bob", "Bob", True, True, False, LinkState.CONNECTING),), "bob"
    )
    assert m.host == "bob" and m.link_offerer("ada") is None


def test_leaving_and_ending_close_every_link() -> None:
    m = joined_as("cy", "ada", "bob")
    m.leave()
    assert m.take_actions() == [
        SendRequest("meeting.leave", {"meeting_id": MID}),
        CloseLink("ada"),
        CloseLink("bob"),
        StateChanged(MeetingState.ENDED, "left"),
    ]
    m.leave()
    m.server_event({"type": "meeting.ended", "meeting_id": MID, "reason": "ended"})
    assert m.take_actions() == [] and m.reason == "left"
    # Only the host ends the meeting; anyone else who tries just leaves.
    m = joined_as("cy", "ada", "bob")
    m.end()
    assert m.take_actions()[0] == SendRequest("meeting.leave", {"meeting_id": MID})
    m = host_alone()
    m.end()
    assert m.take_actions() == [
        SendRequest("meeting.end", {"meeting_id": MID}),
        StateChanged(MeetingState.ENDED, "ended"),
    ]
    m = joined_as("cy", "ada")
    m.server_event({"type": "meeting.ended", "meeting_id": MID, "reason": "ended"})
    assert m.take_actions() == [CloseLink("ada"), StateChanged(MeetingState.ENDED, "ended")]


def test_media_changes_go_both_ways() -> None:
    m = joined_as("cy", "ada")
    m.set_media(audio=False, video=True, screen=True)
    assert m.take_actions() == [
        SendRequest(
            "meeting.media", {"meeting_id": MID, "audio": False, "video": True, "screen": True}
        )
    ]
    m.set_media(audio=False, video=True, screen=True)
    assert m.take_actions() == []
    m.server_event(
        {"type": "meeting.media", "meeting_id": MID, "username": "ada", "audio": False,
         "video": False, "screen": True}
    )  # fmt: skip
    (changed,) = m.take_actions()
    assert changed.participants[0].audio is False and changed.participants[0].screen is True
    m.server_event({"type": "meeting.media", "username": "nobody", "audio": True})
    assert m.take_actions() == []


def test_invitations_and_declines_are_tracked() -> None:
    m = host_alone()
    m.invite(["Dan"])
    assert m.take_actions() == [
        SendRequest("meeting.invite", {"meeting_id": MID, "usernames": ["dan"]})
    ]
    m.request_succeeded("meeting.invite", {"meeting": meeting("ada", invited=("bob", "cy", "dan"))})
    assert m.take_actions() == [ParticipantsChanged((), "ada", ("bob", "cy", "dan"))]
    m.server_event({"type": "meeting.declined", "meeting_id": MID, "username": "cy"})
    assert m.take_actions() == [ParticipantsChanged((), "ada", ("bob", "dan"))]
    m.request_failed("meeting.invite", "forbidden")
    assert m.take_actions() == [] and not m.ended


def test_a_broken_link_fails_alone_and_the_meeting_goes_on() -> None:
    m = joined_as("cy", "ada", "bob")
    m.link_state("ada", "failed")
    actions = m.take_actions()
    # This end offered on that pair: it offers a fresh link later (tests/core/test_link_retry.py).
    assert kinds(actions) == [CloseLink("ada"), RetryLink("ada", LINK_RETRY_DELAYS_S[0])]
    assert m.participants["ada"].link is LinkState.FAILED and not m.ended
    m.link_state("ada", "connected")  # a late event of the closed link changes nothing
    assert m.take_actions() == []
    m.link_state("bob", "connected")
    m.link_state("bob", "disconnected")
    assert m.participants["bob"].link is LinkState.RECONNECTING
    m.link_silent("bob")
    assert kinds(m.take_actions()) == [CloseLink("bob"), RetryLink("bob", LINK_RETRY_DELAYS_S[0])]
    assert m.participants["bob"].problem == "nothing received for too long"


def test_the_connect_deadline_fails_only_a_link_still_connecting() -> None:
    m = joined_as("cy", "ada", "bob")
    m.link_state("bob", "connected")
    m.take_actions()
    m.connect_deadline_passed("bob")
    m.connect_deadline_passed("ada")
    assert kinds(m.take_actions()) == [CloseLink("ada"), RetryLink("ada", LINK_RETRY_DELAYS_S[0])]
    assert m.participants["bob"].link is LinkState.CONNECTED


def test_what_one_peer_cannot_mean_fails_its_link_only() -> None:
    for what in (
        {"description": ANSWER},  # an answer on a link where this end answers
        {"description": "v=0"},
        {"description": {"type": "pranswer", "sdp": "x"}},
        {"candidate": ["candidate:1"]},
    ):
        m = host_alone()
        m.server_event({"type": "meeting.joined", "participant": person("bob")})
        m.server_event(signal("bob", description=OFFER))
        m.take_actions()
        m.server_event(signal("bob", **what))
        assert kinds(m.take_actions()) == [CloseLink("bob")], what
        assert m.participants["bob"].link is LinkState.FAILED and m.joined
    m = host_alone()
    m.server_event(signal("bob", description=OFFER))
    m.take_actions()
    for _ in range(MAX_TRICKLED_CANDIDATES):
        m.server_event(signal("bob", candidate=CAND))
    assert len(m.take_actions()) == MAX_TRICKLED_CANDIDATES
    m.server_event(signal("bob", candidate=CAND))
    assert kinds(m.take_actions()) == [CloseLink("bob")]
    m.remote_unusable("bob", "again")  # the link is gone already
    assert m.take_actions() == []


def test_a_participant_who_comes_back_offers_again_and_gets_a_fresh_link() -> None:
    m = host_alone()
    m.server_event({"type": "meeting.joined", "participant": person("bob")})
    m.server_event(signal("bob", description=OFFER))
    m.link_state("bob", "connected")
    m.take_actions()
    m.server_event(signal("bob", description=OFFER))  # his connection came back: a new offer
    assert kinds(m.take_actions()) == [
        CloseLink("bob"),
        OpenLink("bob", offerer=False),
        ApplyRemoteDescription("bob", OFFER),
        MakeAnswer("bob"),
    ]
    assert m.participants["bob"].link is LinkState.CONNECTING


def test_an_offer_before_the_joined_event_still_gets_an_answer() -> None:
    m = host_alone()
    m.server_event(signal("bob", description=OFFER))
    assert OpenLink("bob", offerer=False) in m.take_actions()
    m.server_event({"type": "meeting.joined", "participant": person("bob", video=False)})
    assert m.participants["bob"].link is LinkState.CONNECTING
    assert m.participants["bob"].display_name == "Bob" and not m.participants["bob"].video


def test_after_a_signaling_reconnection_this_end_joins_and_offers_again() -> None:
    m = host_alone()
    m.server_event(signal("bob", description=OFFER))
    m.take_actions()
    m.set_media(audio=False, video=True, screen=False)  # unmuted while away: told on return
    m.take_actions()
    m.signaling_reconnected()
    assert m.take_actions() == [
        SendRequest("meeting.join", {"meeting_id": MID, "media": {"audio": False, "video": True}}),
        StateChanged(MeetingState.JOINING),
    ]
    m.server_event(signal("bob", description=ANSWER))  # for the link of before: dropped
    assert m.take_actions() == []
    m.request_succeeded("meeting.join", {"meeting": meeting("ada", "bob")})
    assert kinds(m.take_actions()) == [
        CloseLink("bob"),
        StateChanged(MeetingState.JOINED),
        OpenLink("bob", offerer=True),
        SendRequest(
            "meeting.media", {"meeting_id": MID, "audio": False, "video": True, "screen": False}
        ),
    ]
    # Had the meeting ended meanwhile, the join finds nothing: ended, not an error.
    m.signaling_reconnected()
    m.take_actions()
    m.request_failed("meeting.join", "not_found")
    assert m.take_actions()[-1] == StateChanged(MeetingState.ENDED, "ended")


def test_signals_outside_the_meeting_and_from_oneself_are_ignored() -> None:
    m = MeetingMachine("ada", MID, AV)
    m.server_event(signal("bob", description=OFFER))
    assert m.take_actions() == []
    m = host_alone()
    m.server_event(signal("ada", description=OFFER))
    m.server_event(signal("bob", description=ANSWER))  # no link: nothing to answer
    m.server_event({"type": "meeting.joined", "participant": person("ada")})
    assert m.take_actions() == [] and m.participants == {}


def test_events_that_overtake_the_join_reply_wait_for_it() -> None:
    m = MeetingMachine("cy", MID, AV)
    m.join()
    m.take_actions()
    m.server_event({"type": "meeting.joined", "participant": person("dan")})
    m.server_event(signal("dan", description=OFFER))
    m.server_event({"type": "meeting.left", "username": "ada", "reason": "left", "host": "bob"})
    m.server_event(signal("bob", description=ANSWER))  # an answer cannot be for this join
    assert m.take_actions() == []
    m.request_succeeded("meeting.join", {"meeting": meeting("ada", "bob", "cy")})
    assert kinds(m.take_actions()) == [
        StateChanged(MeetingState.JOINED),
        OpenLink("ada", offerer=True),
        OpenLink("bob", offerer=True),
        OpenLink("dan", offerer=False),
        ApplyRemoteDescription("dan", OFFER),
        MakeAnswer("dan"),
        CloseLink("ada"),
    ]
    assert list(m.participants) == ["bob", "dan"] and m.host == "bob"


def test_those_listed_after_this_end_joined_later_and_offer_themselves() -> None:
    m = MeetingMachine("bob", MID, AV)
    m.join()
    m.take_actions()
    # Cyd joined while bob's join was being stored: the reply lists her after bob.
    m.request_succeeded("meeting.join", {"meeting": meeting("ada", "bob", "cyd")})
    assert kinds(m.take_actions()) == [
        StateChanged(MeetingState.JOINED),
        OpenLink("ada", offerer=True),
    ]
    assert m.participants["cyd"].link is LinkState.WAITING
    m.server_event(signal("cyd", description=OFFER))
    assert kinds(m.take_actions()) == [
        OpenLink("cyd", offerer=False),
        ApplyRemoteDescription("cyd", OFFER),
        MakeAnswer("cyd"),
    ]
    # After a rejoin this end offers to everyone, wherever they stand in the list.
    m.signaling_reconnected()
    m.request_succeeded("meeting.join", {"meeting": meeting("ada", "bob", "cyd")})
    opened = [a for a in m.take_actions() if isinstance(a, OpenLink)]
    assert opened == [OpenLink("ada", offerer=True), OpenLink("cyd", offerer=True)]


def test_muting_while_the_join_is_on_the_way_is_told_once_in() -> None:
    machine = MeetingMachine("bob", MID, {**AV, "screen": False})
    machine.join()
    machine.take_actions()
    machine.set_media(audio=False, video=True, screen=False)  # not joined yet: nothing sent
    assert machine.take_actions() == []
    machine.request_succeeded("meeting.join", {"meeting": meeting("ada", "bob")})
    media = [a for a in machine.take_actions() if isinstance(a, SendRequest)]
    assert media[-1] == SendRequest(
        "meeting.media", {"meeting_id": MID, "audio": False, "video": True, "screen": False}
    )
    # Joined with what the server was told: nothing more.
    other = MeetingMachine("cyd", MID, {**AV, "screen": False})
    other.join()
    other.take_actions()
    other.request_succeeded("meeting.join", {"meeting": meeting("ada", "cyd")})
    assert not [
        a for a in other.take_actions() if isinstance(a, SendRequest) and a.kind == "meeting.media"
    ]


def test_joining_after_a_move_from_end_to_end_is_remembered_for_the_chat() -> None:
    """The Meeting says the chat went end to end until the move (a call that became a meeting
    through the media server): this end joined later and misses it. A meeting without it, and
    the parties who came from the call, do not; a return keeps what this end had."""
    moved = meeting("ada", "bob", "cy") | {
        "topology": "sfu",
        "end_to_end_until": "2026-11-30T10:00:05.000Z",
    }
    late = MeetingMachine("cy", MID, AV)
    late.join()
    late.request_succeeded("meeting.join", {"meeting": moved})
    assert late.joined and late.end_to_end_before
    assert not joined_as("cy", "ada", "bob").end_to_end_before
    party = MeetingMachine.from_call("bob", moved, "ada", offerer=False, media=AV)
    assert not party.end_to_end_before
    party.signaling_reconnected()
    party.request_succeeded("meeting.join", {"meeting": moved})
    assert party.joined and not party.end_to_end_before
