"""Issue 10 for meetings: a mesh meeting of three homes, each behind its own NAT, recovers by
itself when one home's path is black-holed for 10 s, or when its address changes.

Three ``parley-cli`` (homes a, b, c; STUN from coturn, parley-server in the internet) in one
mesh meeting, real media on every link. Home c's path is cut for 10 s: its two links (c-a,
c-b) go quiet and come back, for that pair only, while the a-b link carries on untouched.
Home c re-addressed: its links and its signaling socket are dead; a link going quiet pings the
server (as a call does), the signaling reconnects, and c joins again (the server pings the old
connection and lets it go when it does not answer; a join refused ``busy`` meanwhile is tried
again) and offers everyone fresh links. The bounds catch a broken recovery, not a slow one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.net.impaired import lab_unavailable
from tests.net.meeting import USERS, LabMeeting, lab_meeting, readdress

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
    pytest.mark.timeout(600),
]


@pytest.fixture
def meeting() -> Iterator[LabMeeting]:
    with lab_meeting() as built:
        yield built


def test_a_home_black_holed_for_10_s_its_links_recover_and_the_others_carry_on(
    meeting: LabMeeting,
) -> None:
    marks = {home: side.mark() for home, side in meeting.ends.items()}
    home_c = meeting.lab.c
    home_c.set_black_hole(True)
    cut = time.monotonic()
    time.sleep(10)
    home_c.set_black_hole(False)
    restored = time.monotonic()
    # Every link of home c saw the outage, then video again within the bound, both ways.
    took = {}
    for home, other in (("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")):
        during = [f for at, f in meeting.fps(home, other, marks[home]) if cut + 4 < at < restored]
        assert during and min(during) < 3, f"{home} kept seeing {other} through the black hole"
        back = meeting.wait_video(home, other, marks[home], timeout=40, after=restored)
        took[f"{home}<-{other}"] = round(back - restored, 1)
    print(f"path back -> video again, s: {took}")
    # The link between a and b never stopped: it stayed connected (and is the one it started
    # with: see the summaries below) and its video went on. Its frame rate is not held to more
    # than that: at load 20 a cli waiting for a core once showed 3 s of it under 3 frames/s.
    for home, other in (("a", "b"), ("b", "a")):
        side = meeting.ends[home]
        states = [
            p["link"]
            for at, m in side.events[marks[home] :]
            if m["event"] == "participants" and cut < at < restored + 5
            for p in m["participants"]
            if p["username"] == USERS[other]
        ]
        assert all(state == "connected" for state in states), (home, other, states)
        seen = [f for at, f in meeting.fps(home, other, marks[home]) if cut < at < restored + 5]
        assert len(seen) >= 8, seen
        assert sum(1 for f in seen if f >= 3) >= len(seen) / 2, (
            f"{home}'s video from {other}: {seen}"
        )
    # Nobody left the meeting; each leaves now and sums up a meeting that held.
    for side in meeting.ends.values():
        assert not side.named("participant_left"), side.describe()
    for home, figures in meeting.leave_all().items():
        for username, got in figures.items():
            assert got["connected"] and got["frames_received"] > 0, (username, got)
        if home != "c":  # the a-b link is the one it started with
            other = USERS["b" if home == "a" else "a"]
            assert figures[other]["links"] == 1, figures


def test_a_home_that_changes_its_address_comes_back_to_everyone(meeting: LabMeeting) -> None:
    """Home c's computer gets another address: its links and its signaling socket are dead;
    its links are made anew (a fresh peer connection per pair) and the meeting goes on."""
    marks = {home: side.mark() for home, side in meeting.ends.items()}
    readdress(meeting.lab.c)
    changed = time.monotonic()
    took = {}
    for seer, other in (("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")):
        back = meeting.wait_video_again(seer, other, marks[seer], changed, timeout=100)
        took[f"{seer}<-{other}"] = round(back - changed, 1)
    print(f"address changed -> video again, s: {took}")
    for name, figures in meeting.leave_all().items():
        if name != "c":
            assert figures[USERS["c"]]["links"] >= 2, figures  # a new link to c
