"""Mesh meetings between real processes: ``parley-server`` and three or four ``parley-cli``.

Each participant sends the test pattern (320x180, 10 frames/s: four processes on two
cores) and a tone of its own pitch, so each summary tells whether every participant saw
and heard every other one. The server runs with a short reconnection grace, so that a
participant killed outright is seen leaving (``lost``) within seconds; the bounds catch a
broken pipeline only.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.cli.meetings import check_heard, meet_answering, wait_pictures
from tests.cli.procs import CliProcess, Launcher, ServerProcess, serving

pytestmark = pytest.mark.slow

#: The server's --reconnect-grace: a killed participant leaves this long after its socket closed.
GRACE_S = 3.0
#: Small video: a 4-way mesh is 12 encoders and 12 decoders on two cores.
SMALL = ("--resolution", "320x180", "--fps", "10")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One parley-server for the module, with a short reconnection grace."""
    with serving(
        tmp_path_factory.mktemp("cli-meetings"), "--reconnect-grace", f"{GRACE_S:g}", "--no-echo"
    ) as process:
        yield process


def answering(
    launch: Launcher, server: ServerProcess, user: str, hz: int, *args: str
) -> CliProcess:
    """``USER meet answer`` with small video, returned once the server has seen it log in."""
    return meet_answering(launch, server, user, hz, *SMALL, *args)


def meeting_id(child: CliProcess) -> str:
    """The id of the meeting ``child`` is in (from its ``joined`` state line)."""
    _, joined = child.wait_event("state", 30, state="joined")
    return str(joined["meeting_id"])


def wait_linked(child: CliProcess, others: set[str], timeout: float = 40.0, since: int = 0) -> None:
    """Until ``child``'s links to exactly ``others`` are all connected."""

    def check() -> bool | None:
        for _, m in reversed(child.events[since:]):
            if m["event"] == "participants":
                links = {p["username"]: p["link"] for p in m["participants"]}
                done = set(links) == others and all(v == "connected" for v in links.values())
                return True if done else None
        return None

    child.wait_for(check, timeout, f"connected links to {sorted(others)}")


def test_four_in_a_mesh_each_sees_and_hears_every_other_a_fifth_and_a_stranger_refused(
    launch: Launcher, server: ServerProcess
) -> None:
    tones = {"m4-ada": 440, "m4-bob": 550, "m4-cyd": 660, "m4-dan": 770}
    launch.befriend(*(("m4-ada", u) for u in ("m4-bob", "m4-cyd", "m4-dan", "m4-eve")))
    launch.register("m4-zed")
    guests = {
        u: answering(launch, server, u, hz, "--stats") for u, hz in tones.items() if u != "m4-ada"
    }
    host = launch.cli(
        "m4-ada", "meet", "create", "--invite", "m4-bob,m4-cyd,m4-dan,m4-eve",
        "--title", "Four", "--end", "--audio", "tone:440", *SMALL, "--stats",
    )  # fmt: skip
    meeting = meeting_id(host)
    everyone = set(tones)
    for user, child in (("m4-ada", host), *guests.items()):
        wait_linked(child, everyone - {user})

    # Invited, but the meeting is full; never invited: forbidden. Both exit 1 at once.
    fifth = launch.cli("m4-eve", "meet", "join", meeting, *SMALL)
    stranger = launch.cli("m4-zed", "meet", "join", meeting, *SMALL)
    assert fifth.finish(30) == 1 and stranger.finish(30) == 1
    assert fifth.summary["reason"] == "meeting_full", fifth.describe()
    assert stranger.summary["reason"] == "forbidden", stranger.describe()
    assert fifth.summary["participants"] == stranger.summary["participants"] == {}

    # Media flows on every link for a while: a few more pictures than the summaries must show
    # (the per-second figures add up to about as many as were decoded), however long a
    # loaded machine takes for them.
    for user, child in (("m4-ada", host), *guests.items()):
        wait_pictures(child, everyone - {user}, 18)
    host.send_signal(signal.SIGINT)  # --end: the host ends it for everyone
    assert host.finish(30) == 0, host.describe()
    for child in guests.values():
        assert child.finish(30) == 0, child.describe()
        assert child.summary["reason"] == "ended"
        (invited,) = [m for m in child.named("state") if m["state"] == "invited"]
        assert invited["inviter"]["username"] == "m4-ada" and invited["title"] == "Four"
    assert host.summary["reason"] == "ended"
    for user, child in (("m4-ada", host), *guests.items()):
        check_heard(child, {u: hz for u, hz in tones.items() if u != user})
        assert child.summary["meeting_id"] == meeting


def test_leave_rejoin_and_a_killed_participant_is_seen_leaving(
    launch: Launcher, server: ServerProcess
) -> None:
    launch.befriend(("mk-ada", "mk-bob"), ("mk-ada", "mk-cyd"))
    bob = answering(launch, server, "mk-bob", 550)
    cyd = answering(launch, server, "mk-cyd", 660, "--duration", "4")  # leaves by itself
    host = launch.cli(
        "mk-ada", "meet", "create", "--invite", "mk-bob,mk-cyd", "--end", "--audio", "tone:440",
        *SMALL,
    )  # fmt: skip
    meeting = meeting_id(host)
    wait_linked(cyd, {"mk-ada", "mk-bob"})
    assert cyd.finish(30) == 0, cyd.describe()
    assert cyd.summary["reason"] == "left"
    check_heard(cyd, {"mk-ada": 440, "mk-bob": 550}, frames=5)
    for child in (host, bob):
        child.wait_event("participant_left", 20, username="mk-cyd", reason="left")

    # A former participant joins again: a new process, new links, media both ways.
    mark = host.mark()
    again = launch.cli("mk-cyd", "meet", "join", meeting, "--audio", "tone:660", *SMALL)
    wait_linked(again, {"mk-ada", "mk-bob"})
    wait_linked(host, {"mk-bob", "mk-cyd"}, since=mark)
    time.sleep(2)

    # Killed outright: the others see bob leave, "lost", once the server's grace has passed.
    killed_at = time.monotonic()
    bob.kill()
    for child in (host, again):
        seen_at, _ = child.wait_event("participant_left", 30, username="mk-bob", reason="lost")
        assert GRACE_S - 1 <= seen_at - killed_at <= GRACE_S + 15, seen_at - killed_at
    host.send_signal(signal.SIGINT)
    assert host.finish(30) == 0, host.describe()
    assert again.finish(30) == 0, again.describe()
    assert again.summary["reason"] == "ended"
    check_heard(again, {"mk-ada": 440, "mk-bob": 550})
    assert host.summary["participants"]["mk-cyd"]["links"] == 2
    check_heard(host, {"mk-bob": 550, "mk-cyd": 660})


def test_meet_arguments_and_an_invitation_that_never_comes(launch: Launcher) -> None:
    base = ["--server", launch.url, "--user", "mx-ann", "--password", "whatever-pw"]
    bad = {
        "no action": ["meet"],
        "join without an id": ["meet", "join"],
        "empty invite list": ["meet", "create", "--invite", ","],
        "frame rate out of range": ["meet", "create", "--fps", "0"],
        "wait not seconds": ["meet", "answer", "--wait", "soon"],
    }
    runs = {case: launch.raw_cli(*base, *argv, name=case) for case, argv in bad.items()}
    for case, child in runs.items():
        assert child.finish(30) == 2, f"{case}\n{child.describe()}"
        assert not child.out and "error:" in child.stderr.splitlines()[-1], case
    launch.register("mx-ann")
    waiting = launch.cli("mx-ann", "meet", "answer", "--wait", "1")
    assert waiting.finish(30) == 1, waiting.describe()
    assert waiting.stderr.strip() == "parley-cli: error: no invitation came within 1 s"
