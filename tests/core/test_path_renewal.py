"""Renewing a working path before its TURN credentials expire: the machine's part (a restart
that never leaves ``connected``) and ServerIce telling its watchers of fresh credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gui.core.call_machine import (
    ApplyRemoteDescription,
    CallState,
    CloseCandidate,
    MakeOffer,
    OpenCandidate,
    PromoteCandidate,
    Role,
)
from gui.core.ice import ServerIce
from tests.core.test_call_recovery import ANSWER, OFFER, connected, restart_signal, signal

REPLY = {"ice_servers": [{"urls": ["turn:x"], "username": "1:a", "credential": "c"}], "ice_ttl": 60}


def test_a_renewal_restarts_without_leaving_connected() -> None:
    m = connected(Role.CALLER)
    m.renew_path()
    assert m.take_actions() == [OpenCandidate("caller-1", offerer=True), MakeOffer("caller-1")]
    m.renew_path()  # one under way already: nothing more
    assert m.take_actions() == []
    m.candidate_description("caller-1", OFFER)
    assert m.take_actions() == [restart_signal("caller-1", OFFER)]
    m.server_event(signal("caller-1", ANSWER))
    assert m.take_actions() == [ApplyRemoteDescription(ANSWER, "caller-1")]
    m.candidate_state("caller-1", "connected")
    assert m.take_actions() == [PromoteCandidate("caller-1")]  # no state change: it never left
    assert m.state is CallState.CONNECTED
    assert (m.renewals, m.recoveries) == (1, 0)


def test_a_renewal_that_does_not_connect_leaves_the_call_as_it_was() -> None:
    m = connected(Role.CALLEE)
    m.renew_path()
    m.take_actions()
    m.candidate_timed_out("callee-1")
    assert m.take_actions() == [CloseCandidate("callee-1")]  # and no new offer
    assert m.state is CallState.CONNECTED and m.renewals == 0


def test_no_renewal_while_reconnecting_or_after_the_end() -> None:
    m = connected(Role.CALLER)
    m.path_lost()
    m.take_actions()
    m.renew_path()
    assert m.take_actions() == []
    m.hang_up()
    m.take_actions()
    m.renew_path()
    assert m.take_actions() == []


def test_a_lost_path_during_a_renewal_counts_as_a_recovery_of_ours() -> None:
    m = connected(Role.CALLER)
    m.renew_path()
    m.take_actions()
    m.path_lost()
    assert [type(a).__name__ for a in m.take_actions()] == ["StateChanged"]
    m.candidate_timed_out("caller-1")
    actions = m.take_actions()
    assert OpenCandidate("caller-2", offerer=True) in actions
    m.candidate_description("caller-2", OFFER)
    m.server_event(signal("caller-2", ANSWER))
    m.candidate_state("caller-2", "connected")
    assert m.state is CallState.CONNECTED and (m.renewals, m.recoveries) == (0, 1)


async def test_server_ice_tells_its_watchers_of_renewed_credentials() -> None:
    ice = ServerIce()
    assert ice.update(REPLY)
    ice.expires_at = ice.clock() + 0.05 * ice.RENEW_AT  # due for renewal at once
    heard: list[str] = []
    stop = ice.on_renewed(lambda: heard.append("renewed"))

    def failing() -> None:
        raise ZeroDivisionError

    ice.on_renewed(failing)  # a failing watcher harms no other
    asked = asyncio.Event()

    async def request() -> dict[str, object]:
        asked.set()
        renewed = dict(REPLY, ice_servers=[dict(REPLY["ice_servers"][0], username="2:a")])  # type: ignore[index]
        return renewed

    ice.keep_fresh(request)
    await asyncio.wait_for(asked.wait(), 5)
    await asyncio.sleep(0.01)
    ice.stop()
    assert heard == ["renewed"]
    assert ice.servers[0].username == "2:a"
    stop()
    stop()  # twice: harmless


class _Link:
    """A signaling link with the server's ICE servers, and nothing else."""

    def __init__(self) -> None:
        self.ice = ServerIce()

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        raise AssertionError("nothing is sent")

    def on_event(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        return lambda: None


async def test_meeting_links_made_later_take_the_credentials_of_the_moment() -> None:
    from gui.core.meeting_machine import MeetingMachine
    from gui.core.meeting_session import MeetingSession
    from gui.core.peer_link import LocalMedia

    link = _Link()
    assert link.ice.update(REPLY)
    session = MeetingSession(link, MeetingMachine("ada", "m", {"audio": False}), LocalMedia())
    assert session.options.ice_servers[0].username == "1:a"
    renewed = dict(REPLY, ice_servers=[dict(REPLY["ice_servers"][0], username="2:a")])  # type: ignore[index]
    assert link.ice.update(renewed)
    assert session.options.ice_servers[0].username == "2:a"
