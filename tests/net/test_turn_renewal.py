"""A relayed call (and a mesh meeting) that outlives its TURN credentials keeps its media
(issue 10).

parley-server hands out credentials for 60 s (``--turn-ttl``, the shortest it allows); both
homes' NATs randomise ports, so the call can only go through coturn. The credentials expire
mid-call. coturn refuses every authenticated request with an expired username (the
allocation's refresh, new permissions and channels: "401 Unauthorized"), and aioice refreshes
an allocation with the credentials it was made with, so a relay made with them dies at its
next refresh. When the server renews the credentials (at 80% of their life), the end whose own
relay carries the call moves it onto a fresh link with fresh allocations, without leaving
``connected``: the caller's summary counts one renewal, coturn allocates for the renewed
username, and the video never stops.
"""

from __future__ import annotations

import statistics

import pytest

from tests.net.impaired import camera_fps
from tests.net.relay import USERS, turn_lab, turn_lab_unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(turn_lab_unavailable()), reason=turn_lab_unavailable() or ""),
    pytest.mark.timeout(600),
]

TTL_S = 60


def test_a_relayed_call_longer_than_its_credentials_keeps_its_media() -> None:
    with turn_lab(ttl_s=TTL_S) as turn:
        for home in turn.lab.homes.values():
            home.set_random_nat(True)
        caller, callee = turn.call(duration=TTL_S + 30, timeout=TTL_S + 150)
        coturn = turn.children[0]
        refused = [line for _, line in coturn.out if "Cannot find credentials" in line]
    for side in (caller, callee):
        summary = side.summary
        assert summary["reason"] == "hangup", side.describe()
        assert summary["path"]["relayed"] is True, summary
        assert all(m["state"] != "reconnecting" for m in side.named("state")), side.describe()
        # Video all along: the move onto the fresh link leaves no real gap (a few seconds at
        # most on this crowded machine), and the video flows at the end.
        fps = [camera_fps(m) for m in side.named("stats")]
        assert len(fps) >= TTL_S, fps
        gap = _longest_gap(fps[fps.index(next(f for f in fps if f >= 3)) :])
        print(f"{side.name}: the renewal's gap without video: {gap} s")
        assert gap <= 8, fps
        assert statistics.median(fps[-10:]) >= 10, fps
    # The end whose own relay carried the call moved it onto a fresh link (fresh allocations,
    # renewed credentials) once the server renewed them, before they expired.
    renewing = [s for s in (caller, callee) if s.summary.get("renewals", 0) >= 1]
    assert renewing, (caller.summary, callee.summary)
    assert renewing[0].named("restarted"), renewing[0].describe()
    # Its allocations were all made with live credentials: even their deletion at the end is
    # accepted (without the renewal, coturn refuses it: "Cannot find credentials of user
    # <EXPIRY:NAME>"; the other end's unused ones are refused so, which is harmless).
    user = USERS[0] if renewing[0] is caller else USERS[1]
    assert not [line for line in refused if f":{user}>" in line], refused


def test_a_relayed_meeting_longer_than_its_credentials_keeps_its_media() -> None:
    """The same in a mesh meeting of two: the end that offered the link offers it anew when
    its credentials are renewed (the other answers, as for someone coming back)."""
    with turn_lab(ttl_s=TTL_S) as turn:
        for home in turn.lab.homes.values():
            home.set_random_nat(True)
        server = turn.children[1]
        mark = len(server.err)
        bob = turn.cli(turn.lab.b, USERS[1], "meet", "answer", "--wait", "120", "--stats")
        server.wait_stderr(rf"event=login conn=\S+ user={USERS[1]}(\s|$)", 90, mark)
        ann = turn.cli(
            turn.lab.a, USERS[0], "meet", "create", "--invite", USERS[1], "--stats",
            "--duration", str(TTL_S + 30), "--end",
        )  # fmt: skip
        for side in (ann, bob):
            side.finish(TTL_S + 150, expect=0)
    for side, other in ((ann, USERS[1]), (bob, USERS[0])):
        figures = side.summary["participants"][other]
        assert figures["links"] >= 2, figures  # renewed once at least
        fps = [camera_fps(m) for m in side.named("link_stats")]
        assert len(fps) >= TTL_S, fps
        # The old link closes as the new one is offered: a short gap, not the relay's death.
        gap = _longest_gap(fps[fps.index(next(f for f in fps if f >= 3)) :])
        print(f"{side.name}: the renewal's gap without video: {gap} s")
        assert gap <= 10, fps


def _longest_gap(fps: list[float]) -> int:
    """The longest run of stats lines (seconds) under 3 frames/s."""
    longest = run = 0
    for value in fps:
        run = run + 1 if value < 3 else 0
        longest = max(longest, run)
    return longest
