"""A mesh pair whose link fails gets a fresh peer connection, for that pair only: the meeting
machine's decisions (pure), then three real meeting sessions in one process where one pair's
connection is torn down and comes back while the other pairs' connections stay as they are."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gui.core.meeting_machine import (
    LINK_RETRY_DELAYS_S,
    CloseLink,
    LinkState,
    MeetingMachine,
    MeetingState,
    OpenLink,
    RetryLink,
)
from tests.core.test_meeting_session import (
    LINKED_S,
    Meeting,
    befriend,
    hears_and_sees,
    invitation,
    until,
)

MEDIA = {"audio": True, "video": True, "screen": False}
OFFER = {"type": "offer", "sdp": "v=0\r\n"}


def joined_after(me: str, *present: str) -> MeetingMachine:
    """``me`` joined a meeting where ``present`` were already (so ``me`` offered to each)."""
    machine = MeetingMachine(me, "0" * 8 + "-0000-0000-0000-" + "0" * 12, MEDIA)
    machine.join()
    people = [{"username": u} for u in (*present, me)]
    machine.request_succeeded(
        "meeting.join", {"meeting": {"host": present[0], "participants": people}}
    )
    assert machine.state is MeetingState.JOINED
    machine.take_actions()
    return machine


def test_the_offerer_of_a_failed_link_offers_again_a_few_times() -> None:
    machine = joined_after("cyd", "ada", "bob")
    machine.link_state("ada", "connected")
    machine.link_state("bob", "connected")
    delays = []
    for _ in LINK_RETRY_DELAYS_S:
        machine.link_state("ada", "failed")
        actions = machine.take_actions()
        assert CloseLink("ada") in actions
        (retry,) = [a for a in actions if isinstance(a, RetryLink)]
        delays.append(retry.delay_s)
        assert machine.participants["ada"].link is LinkState.FAILED
        machine.retry_link("ada")
        assert OpenLink("ada", offerer=True) in machine.take_actions()
        assert machine.participants["ada"].link is LinkState.CONNECTING
    assert delays == list(LINK_RETRY_DELAYS_S)
    # Out of retries: the tile stays failed; bob's link was never touched.
    machine.link_state("ada", "failed")
    assert not [a for a in machine.take_actions() if isinstance(a, RetryLink)]
    assert machine.participants["bob"].link is LinkState.CONNECTED
    # ada offering again (coming back) still works, and a connection starts the count over.
    machine.server_event({"type": "rtc.signal", "meeting_id": machine.meeting_id,
                          "from": "ada", "description": OFFER})  # fmt: skip
    assert OpenLink("ada", offerer=False) in machine.take_actions()
    machine.link_state("ada", "connected")
    assert machine.participants["ada"].link is LinkState.CONNECTED


def test_the_answerer_waits_and_a_retry_for_someone_gone_does_nothing() -> None:
    machine = joined_after("cyd", "ada")
    machine.server_event({"type": "rtc.signal", "meeting_id": machine.meeting_id,
                          "from": "dan", "description": OFFER})  # fmt: skip
    machine.take_actions()
    machine.link_state("dan", "failed")  # dan offered: dan retries, not this end
    assert not [a for a in machine.take_actions() if isinstance(a, RetryLink)]
    machine.link_state("ada", "failed")
    assert [a for a in machine.take_actions() if isinstance(a, RetryLink)]
    machine.server_event({"type": "meeting.left", "meeting_id": machine.meeting_id,
                          "username": "ada", "reason": "left", "host": "cyd"})  # fmt: skip
    machine.take_actions()
    machine.retry_link("ada")
    assert not [a for a in machine.take_actions() if isinstance(a, OpenLink)]


@pytest.fixture
async def meeting(server) -> AsyncIterator[Meeting]:
    meeting = Meeting(server)
    yield meeting
    await meeting.close()


@pytest.mark.slow
async def test_one_pair_reconnects_alone(meeting: Meeting) -> None:
    ada, bob, cyd = [await meeting.client(n) for n in ("ada", "bob", "cyd")]
    await befriend(ada, bob, cyd)
    await befriend(bob, cyd)
    invited = {"bob": invitation(bob), "cyd": invitation(cyd)}
    host = meeting.create(["bob", "cyd"])
    sessions = {"ada": host, "bob": await meeting.accept("bob", invited["bob"])}
    await until(lambda: sessions["bob"].state is MeetingState.JOINED)
    sessions["cyd"] = await meeting.accept("cyd", invited["cyd"])
    await until(lambda: all(hears_and_sees(s, *(n for n in sessions if n != me))
                            for me, s in sessions.items()), LINKED_S)  # fmt: skip
    before = {me: {u: list(links) for u, links in s.history.items()} for me, s in sessions.items()}

    # cyd offered to ada; cyd's end of that pair breaks for good.
    assert sessions["cyd"].machine.link_offerer("ada") is True
    await sessions["cyd"].links["ada"].pc.close()
    await until(lambda: len(sessions["cyd"].history["ada"]) == 2, 20)
    await until(
        lambda: hears_and_sees(sessions["cyd"], "ada") and hears_and_sees(host, "cyd"), LINKED_S
    )
    assert sessions["cyd"].machine.participants["ada"].link is LinkState.CONNECTED
    assert len(host.history["cyd"]) == 2
    # The other pairs kept their connections.
    for me, other in (("ada", "bob"), ("bob", "ada"), ("bob", "cyd"), ("cyd", "bob")):
        assert sessions[me].history[other] == before[me][other], (me, other)
