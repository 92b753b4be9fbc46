"""Meetings through a real Janus: ``parley-server --sfu`` and six ``parley-cli`` participants.

Each participant sends the test pattern (320x180 at 8 frames/s: six encoders and thirty
decoders on two cores) and a tone of its own pitch; each summary must show pictures and
the right pitch from every other one. A user who was never invited is refused. The
bounds catch a broken pipeline only.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from tests.cli.meetings import check_heard as shared_check_heard
from tests.cli.meetings import meet_answering, wait_pictures
from tests.cli.procs import CliProcess, Launcher, ServerProcess, serving
from tests.sfu.conftest import SfuSetup

pytestmark = pytest.mark.slow

SMALL = ("--resolution", "320x180", "--fps", "8")
#: Every other participant's video (a meeting of six receives four by itself: test_last_n.py).
ALL_VIDEOS = ("--max-videos", "5")
#: Fewer frames than in a mesh: six encoders and thirty decoders share two cores.
check_heard = partial(shared_check_heard, frames=10)
TONES = {"s6-ada": 400, "s6-bob": 500, "s6-cyd": 600, "s6-dan": 700, "s6-eve": 800, "s6-fay": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sfu: SfuSetup) -> Iterator[ServerProcess]:
    """One parley-server for the module, its meetings through the session's Janus."""
    folder = tmp_path_factory.mktemp("sfu-meetings")
    with serving(folder, "--no-echo", *sfu.server_args) as process:
        yield process


def answering(
    launch: Launcher, server: ServerProcess, user: str, hz: int, *args: str
) -> CliProcess:
    """``USER meet answer`` with small video, returned once the server has seen it log in."""
    return meet_answering(launch, server, user, hz, *SMALL, *ALL_VIDEOS, "--stats", *args)


def receiving(child: CliProcess, others: set[str], timeout: float = 60.0) -> None:
    """Until ``child`` is connected to the media server and lists exactly ``others``."""

    def check() -> bool | None:
        connected = any(m["state"] == "connected" for m in child.named("media_server"))
        lists = child.named("participants")
        present = {p["username"] for p in lists[-1]["participants"]} if lists else set()
        return True if connected and present == others else None

    child.wait_for(check, timeout, f"in the media server's meeting with {sorted(others)}")


def test_six_through_janus_each_sees_and_hears_every_other_and_a_stranger_is_refused(
    launch: Launcher, server: ServerProcess
) -> None:
    host_name = "s6-ada"
    launch.befriend(*((host_name, u) for u in TONES if u != host_name))
    launch.register("s6-zed")
    guests = {u: answering(launch, server, u, hz) for u, hz in TONES.items() if u != host_name}
    host = launch.cli(
        host_name, "meet", "create", "--invite", ",".join(guests), "--end",
        "--audio", f"tone:{TONES[host_name]}", *SMALL, *ALL_VIDEOS, "--stats",
    )  # fmt: skip
    _, joined = host.wait_event("state", 30, state="joined")
    assert joined["topology"] == "sfu", joined
    everyone = set(TONES)
    for user, child in ((host_name, host), *guests.items()):
        receiving(child, everyone - {user})

    stranger = launch.cli("s6-zed", "meet", "join", str(joined["meeting_id"]), *SMALL)
    assert stranger.finish(30) == 1
    assert stranger.summary["reason"] == "forbidden", stranger.describe()

    # Media flows through Janus for a while: a few more pictures than the summaries must show
    # (the per-second figures add up to about as many as were decoded).
    for user, child in ((host_name, host), *guests.items()):
        wait_pictures(child, everyone - {user}, 14)
    host.send_signal(2)  # SIGINT; --end: the host ends it for everyone
    assert host.finish(30) == 0, host.describe()
    for child in guests.values():
        assert child.finish(30) == 0, child.describe()
        assert child.summary["reason"] == "ended"
    for user, child in ((host_name, host), *guests.items()):
        check_heard(child, {u: hz for u, hz in TONES.items() if u != user})
        child.assert_clean()
